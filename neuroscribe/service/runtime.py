"""What the embedded runs and the service's stage handlers both need, decided in one place: the
cache, the generator, the subject model (and its device).

``service/<kind>/embedded.py`` (one process) and ``service/<kind>/handlers.py`` (the workers) call
these with the same ``Settings``, so the two paths cannot drift apart.

The server's policy (``service.policy``): a worker's calls -- ``generator_for``, and ``load_subject``
with a worker's ``state`` -- refuse (``JobRefused``, never retried) a model, generator, device or URL
the settings do not allow, as the API did at the door. The embedded runs (no ``state``) are the
user's own machine: no policy, and the LLM key goes to the URL the user typed unless
``llm_endpoints`` is set (then to those endpoints only, as on the service).
"""

from __future__ import annotations

from pathlib import Path

from neuroscribe.jobs import GeneratorSpec, SubjectModelSpec
from neuroscribe.settings import Settings

__all__ = ["configure", "make_generator", "generator_for", "device_for", "load_subject", "peek_subject", "responses_cache"]

_MAX_LOADED = 4  # models kept loaded by a worker's executor, not every one ever asked for


def configure(settings: Settings) -> None:
    """Process-wide effects of the settings: where large weight files' hashes are remembered."""
    from neuroscribe.workers.models import hashing

    hashing.set_store(Path(settings.cache_dir))


def responses_cache(settings: Settings) -> Path:
    return Path(settings.cache_dir) / "responses"


def _key_urls(settings: Settings, served: bool) -> tuple[str, ...] | None:
    """The URLs the LLM key may be sent to: the configured endpoints (always on the service, and
    locally when some are configured); None: any URL (a local run with no endpoints configured)."""
    return settings.llm_endpoints if served or settings.llm_endpoints else None


def make_generator(spec: GeneratorSpec, settings: Settings, *, cached: bool = True, served: bool = False):
    """The LLM backend ``spec`` names; finished generations cached under the cache directory (saved
    after every batch, so an interrupted run resumes where it stopped). The model is loaded at the
    first request the cache cannot answer: a run served from the cache loads none."""
    from neuroscribe.workers.generate import CachedBackend, make_lazy_backend

    backend = make_lazy_backend(spec, api_key=settings.llm_api_key, key_urls=_key_urls(settings, served))
    if not cached:
        return backend
    return CachedBackend(backend, Path(settings.cache_dir) / "generations", chunk_size=spec.batch_size)


def device_for(spec: SubjectModelSpec, settings: Settings) -> str:
    """The device a job runs its model on: the job's, unless it says ``auto`` (then the server's
    ``device`` setting, whose own ``auto`` is CUDA when available, else CPU), as a concrete name."""
    from neuroscribe.workers.activations.loading import resolve_device

    return str(resolve_device(spec.device if spec.device != "auto" else settings.device))


def peek_subject(spec: SubjectModelSpec):
    """The subject's config and tokenizer facts (layers, units, [CLS]...), without its weights."""
    from neuroscribe.workers.activations.loading import peek_subject as peek

    return peek(spec.name, revision=spec.revision, trust_remote_code=spec.trust_remote_code)


def load_subject(spec: SubjectModelSpec, settings: Settings, state: dict | None = None):
    """The loaded subject model; with ``state`` (a worker's dict kept across jobs), loaded once."""
    from neuroscribe.workers.activations import load_subject_model

    if state is not None:  # a worker: the server's policy
        from neuroscribe.service.policy import JobRefused, model_refusals

        refused = model_refusals(spec, settings, ("model",))
        if refused:
            raise JobRefused(refused[0])
    device = device_for(spec, settings)
    key = ("subject", spec.name, spec.revision, device, spec.trust_remote_code)
    if state is not None and key in state:
        return state[key]
    subject = load_subject_model(spec.name, revision=spec.revision, device=device,
                                 trust_remote_code=spec.trust_remote_code)
    if state is not None:
        if sum(1 for k in state if isinstance(k, tuple) and k[:1] == ("subject",)) >= _MAX_LOADED:
            for k in [k for k in state if isinstance(k, tuple) and k[:1] == ("subject",)]:
                del state[k]
        state[key] = subject
    return subject


def generator_for(spec: GeneratorSpec, settings: Settings, state: dict | None = None):
    """``make_generator`` for a worker (the server's policy applies), kept in its ``state`` across
    jobs that ask for the same one."""
    from neuroscribe.service.policy import JobRefused, generator_refusals

    refused = generator_refusals(spec, settings, ("generator",))
    if refused:
        raise JobRefused(refused[0])
    if state is None:
        return make_generator(spec, settings, served=True)
    key = ("generator", spec.model_dump_json())
    if key not in state:
        state[key] = make_generator(spec, settings, served=True)
    return state[key]
