"""Capture pooled responses of every unit at a site, for a list of sentences.

The sentences are tokenized once (truncated to ``max_length``), sorted by token count
(descending) when ``sort_by_length`` so each batch pads little, right-padded per batch, and run
through the model under ``torch.inference_mode()``. Each layer's (B, T, U) tensor is pooled inside
its hook (nothing per-token is kept; the pooled rows stay on the device until the batch is done)
and written as float16 at the sentences' original rows.
The forward pass stops after the deepest requested layer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.models.hashing import dataset_sha256
from neuroscribe.workers.activations.hooks import SiteHooks
from neuroscribe.workers.activations.loading import SubjectModel
from neuroscribe.workers.activations.pooling import Pooler, check_pooling, real_token_mask
from neuroscribe.workers.activations.sites import get_site
from neuroscribe.workers.activations.store import Responses, ResponsesMeta

F16_MAX = float(np.finfo(np.float16).max)  # 65504: responses are stored as float16

__all__ = ["Tokenized", "Batch", "tokenize_texts", "iter_batches", "check_layers", "token_values",
           "capture_responses"]


@dataclass
class Tokenized:
    ids: np.ndarray  # all sentences' token ids, concatenated (int64)
    special: np.ndarray  # same layout: 1 where the token is special
    lengths: np.ndarray  # tokens per sentence
    offsets: np.ndarray  # start of each sentence in ``ids``


@dataclass
class Batch:
    rows: np.ndarray  # the sentences' indices in the input
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    special_mask: torch.Tensor

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInput("sentences", "expected a list of sentences, got a single string")
    texts = list(texts)
    if not texts:
        raise InvalidInput("sentences", "no sentences given")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise InvalidInput(f"sentences:{i}", f"sentence {i} is empty or not a string: {t!r}")
    return texts


def tokenize_texts(tokenizer, texts: Sequence[str], max_length: int) -> Tokenized:
    """Tokenize once, with the tokenizer's special tokens, truncated to ``max_length``."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False,
                    return_special_tokens_mask=True, return_attention_mask=False,
                    return_token_type_ids=False)
    lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(texts))
    for i in np.flatnonzero(lengths == 0):
        raise InvalidInput(f"sentences:{i}", f"sentence {i} has no tokens: {texts[i]!r}")
    ids = np.fromiter((t for x in enc["input_ids"] for t in x), dtype=np.int64, count=int(lengths.sum()))
    special = np.fromiter((t for x in enc["special_tokens_mask"] for t in x), dtype=np.int64,
                          count=int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return Tokenized(ids, special, lengths, offsets)


def iter_batches(tok: Tokenized, batch_size: int, *, sort_by_length: bool, pad_id: int,
                 device: torch.device) -> Iterator[Batch]:
    """Right-padded batches; longest sentences first when ``sort_by_length``."""
    n = len(tok.lengths)
    order = np.argsort(-tok.lengths, kind="stable") if sort_by_length else np.arange(n)
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        lengths = tok.lengths[rows]
        width = int(lengths.max())
        mask = np.arange(width)[None, :] < lengths[:, None]  # (B, T)
        # flat positions of each row's tokens in tok.ids, in row-major order of ``mask``
        src = (tok.offsets[rows][:, None] + np.arange(width)[None, :])[mask]
        ids = np.full(mask.shape, pad_id, dtype=np.int64)
        special = np.zeros(mask.shape, dtype=np.int64)
        ids[mask] = tok.ids[src]
        special[mask] = tok.special[src]
        yield Batch(rows, torch.from_numpy(ids).to(device), torch.from_numpy(mask.astype(np.int64)).to(device),
                    torch.from_numpy(special).to(device))


def check_layers(layers: Sequence[int] | None, n_layers: int) -> list[int]:
    if layers is None:
        return list(range(n_layers))
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise InvalidInput("layers", f"layer {layer!r} is not an integer")
        if not 0 <= layer < n_layers:
            raise InvalidInput("layers", f"layer {layer} out of range 0..{n_layers - 1}")
        out.append(int(layer))
    if not out:
        raise InvalidInput("layers", "no layers given")
    if len(set(out)) != len(out):
        raise InvalidInput("layers", f"layers repeat: {list(layers)}")
    return sorted(out)


def _pad_id(tokenizer) -> int:
    pid = tokenizer.pad_token_id
    return 0 if pid is None else int(pid)


def token_values(subject: SubjectModel, texts: Sequence[str], *, site: str = "mlp_post",
                 layers: Sequence[int] | None = None, max_length: int = 128
                 ) -> tuple[dict[int, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Per-token values of one right-padded batch, rows in input order (for tests and debugging).

    Returns ``({layer: (B, T, U) float32 on CPU}, attention_mask (B, T), special_mask (B, T))``.
    """
    texts = _check_texts(texts)
    s = get_site(subject.model_type, site)
    chosen = check_layers(layers, subject.n_layers)
    tok = tokenize_texts(subject.tokenizer, texts, max_length)
    batch = next(iter_batches(tok, len(texts), sort_by_length=False, pad_id=_pad_id(subject.tokenizer),
                              device=subject.device))
    out: dict[int, torch.Tensor] = {}
    with torch.inference_mode(), SiteHooks(subject.model, s, chosen,
                                           lambda layer, v: out.__setitem__(layer, v.float().cpu())) as hooks:
        hooks.run(**batch.model_inputs())
    return out, batch.attention_mask.cpu(), batch.special_mask.cpu()


def capture_responses(subject: SubjectModel, texts: Sequence[str], *, site: str = "mlp_post",
                      pooling: str = "max", layers: Sequence[int] | None = None, batch_size: int = 32,
                      max_length: int = 128, sort_by_length: bool = True, progress: bool = True) -> Responses:
    """Pooled responses of every unit of ``site`` in ``layers`` (default: all), rows in input order."""
    texts = _check_texts(texts)
    s = get_site(subject.model_type, site)
    pooling = check_pooling(pooling)
    chosen = check_layers(layers, subject.n_layers)
    if int(batch_size) < 1:
        raise InvalidInput("batch_size", f"batch_size must be >= 1, got {batch_size}")
    if int(max_length) < 2:
        raise InvalidInput("max_length", f"max_length must be >= 2, got {max_length}")
    tok = tokenize_texts(subject.tokenizer, texts, int(max_length))
    n = len(texts)
    arrays: dict[int, np.ndarray] = {}
    state: dict = {"saturated": torch.zeros((), dtype=torch.int64, device=subject.device)}

    def on_value(layer: int, values: torch.Tensor) -> None:  # stays on the device: no sync per layer
        pooled = state["pooler"](values)
        # float16 storage: saturate at its largest finite value instead of turning into inf
        state["saturated"] += (pooled.abs() > F16_MAX).sum()
        state["pooled"][layer] = pooled.clamp(-F16_MAX, F16_MAX).to(torch.float16)

    batches = iter_batches(tok, int(batch_size), sort_by_length=sort_by_length,
                           pad_id=_pad_id(subject.tokenizer), device=subject.device)
    with torch.inference_mode(), SiteHooks(subject.model, s, chosen, on_value) as hooks, \
            tqdm(total=n, desc=f"{s.name} ({subject.model_type})", unit="sent", disable=not progress,
                 leave=False) as bar:
        for batch in batches:
            state["pooled"] = {}
            state["pooler"] = Pooler(pooling, real_token_mask(batch.attention_mask, batch.special_mask))
            hooks.run(**batch.model_inputs())
            for layer, pooled in state["pooled"].items():
                if layer not in arrays:
                    arrays[layer] = np.empty((n, pooled.shape[1]), dtype=np.float16)
                arrays[layer][batch.rows] = pooled.cpu().numpy()
            bar.update(len(batch.rows))
    units = {a.shape[1] for a in arrays.values()}
    if len(units) != 1 or set(arrays) != set(chosen):
        raise RuntimeError(f"site {s.name}: captured layers {sorted(arrays)} with units {sorted(units)}")
    saturated = int(state["saturated"])
    if saturated:
        warnings.warn(f"{saturated} pooled responses exceed the float16 range and were saturated at ±{F16_MAX:g}",
                      stacklevel=2)
    meta = ResponsesMeta(
        model_id=subject.model_id, revision=subject.revision, weight_sha256=subject.weight_sha256,
        model_type=subject.model_type, site=s.name, pooling=pooling, data_sha256=dataset_sha256(texts),
        n_sentences=n, units_per_layer=units.pop(), layers=chosen, max_length=int(max_length),
        n_saturated=saturated,
    )
    return Responses(layers=chosen, arrays=arrays, meta=meta)
