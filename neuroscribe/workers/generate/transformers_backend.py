"""``TransformersBackend``: local generation with Hugging Face transformers (CPU or GPU).

Batching: requests are grouped by sampling settings apart from the seed, sorted by prompt length
inside a group (less padding), and generated ``spec.batch_size`` at a time with left padding.

Seeding: every request is sampled with its own seed, even inside a batch (see ``row_sampler``):
row ``i`` draws from ``torch.Generator().manual_seed(request.seed)``. A request's text therefore
does not depend on which other requests share its batch, except through floating-point
differences between padded shapes; given the same requests and ``batch_size`` the outputs are
reproducible on the same hardware and library versions. ``temperature == 0`` is greedy and uses
no randomness. Each ``Generation.sampling`` records ``seed_used``, ``seeding`` ("per_request" or
"greedy") and ``batch_size`` (the size of the batch the request was generated in).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import transformers
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from neuroscribe.errors import GenerationError, InvalidInput, ModelNotFound
from neuroscribe.jobs import GeneratorSpec

from neuroscribe.workers.generate.base import Generation, GenerationRequest, plan_batches, render_chat
from neuroscribe.workers.generate.hf_loading import load_tokenizer_and_model, resolve_source
from neuroscribe.workers.generate.row_sampler import RowSampler

__all__ = ["TransformersBackend", "pick_device", "describe_info"]


def pick_device(device: str | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _default_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _has_chat_template(src, trust_remote_code: bool) -> bool:
    """Whether the tokenizer ``src`` loads with has a chat template, without loading the weights (a
    GGUF file's metadata, else the tokenizer alone)."""
    if src.gguf_file and src.path is not None:
        from neuroscribe.workers.generate.llamacpp_backend import gguf_chat_template

        return gguf_chat_template(src.path / src.gguf_file) is not None
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(src.load_from, **src.pretrained_kwargs(trust_remote_code))
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ModelNotFound("generator", f"cannot load {src.model_id!r}: {first}") from e
    return bool(getattr(tok, "chat_template", None))


def describe_info(spec: GeneratorSpec, *, device: str | None = "auto") -> dict:
    """The ``info`` a ``TransformersBackend(spec)`` will have, without loading its weights. A Hub id
    that is not in the local cache cannot be described (None: it is loaded at once instead)."""
    src = resolve_source(spec.model)
    if src.path is None:
        return None
    dev = pick_device(device)
    return {
        "backend": "transformers",
        "model": src.model_id,
        "revision": src.revision,
        "weight_sha256": src.weight_sha256,
        "dtype": str(_default_dtype(dev)).removeprefix("torch."),
        "device": dev.type,
        "chat_template": _has_chat_template(src, spec.trust_remote_code),
        "transformers_version": transformers.__version__,
    }


class TransformersBackend:
    """An ``LLMBackend`` over a transformers causal LM. ``device``: "auto" (CUDA when present), "cpu", "cuda:1"..."""

    def __init__(self, spec: GeneratorSpec, *, device: str | None = "auto", dtype: torch.dtype | None = None):
        self.spec = spec
        self.batch_size = spec.batch_size
        self.device = pick_device(device)
        src = resolve_source(spec.model)
        self.tokenizer, model, src = load_tokenizer_and_model(
            src, trust_remote_code=spec.trust_remote_code, dtype=dtype or _default_dtype(self.device)
        )
        self.model = model.to(self.device)
        self.source = src
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        if not eos:
            raise InvalidInput("generator", f"{src.model_id}: neither the tokenizer nor the generation config names an EOS token")
        self.eos_ids = sorted(set(eos))
        # a chat template writes its own special tokens; plain prompts (base models) get the tokenizer's BOS
        self._add_special = not getattr(self.tokenizer, "chat_template", None)
        self.info = {
            "backend": "transformers",
            "model": src.model_id,
            "revision": src.revision,
            "weight_sha256": src.weight_sha256,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": self.device.type,
            "chat_template": bool(getattr(self.tokenizer, "chat_template", None)),
            "transformers_version": transformers.__version__,
        }

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = True) -> list[Generation]:
        requests = list(requests)
        if not requests:
            return []
        prompts = [render_chat(self.tokenizer, r.messages) for r in requests]
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=self._add_special)["input_ids"]]
        out: list[Generation | None] = [None] * len(requests)
        batches = plan_batches(requests, lengths, self.batch_size)
        for idx in tqdm(batches, desc="generate", unit="batch", disable=not progress):
            gens = self._generate_batch([requests[i] for i in idx], [prompts[i] for i in idx])
            for i, g in zip(idx, gens):
                out[i] = g
        return out  # type: ignore[return-value]

    def _generate_batch(self, reqs: list[GenerationRequest], prompts: list[str]) -> list[Generation]:
        s = reqs[0].sampling  # every request in a batch shares these settings apart from the seed
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=self._add_special)
        enc = enc.to(self.device)
        greedy = s.temperature == 0
        kwargs: dict[str, Any] = dict(
            max_new_tokens=s.max_new_tokens,
            do_sample=False,  # sampling happens in RowSampler; greedy picks its one finite score
            repetition_penalty=s.repetition_penalty,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids,
        )
        if not greedy:
            sampler = RowSampler([r.sampling.seed for r in reqs], s.temperature, s.top_p, self.device)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        try:
            with torch.inference_mode():
                seqs = self.model.generate(**enc, **kwargs)
        except (RuntimeError, ValueError) as e:  # out of memory, prompt longer than the context...
            raise GenerationError(f"transformers generation failed: {type(e).__name__}: {str(e)[:300]}") from e
        new_tokens = seqs[:, enc["input_ids"].shape[1] :].tolist()
        out = []
        for req, ids in zip(reqs, new_tokens):
            stop = next((j for j, t in enumerate(ids) if t in self.eos_ids), None)
            if stop is None:
                n, finish = len(ids), "length"
            else:
                n, finish = stop + 1, "stop"
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=True).strip()
            sampling = req.sampling.model_dump() | {
                "seed_used": None if greedy else req.sampling.seed,
                "seeding": "greedy" if greedy else "per_request",
                "batch_size": len(reqs),
            }
            out.append(Generation(req.key, text, dict(self.info), sampling, finish, n))
        return out
