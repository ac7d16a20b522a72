"""How a transformers generator loads its model, and the provenance it records.

``spec.model`` may be a packaged alias (``smollm2``: a GGUF file inside an installed package),
a local folder, a local ``.gguf`` file, or a Hugging Face id; ``neuroscribe.workers.models.hub`` finds it.
A Hugging Face id already in the local cache loads offline (``local_files_only``); otherwise the
backend (transformers, vLLM) downloads it unless ``HF_HUB_OFFLINE`` is set.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from neuroscribe.errors import ModelNotFound

from neuroscribe.workers.models.hub import ModelSource, resolve_model

__all__ = ["ModelSource", "resolve_source", "load_tokenizer_and_model"]


def resolve_source(name: str) -> ModelSource:
    """Find ``name`` without loading it; ``ModelNotFound`` when it cannot exist here."""
    return resolve_model(name, field="generator", download=False)


def load_tokenizer_and_model(src: ModelSource, *, trust_remote_code: bool, dtype: Any) -> tuple[Any, Any, ModelSource]:
    """Tokenizer (left padding, a pad token) and model in eval mode, plus the source completed
    with revision and weight files once a download has put them in the cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = src.pretrained_kwargs(trust_remote_code)
    try:
        tok = AutoTokenizer.from_pretrained(src.load_from, **kw)
        model = AutoModelForCausalLM.from_pretrained(src.load_from, dtype=dtype, **kw)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ModelNotFound("generator", f"cannot load {src.model_id!r}: {first}") from e
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    if src.path is None:  # transformers downloaded it: the cached snapshot gives revision and weights
        with suppress(ModelNotFound):
            src = resolve_model(src.model_id, field="generator", local_files_only=True)
    return tok, model, src
