"""``LlamaCppBackend``: GGUF generators run by llama.cpp in this process (the ``xllamacpp`` wheel).

Why in-process and not llama.cpp's HTTP server behind the OpenAI-compatible backend: the wheel runs
the same server loop (continuous batching over ``n_parallel`` slots, the chat template stored in the
GGUF file) without a port, a second process or a start-up race, and with no API key on the wire;
``bench/bench_generate.py`` measures it against the transformers backend.

Batching: every request of a call is submitted at once from a thread pool; the engine decodes the
active requests together (continuous batching across the whole round, not per sampling group).
Seeding: each request carries its own seed, and llama.cpp keeps one sampler per slot, so a request's
text does not depend on its batch mates (tested with the packaged GGUF). Sampling: temperature,
top-p and the repetition penalty as in the transformers backend; llama.cpp's own extra samplers
(top-k 40, min-p 0.05) are switched off so the same settings mean the same distribution, and the
penalty looks back over the whole context. ``temperature == 0`` is greedy.

Shared cores: ``threads`` (``GeneratorSpec.threads``, default: every core) and no busy-wait polling
(with polling, two threads on cores other processes use fell from ~80 to 3-5 tokens/s; without it,
two threads beside a CPU-bound process kept 19 tokens/s on descriptor prompts where transformers
fell to 5.6, ``bench/bench_generate.py``). One thread on the 2-core machine was slower than
transformers on the descriptor prompts (26 against 38 tokens/s), hence every core by default.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from neuroscribe.errors import GenerationError, InvalidInput
from neuroscribe.jobs import GeneratorSpec

from neuroscribe.workers.generate.base import Generation, GenerationRequest
from neuroscribe.workers.generate.hf_loading import resolve_source

__all__ = ["LlamaCppBackend", "gguf_path", "gguf_chat_template", "default_threads", "describe_info"]

SLOT_CONTEXT = 2048  # tokens per parallel request: the longest prompt + max_new_tokens of our jobs fits
MISSING = "the llamacpp backend needs the xllamacpp package: pip install xllamacpp"


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


def gguf_path(spec: GeneratorSpec) -> tuple[Path, Any]:
    """The GGUF file ``spec.model`` names (packaged alias or a local ``.gguf`` file) and its source."""
    src = resolve_source(spec.model)
    if not src.gguf_file or src.path is None:
        raise InvalidInput("generator", f"the llamacpp backend runs GGUF files; {spec.model!r} is not one "
                                        "(give the packaged 'smollm2' or a path to a .gguf file)")
    path = Path(src.path) / src.gguf_file
    if not path.is_file():
        raise InvalidInput("generator", f"{str(path)!r} does not exist")
    return path, src


def gguf_chat_template(path: Path) -> str | None:
    """The chat template stored in the GGUF file's metadata (None: not a chat model)."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(str(path)).fields.get("tokenizer.chat_template")
    except (OSError, ValueError) as e:
        raise InvalidInput("generator", f"{str(path)!r} is not a readable GGUF file: {e}") from None
    return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8", "replace")


def _engine_version() -> str | None:
    try:
        return version("xllamacpp")
    except PackageNotFoundError:
        return None


def check_threads(threads: int | None) -> int:
    cores = os.cpu_count() or 1
    if threads is None:
        return default_threads()
    if threads > cores:
        raise InvalidInput("generator.threads", f"{threads} threads asked for, this machine has {cores} cores")
    return threads


def _checked(spec: GeneratorSpec) -> tuple[Path, dict, int]:
    """The GGUF file, the provenance and the thread count of ``spec``: every check before a load."""
    threads = check_threads(spec.threads)
    path, src = gguf_path(spec)
    if gguf_chat_template(path) is None:
        raise InvalidInput("generator", f"{str(path)!r} has no chat template: the llamacpp backend needs a chat "
                                        "(instruct) model")
    info = {"backend": "llamacpp", "model": src.model_id, "revision": src.revision,
            "weight_sha256": src.weight_sha256, "xllamacpp_version": _engine_version()}
    return path, info, threads


def describe_info(spec: GeneratorSpec) -> dict:
    """The provenance (and cache identity) of the generator ``spec`` names, without loading it."""
    return _checked(spec)[1]


class LlamaCppBackend:
    """An ``LLMBackend`` over an in-process llama.cpp server loop. ``n_parallel``: requests decoded
    together (default ``spec.batch_size``)."""

    def __init__(self, spec: GeneratorSpec, *, n_parallel: int | None = None, **_: Any):
        try:
            import xllamacpp
        except ImportError as e:
            raise GenerationError(MISSING) from e
        self.spec = spec
        path, self.info, self.threads = _checked(spec)
        self.n_parallel = max(1, n_parallel or spec.batch_size)
        p = xllamacpp.CommonParams()
        p.model.path = str(path)
        p.n_parallel = self.n_parallel
        p.n_ctx = SLOT_CONTEXT * self.n_parallel
        p.cont_batching = True
        p.warmup = False
        p.verbosity = -1
        for cpu in (p.cpuparams, p.cpuparams_batch):
            cpu.n_threads = self.threads
            cpu.poll = 0  # no busy-waiting: cores are shared with the other stages
        try:
            self._server = xllamacpp.Server(p)
        except Exception as e:  # noqa: BLE001 - a corrupt file, out of memory
            raise GenerationError(f"llama.cpp could not load {str(path)!r}: {type(e).__name__}: {e}") from e
        self._lock = threading.Lock()

    def _payload(self, req: GenerationRequest) -> dict:
        s = req.sampling
        return {"messages": [dict(m) for m in req.messages], "max_tokens": s.max_new_tokens,
                "temperature": s.temperature, "top_p": s.top_p, "top_k": 0, "min_p": 0.0,
                "repeat_penalty": s.repetition_penalty, "repeat_last_n": SLOT_CONTEXT, "seed": s.seed, "stream": False}

    def _one(self, req: GenerationRequest) -> Generation:
        try:
            r = self._server.handle_chat_completions(self._payload(req))
        except Exception as e:  # noqa: BLE001 - the engine's own failures, one typed error
            raise GenerationError(f"llama.cpp generation failed: {type(e).__name__}: {str(e)[:300]}") from e
        if not isinstance(r, dict) or "choices" not in r:
            err = r.get("error") if isinstance(r, dict) else r
            raise GenerationError(f"llama.cpp generation failed: {str(err)[:300]}")
        choice = r["choices"][0]
        greedy = req.sampling.temperature == 0
        sampling = req.sampling.model_dump() | {
            "seed_used": None if greedy else req.sampling.seed,
            "seeding": "greedy" if greedy else "per_request",
            "batch_size": self.n_parallel,
            "threads": self.threads,
        }
        text = (choice.get("message") or {}).get("content") or ""
        n = int((r.get("usage") or {}).get("completion_tokens") or 0)
        return Generation(req.key, text.strip(), dict(self.info), sampling, choice.get("finish_reason") or "stop", n)

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = True) -> list[Generation]:
        requests = list(requests)
        if not requests:
            return []
        out: list[Generation | None] = [None] * len(requests)
        with self._lock, ThreadPoolExecutor(max_workers=min(self.n_parallel, len(requests)),
                                            thread_name_prefix="neuroscribe-llamacpp") as pool:
            futures = {pool.submit(self._one, r): i for i, r in enumerate(requests)}
            for f in tqdm(as_completed(futures), total=len(futures), desc="generate", unit="req",
                          disable=not progress):
                out[futures[f]] = f.result()
        return out  # type: ignore[return-value]
