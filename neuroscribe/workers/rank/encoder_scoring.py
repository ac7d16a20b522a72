"""Scoring a sentence encoder's own output, for the interventions (docs/methods.md#c3): zero-shot labels.

Sentence encoders (a base model without a head, e.g. MiniLM): the model's own behaviour is its
sentence embedding, made as the model folder's sentence-transformers files say (``embedding_config``:
the Pooling config's modes over the last hidden state, attended tokens incl. [CLS]/[SEP], then the
Normalize module; mean pooling, normalised, without those files). ``EncoderScorer`` (the scorer of
``embedding_label_delta`` / ``EncoderTask``) embeds each label's description ONCE, without the
intervention (the reference points: only the texts move), and scores zero-shot P(c | text) =
softmax_c(cos(text, desc_c) / T), T = ``temperature`` (0.05): ``logprob`` / ``logodds`` /
``accuracy`` as for decoders (``lm_scoring.label_measures``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations.sites import get_architecture
from neuroscribe.workers.rank.lm_scoring import check_texts, label_measures, pad_batch, pad_id

__all__ = ["POOLING_MODES", "EmbeddingConfig", "embedding_config", "sentence_embeddings", "check_encoder",
           "EncoderScorer"]

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len", "weightedmean", "lasttoken")  # sentence-transformers order
_ST_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                    "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
                    "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


@dataclass(frozen=True)
class EmbeddingConfig:
    """How a sentence embedding is made: ``pooling`` modes over the last hidden state (concatenated in
    this order), then L2 normalisation when ``normalize``; texts truncated to ``max_length`` tokens.
    ``source`` says where it came from (the model folder's sentence-transformers files, or defaults)."""

    pooling: tuple[str, ...]
    normalize: bool
    max_length: int | None
    source: str


def _check_pooling(pooling) -> tuple[str, ...]:
    modes = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    if not modes or len(set(modes)) != len(modes) or any(m not in POOLING_MODES for m in modes):
        raise InvalidInput("pooling", f"expected pooling modes among {', '.join(POOLING_MODES)}, got {pooling!r}")
    return tuple(m for m in POOLING_MODES if m in modes)


def _read_json(path):
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InvalidInput("model", f"cannot read {path}: {e}") from None


def embedding_config(model, tokenizer=None, pooling: str | Sequence[str] | None = None) -> EmbeddingConfig:
    """The model's own sentence embedding: its folder's sentence-transformers ``modules.json`` (a
    Transformer, a Pooling with its ``config.json``, an optional Normalize; ``max_seq_length`` from
    ``sentence_bert_config.json``); without one, mean pooling over attended tokens, normalised.
    ``pooling`` overrides the folder's pooling modes. A module other than these (e.g. Dense) is refused."""
    from pathlib import Path

    limits = [getattr(tokenizer, "model_max_length", None), getattr(model.config, "max_position_embeddings", None)]
    limits = [int(x) for x in limits if isinstance(x, (int, np.integer)) and 0 < x < 1_000_000]
    max_len = min(limits) if limits else None
    name = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", "") or ""
    folder = Path(name) if name else None
    if folder is None or not (folder / "modules.json").is_file():
        return EmbeddingConfig(_check_pooling(pooling or "mean"), True, max_len, "default (mean, normalised)")
    modes, normalize = None, False
    for mod in _read_json(folder / "modules.json"):
        kind = str(mod.get("type", "")).rsplit(".", 1)[-1]
        sub = folder / str(mod.get("path", ""))
        if kind == "Transformer":
            cfg = sub / "sentence_bert_config.json"
            seq = _read_json(cfg).get("max_seq_length") if cfg.is_file() else None
            if seq:
                max_len = min(int(seq), max_len) if max_len else int(seq)
        elif kind == "Pooling":
            cfg = _read_json(sub / "config.json")
            modes = tuple(m for key, m in _ST_POOLING_KEYS.items() if cfg.get(key))
            if cfg.get("pooling_mode") and not modes:
                modes = (str(cfg["pooling_mode"]),)
        elif kind == "Normalize":
            normalize = True
        else:
            raise InvalidInput("model", f"{folder / 'modules.json'}: sentence-transformers module {kind!r} is not "
                                        f"supported (only Transformer, Pooling, Normalize)")
    if pooling is not None:
        modes = pooling
    return EmbeddingConfig(_check_pooling(modes or "mean"), normalize, max_len, str(folder / "modules.json"))


def _pool(h: torch.Tensor, mask: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """sentence-transformers pooling of (B, T, D) ``h`` over attended tokens (specials included)."""
    h, m = h.double(), mask.to(torch.float64).unsqueeze(-1)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(h[:, 0])
        elif mode == "max":
            out.append(h.masked_fill(m == 0, -1e9).amax(dim=1))
        elif mode in ("mean", "mean_sqrt_len"):
            n = m.sum(dim=1).clamp_min(1e-9)
            out.append((h * m).sum(dim=1) / (n if mode == "mean" else n.sqrt()))
        elif mode == "weightedmean":
            w = m * torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype)[None, :, None]
            out.append((h * w).sum(dim=1) / w.sum(dim=1).clamp_min(1e-9))
        else:  # lasttoken: the last attended position
            pos = torch.arange(h.shape[1], device=h.device).expand(mask.shape)
            last = torch.where(mask.bool(), pos, -1).amax(dim=1).clamp_min(0)
            out.append(h[torch.arange(h.shape[0], device=h.device), last])
    return torch.cat(out, dim=-1)


def _embed(model, seqs: list[list[int]], pad: int, cfg: EmbeddingConfig, batch_size: int) -> np.ndarray:
    """(n, D) float64 embeddings of token-id lists (right-padded batches through ``model.base_model``)."""
    dev = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for s0 in range(0, len(seqs), batch_size):
            ids, mask = pad_batch(seqs[s0:s0 + batch_size], pad, dev)
            res = model.base_model(input_ids=ids, attention_mask=mask)
            h = res.last_hidden_state if hasattr(res, "last_hidden_state") else res[0]
            e = _pool(h, mask, cfg.pooling)
            if cfg.normalize:
                e = torch.nn.functional.normalize(e, p=2, dim=-1)
            out.append(e.cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def _encode_texts(tokenizer, texts: list[str], cfg: EmbeddingConfig) -> list[list[int]]:
    kw = dict(truncation=True, max_length=cfg.max_length) if cfg.max_length else {}
    return [list(tokenizer(t, add_special_tokens=True, **kw)["input_ids"]) for t in texts]


def sentence_embeddings(model, tokenizer, texts: Sequence[str], *, pooling: str | Sequence[str] | None = None,
                        batch_size: int = 16) -> np.ndarray:
    """(n, D) sentence embeddings as ``embedding_config`` says (float64; unit rows when normalised)."""
    cfg = embedding_config(model, tokenizer, pooling)
    return _embed(model, _encode_texts(tokenizer, check_texts(texts), cfg), pad_id(tokenizer), cfg, int(batch_size))


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool):
        raise InvalidInput("temperature", f"must be a number, got {temperature!r}")
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise InvalidInput("temperature", f"must be a number, got {temperature!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise InvalidInput("temperature", f"must be finite and > 0, got {temperature!r}")
    return t


def check_encoder(model, model_type: str | None) -> str:
    """The model type, after checking the architecture has hook sites."""
    mt = model_type or model.config.model_type
    get_architecture(mt)  # SiteNotFound for an architecture without hook sites
    return mt


class EncoderScorer:
    """Zero-shot labels from a sentence encoder: P(c | text) = softmax_c(cos(e(text), e(label_texts[c])) / T).
    The label descriptions are embedded once, here (so before any intervention): only texts move."""

    measures = ("logodds", "logprob", "accuracy")

    def __init__(self, model, tokenizer, texts, labels, label_texts, temperature, pooling, batch_size: int):
        texts = check_texts(texts)
        self.temperature = _check_temperature(temperature)
        if not isinstance(label_texts, Mapping) or len(label_texts) < 2:
            raise InvalidInput("label_texts", "expected a mapping label -> description with 2+ labels")
        if isinstance(labels, str) or len(labels) != len(texts):
            raise InvalidInput("labels", f"expected one label per text ({len(texts)} texts)")
        missing = [y for y in dict.fromkeys(labels) if y not in label_texts]
        if missing:
            raise InvalidInput("label_texts", f"no description for label(s) {', '.join(map(repr, missing))}")
        self.classes = list(label_texts)
        descs = [label_texts[c] for c in self.classes]
        for c, d in zip(self.classes, descs):
            if not isinstance(d, str) or not d.strip():
                raise InvalidInput(f"label_texts:{c}", f"the description of label {c!r} is empty or not a string")
        self.labels = list(labels)
        self.y = np.array([self.classes.index(y) for y in labels])
        self.config = embedding_config(model, tokenizer, pooling)
        self.model, self.pad, self.batch_size = model, pad_id(tokenizer), int(batch_size)
        self.encs = _encode_texts(tokenizer, texts, self.config)
        ref = _embed(model, _encode_texts(tokenizer, descs, self.config), self.pad, self.config, self.batch_size)
        self.label_embeddings = ref / np.linalg.norm(ref, axis=1, keepdims=True).clip(1e-12)

    def log_probabilities(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n_labels) zero-shot log-probabilities over ``self.classes``."""
        e = _embed(self.model, [self.encs[r] for r in rows], self.pad, self.config, self.batch_size)
        cos = (e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)) @ self.label_embeddings.T
        z = cos / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        rows = np.asarray(rows)
        return label_measures(self.log_probabilities(rows), self.y[rows])
