"""``CachedBackend``: an ``LLMBackend`` wrapper that never generates the same completion twice.

Cache key: sha256 of the JSON of ``(inner.info, messages, sampling)`` (plus ``meta`` when the
inner backend reads it, e.g. ``FakeBackend``); never the caller's key. Each result is its own
small JSON file ``<cache_dir>/<key[:2]>/<key>.json`` written to a temp name and renamed, so a run
that crashes keeps what it finished and the next run generates only the rest. A file that does
not parse is a miss (and is overwritten). Requests that share a cache key within one call are
generated once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

from neuroscribe.errors import GenerationError

from neuroscribe.workers.generate.base import Generation, GenerationRequest, LLMBackend

__all__ = ["CachedBackend", "cache_key"]


def cache_key(info: dict, request: GenerationRequest, *, with_meta: bool = False) -> str:
    payload = {"generator": info, "messages": [dict(m) for m in request.messages],
               "sampling": request.sampling.model_dump(mode="json")}
    if with_meta:
        payload["meta"] = dict(request.meta)
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class CachedBackend:
    """Wraps ``inner``; ``generate`` returns cached results and generates only the missing ones,
    in one ``inner.generate`` call (or in calls of ``chunk_size`` requests, each saved as soon as
    it returns, when given). ``hits`` / ``misses`` count requests served each way."""

    def __init__(self, inner: LLMBackend, cache_dir: str | os.PathLike, *, chunk_size: int | None = None):
        if chunk_size is not None and chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.inner = inner
        self.cache_dir = Path(cache_dir)
        self.chunk_size = chunk_size
        self.hits = 0
        self.misses = 0

    @property
    def info(self) -> dict:
        return self.inner.info

    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _load(self, key: str) -> Generation | None:
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            if data["cache_key"] != key:
                return None
            return Generation.from_dict(data["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save(self, key: str, gen: Generation) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"cache_key": key, "generation": gen.to_dict()}, f, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = True) -> list[Generation]:
        requests = list(requests)
        with_meta = bool(getattr(self.inner, "uses_meta", False))
        keys = [cache_key(self.info, r, with_meta=with_meta) for r in requests]
        found: dict[str, Generation] = {}
        todo: dict[str, GenerationRequest] = {}  # one representative request per missing key
        for key, req in zip(keys, requests):
            if key in found or key in todo:
                continue
            gen = self._load(key)
            if gen is None:
                todo[key] = req
            else:
                found[key] = gen
        self.misses += sum(k in todo for k in keys)
        self.hits += len(keys) - sum(k in todo for k in keys)
        items = list(todo.items())
        step = self.chunk_size or max(len(items), 1)
        for j in range(0, len(items), step):
            chunk = items[j : j + step]
            gens = self.inner.generate([r for _, r in chunk], progress=progress)
            if len(gens) != len(chunk):
                raise GenerationError(f"{type(self.inner).__name__} returned {len(gens)} results for {len(chunk)}")
            for (key, _), gen in zip(chunk, gens):
                self._save(key, gen)
                found[key] = gen
        return [dataclasses.replace(found[k], key=r.key) for k, r in zip(keys, requests)]
