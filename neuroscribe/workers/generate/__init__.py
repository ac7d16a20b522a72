"""LLM backends behind one Protocol (``LLMBackend``), picked by name from a registry.

==============  ==============================================  ===========================
backend         module                                          needs
==============  ==============================================  ===========================
transformers    ``transformers_backend.TransformersBackend``    torch + transformers (CPU/GPU)
vllm            ``vllm_backend.VLLMBackend``                    vllm on CUDA (optional extra)
openai          ``openai_compat.OpenAIBackend``                 an OpenAI-compatible server
fake            ``fake.FakeBackend``                            nothing (tests, dry runs)
==============  ==============================================  ===========================

Importing this package is cheap: backends are imported when ``make_backend`` builds one.
``CachedBackend(backend, cache_dir)`` wraps any of them with an on-disk, resumable cache.
"""

from __future__ import annotations

import importlib
from typing import Callable

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import GeneratorSpec

from neuroscribe.workers.generate.base import Generation, GenerationRequest, LLMBackend
from neuroscribe.workers.generate.cached import CachedBackend
from neuroscribe.workers.generate.fake import FakeBackend
from neuroscribe.workers.generate.lazy import LazyBackend

__all__ = [
    "GenerationRequest",
    "Generation",
    "LLMBackend",
    "make_backend",
    "make_lazy_backend",
    "describe_backend",
    "LazyBackend",
    "register_backend",
    "known_backends",
    "FakeBackend",
    "CachedBackend",
]

BackendFactory = Callable[..., LLMBackend]  # factory(spec, **options) -> LLMBackend


def _lazy(module: str, cls: str, *options: str) -> BackendFactory:
    def factory(spec: GeneratorSpec, **kwargs) -> LLMBackend:
        kept = {k: v for k, v in kwargs.items() if k in options}
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(spec, **kept)

    factory.__qualname__ = f"lazy({module}.{cls})"
    return factory


_REGISTRY: dict[str, BackendFactory] = {
    "transformers": _lazy("transformers_backend", "TransformersBackend"),
    "llamacpp": _lazy("llamacpp_backend", "LlamaCppBackend"),
    "vllm": _lazy("vllm_backend", "VLLMBackend"),
    "openai": _lazy("openai_compat", "OpenAIBackend", "api_key", "key_urls"),
    "fake": lambda spec, **_: FakeBackend(),
}


_BUILTIN = dict(_REGISTRY)


def register_backend(name: str, factory: BackendFactory) -> None:
    """Add or replace the backend called ``name``; ``factory(spec, **options)`` returns an ``LLMBackend``
    (options: ``api_key``, ``key_urls``; a factory ignores what it does not use)."""
    _REGISTRY[name] = factory


def known_backends() -> list[str]:
    return sorted(_REGISTRY)


def make_backend(spec: GeneratorSpec, *, api_key: str | None = None,
                 key_urls: tuple[str, ...] | None = None) -> LLMBackend:
    """Build the backend ``spec.backend`` names (loading its model now); ``api_key`` goes to the
    backends that send one (openai), from the settings, and only to ``key_urls`` when given."""
    factory = _REGISTRY.get(spec.backend)
    if factory is None:
        raise InvalidInput("generator", f"unknown backend {spec.backend!r}; known: {', '.join(known_backends())}")
    return factory(spec, api_key=api_key, key_urls=key_urls)


# backends whose provenance is known without loading the model: (module, function)
_DESCRIBE: dict[str, tuple[str, str]] = {
    "transformers": ("transformers_backend", "describe_info"),
    "llamacpp": ("llamacpp_backend", "describe_info"),
}


def describe_backend(spec: GeneratorSpec) -> dict | None:
    """The ``info`` the backend ``spec`` names will have, without loading it (None: not knowable
    before loading, for this backend). Raises ``InvalidInput`` for a spec that cannot load."""
    entry = _DESCRIBE.get(spec.backend)
    if entry is None or _REGISTRY.get(spec.backend) is not _BUILTIN.get(spec.backend):
        return None  # unknown here, or replaced by register_backend: its info is its own
    module, fn = entry
    return getattr(importlib.import_module(f"{__name__}.{module}"), fn)(spec)


def make_lazy_backend(spec: GeneratorSpec, *, api_key: str | None = None,
                      key_urls: tuple[str, ...] | None = None) -> LLMBackend:
    """``make_backend``, deferred to the first request when the backend can describe itself
    beforehand (a run whose generations are all cached then loads no model)."""
    info = describe_backend(spec)
    if info is None:
        return make_backend(spec, api_key=api_key, key_urls=key_urls)
    return LazyBackend(info, lambda: make_backend(spec, api_key=api_key, key_urls=key_urls))
