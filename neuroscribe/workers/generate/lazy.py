"""``LazyBackend``: a backend that is built only when a request reaches it.

Its ``info`` (provenance, and the generation cache's identity of the generator) is known without
loading the model, from the backend's ``describe`` function (``workers.generate.describe_backend``),
so a ``CachedBackend`` around it answers every cached request without loading anything: a run
served entirely from the cache loads no generator. When the model is finally loaded, its own
``info`` must equal the described one, else the cache would file its texts under another
generator's name (``GenerationError``).
"""

from __future__ import annotations

from typing import Callable, Sequence

from neuroscribe.errors import GenerationError

from neuroscribe.workers.generate.base import Generation, GenerationRequest, LLMBackend

__all__ = ["LazyBackend"]


class LazyBackend:
    """``build()`` makes the real backend on the first non-empty ``generate``; ``loads`` counts builds."""

    def __init__(self, info: dict, build: Callable[[], LLMBackend]):
        self.info = dict(info)
        self._build = build
        self._inner: LLMBackend | None = None
        self.loads = 0

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = True) -> list[Generation]:
        requests = list(requests)
        if not requests:
            return []
        if self._inner is None:
            inner = self._build()
            self.loads += 1
            if dict(inner.info) != self.info:
                raise GenerationError(f"the generator loaded ({inner.info}) is not the one described ({self.info})")
            self._inner = inner
        return self._inner.generate(requests, progress=progress)
