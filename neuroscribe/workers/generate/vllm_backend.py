"""``VLLMBackend``: offline batched generation with vLLM on a CUDA machine.

The only module that imports vllm, and only when a backend is built: importing it never needs
vllm. Prompts go through the model tokenizer's chat template and are passed as token ids (so a
template that writes BOS does not get a second one). Every request gets its own
``SamplingParams(seed=...)``: vLLM honours per-request seeds whatever the batch, so the text of a
request does not depend on the other requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from neuroscribe.errors import GenerationError
from neuroscribe.jobs import GeneratorSpec
from neuroscribe.workers.models.packaged import resolve_packaged

from neuroscribe.workers.generate.base import Generation, GenerationRequest, render_chat
from neuroscribe.workers.models.hub import cached_snapshot, offline
from neuroscribe.workers.generate.hf_loading import resolve_source

__all__ = ["VLLMBackend", "VLLM_MISSING"]

VLLM_MISSING = "vllm is not installed: pip install 'neuroscribe[vllm]' on a CUDA machine"


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise GenerationError(VLLM_MISSING) from e
    return vllm


class VLLMBackend:
    """An ``LLMBackend`` over ``vllm.LLM``. Extra keyword arguments go to ``vllm.LLM`` (e.g.
    ``gpu_memory_utilization``, ``max_model_len``, ``tensor_parallel_size``)."""

    def __init__(self, spec: GeneratorSpec, **llm_kwargs: Any):
        vllm = _import_vllm()
        self.spec = spec
        src = resolve_source(spec.model)
        kw: dict[str, Any] = {"model": src.load_from, "seed": spec.sampling.seed,
                              "trust_remote_code": spec.trust_remote_code}
        if src.gguf_file:  # vLLM loads GGUF from the file; the upstream tokenizer is faster and safer
            kw["model"] = str(Path(src.load_from) / src.gguf_file)
            packaged = resolve_packaged(spec.model)
            if packaged is not None and (cached_snapshot(packaged.upstream) or not offline()):
                kw["tokenizer"] = packaged.upstream
        kw.update(llm_kwargs)
        self._vllm = vllm
        self.llm = vllm.LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()
        self.info = {
            "backend": "vllm",
            "model": src.model_id,
            "revision": src.revision,
            "weight_sha256": src.weight_sha256,
            "vllm_version": getattr(vllm, "__version__", None),
        }

    def _params(self, req: GenerationRequest):
        s = req.sampling
        return self._vllm.SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens,
                                         repetition_penalty=s.repetition_penalty, seed=s.seed)

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = True) -> list[Generation]:
        requests = list(requests)
        if not requests:
            return []
        tok = self.tokenizer
        special = not getattr(tok, "chat_template", None)  # a chat template writes its own BOS
        prompts = [{"prompt_token_ids": list(tok(render_chat(tok, r.messages), add_special_tokens=special)["input_ids"])}
                   for r in requests]
        try:
            outputs = self.llm.generate(prompts, [self._params(r) for r in requests], use_tqdm=progress)
        except Exception as e:  # CUDA OOM, prompt too long...: one typed error for the runner
            raise GenerationError(f"vllm generation failed: {type(e).__name__}: {str(e)[:300]}") from e
        if len(outputs) != len(requests):
            raise GenerationError(f"vllm returned {len(outputs)} outputs for {len(requests)} prompts")
        out = []
        for req, o in zip(requests, outputs):
            c = o.outputs[0]
            greedy = req.sampling.temperature == 0
            sampling = req.sampling.model_dump() | {
                "seed_used": None if greedy else req.sampling.seed,
                "seeding": "greedy" if greedy else "per_request",
                "batch_size": len(requests),
            }
            out.append(Generation(req.key, c.text.strip(), dict(self.info), sampling,
                                  c.finish_reason or "stop", len(c.token_ids)))
        return out
