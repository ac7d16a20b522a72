"""Used information (METHODS.md C.3; Antverg & Belinkov 2022): intervene on ranked units, measure the model.

``intervene`` sets, inside the forward pass and at every position, the chosen units
``layer_units[layer]`` of a hook site (``activations.sites``) of each layer:

``zero``       ``h_u <- 0``;
``mean``       ``h_u <- values[layer][u]`` (e.g. the dataset mean of the unit's pooled responses);
``translate``  ``h_u <- h_u + beta * (target_mean[layer][u] - source_mean[layer][u])``: the class
               means of the unit's responses, moving the unit from the source class toward the target
               class (the authors' code: ``h -= beta * q_source; h += beta * q_target``, beta = 8).

Per-unit vectors (``values``, ``source_mean``, ``target_mean``) map a layer to either ``n_units``
numbers (indexed by unit; also when every unit is chosen) or ``len(layer_units[layer])`` numbers
(aligned with the units); arguments a mode does not use are ignored. ``zero`` / ``mean`` wrap
``causal.fixed_units``; hooks are always removed on exit. Unlike the paper (which edits only the words
bearing the attribute), every position is edited.

Effects on the model's own output (per example, intervened minus clean; ``Delta``):

* decoders: ``continuation_logprob`` = sum over the continuation's tokens of log P(token | text, the
  tokens before it). ``label_logprob_delta`` scores ``text + suffix + continuations[c]`` for every
  class c: ``logprob`` = that of the example's label, ``logodds`` = logprob - log sum_{c' != label}
  P(continuation c') (binary: the plain log-odds against the other label), ``accuracy`` = 1 when the
  label's continuation is the most probable one.
* masked LMs: ``masked_prediction_delta`` replaces whitespace word ``word_index`` (every sub-token
  whose character span overlaps it) by ONE mask token; ``logprob`` = log P(the word's first
  sub-token) there, ``accuracy`` = 1 when it is the top prediction.
* sentence encoders (a base model without a head, e.g. MiniLM): the model's own behaviour is its
  sentence embedding, made as the model folder's sentence-transformers files say (``embedding_config``:
  the Pooling config's modes over the last hidden state, attended tokens incl. [CLS]/[SEP], then the
  Normalize module; mean pooling, normalised, without those files). ``embedding_label_delta``
  (``EncoderTask``) embeds each label's description ONCE, without the intervention (the reference
  points: only the texts move), and scores zero-shot P(c | text) = softmax_c(cos(text, desc_c) / T),
  T = ``temperature`` (0.05): ``logprob`` / ``logodds`` / ``accuracy`` as for decoders.

``intervention_effects`` runs every (mode, k): the top-k units per layer of a ranking versus
``n_random`` random k-sets per layer (seeded from ``(seed, k)``, the top-k excluded, the same draws
for every mode), with Student-t intervals over examples (paired for the difference). For
``translate`` each example moves from its label's class means toward ``translate_to[label]``
(default: the next class, cyclically, in sorted order, as in the authors' code).
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Hashable, Iterator, Mapping, Sequence

import numpy as np
import torch

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations.sites import Site, get_architecture, get_site
from neuroscribe.workers.experts.causal import DECODER_MODEL_TYPES, _t_interval, fixed_units

__all__ = ["MODES", "intervene", "random_units", "response_means", "continuation_logprob", "Delta",
           "label_logprob_delta", "masked_prediction_delta", "POOLING_MODES", "EmbeddingConfig",
           "embedding_config", "sentence_embeddings", "embedding_label_delta", "LabelTask", "MaskedTask",
           "EncoderTask", "Effect", "InterventionEffects", "intervention_effects"]

MODES = ("zero", "mean", "translate")
UnitMap = Mapping[int, Sequence[int] | np.ndarray]
MeanMap = Mapping[int, Sequence[float] | np.ndarray]


# ---------------------------------------------------------------- validation and the hook plan
def _check_units(units, layer: int, n_layers: int | None, n_units: int, fld: str) -> np.ndarray:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise InvalidInput(fld, f"a layer must be an integer, got {layer!r}")
    if not 0 <= layer < (n_layers if n_layers is not None else layer + 1):
        raise InvalidInput(fld, f"layer {layer} out of range: the model has {n_layers} layers")
    arr = np.asarray(units)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInput(fld, f"unit indices must be a 1-D list of integers, got {arr.dtype} {arr.shape}")
    if arr.min() < 0 or arr.max() >= n_units:
        raise InvalidInput(fld, f"unit index out of range: the site has {n_units} units per layer")
    if len(np.unique(arr)) != len(arr):
        raise InvalidInput(fld, "a unit is given twice")
    return arr.astype(np.int64)


def _check_mode(mode) -> str:
    mode = str(getattr(mode, "value", mode))
    if mode not in MODES:
        raise InvalidInput("mode", f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    return mode


def _check_beta(beta) -> float:
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise InvalidInput("beta", f"must be a number, got {beta!r}") from None
    if not math.isfinite(b):
        raise InvalidInput("beta", f"must be finite, got {beta!r}")
    return b


def _per_unit(given, name: str, mode: str, layer: int, idx: np.ndarray, n_units: int) -> np.ndarray:
    if given is None:
        raise InvalidInput(name, f"mode {mode!r} needs {name}")
    try:
        arr = np.asarray(given[layer], dtype=np.float64)
    except (KeyError, IndexError):
        raise InvalidInput(f"{name}:{layer}", f"no values for layer {layer}") from None
    except (TypeError, ValueError):
        raise InvalidInput(f"{name}:{layer}", "values must be numbers") from None
    if arr.ndim != 1 or len(arr) not in (n_units, len(idx)):
        raise InvalidInput(f"{name}:{layer}", f"expected {n_units} values (one per unit) or {len(idx)} "
                                              f"(one per chosen unit), got shape {arr.shape}")
    out = arr[idx] if len(arr) == n_units else arr
    if not np.isfinite(out).all():
        raise InvalidInput(f"{name}:{layer}", "a value is not finite")
    return out


def _sizes(model, model_type: str | None, site: str) -> tuple[Site, int, int]:
    model_type = model_type or model.config.model_type
    s = get_site(model_type, site)
    return s, get_architecture(model_type).n_layers(model.config), s.units(model.config)


@dataclass(frozen=True)
class _Plan:
    site: Site
    mode: str
    edits: dict  # layer -> (unit indices, replacement values or shifts)


def _plan(model, model_type, site, layer_units, mode, values, source_mean, target_mean, beta) -> _Plan:
    mode, beta = _check_mode(mode), _check_beta(beta)
    s, n_layers, n_units = _sizes(model, model_type, site)
    if not isinstance(layer_units, Mapping):
        raise InvalidInput("layer_units", "expected a mapping layer -> unit indices")
    edits = {}
    for layer, units in layer_units.items():
        idx = _check_units(units, layer, n_layers, n_units, f"layer_units:{layer}")
        if mode == "zero":
            v = np.zeros(len(idx))
        elif mode == "mean":
            v = _per_unit(values, "values", mode, layer, idx, n_units)
        else:
            t = _per_unit(target_mean, "target_mean", mode, layer, idx, n_units)
            v = beta * (t - _per_unit(source_mean, "source_mean", mode, layer, idx, n_units))
        edits[int(layer)] = (idx, v)
    return _Plan(s, mode, edits)


def _shift(x: torch.Tensor, idx: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    idx = idx.to(x.device)
    x[..., idx] = x[..., idx] + shift.to(x.device, x.dtype)
    return x


@contextmanager
def _apply(model, model_type: str | None, plan: _Plan) -> Iterator[None]:
    model_type = model_type or model.config.model_type
    if plan.mode != "translate":  # zero / mean: fixed values, exactly causal.fixed_units
        with fixed_units(model, model_type, plan.site.name, plan.edits):
            yield
        return
    handles = []
    try:
        for layer, (idx, shift) in plan.edits.items():
            if not len(idx):
                continue
            module = model.base_model.get_submodule(plan.site.module_path(layer))
            i, sh = torch.as_tensor(idx), torch.as_tensor(shift, dtype=torch.float32)
            if plan.site.hook == "input":
                def pre(mod, args, i=i, sh=sh):
                    return (_shift(args[0], i, sh), *args[1:])
                handles.append(module.register_forward_pre_hook(pre))
            else:
                def post(mod, args, out, i=i, sh=sh):
                    if isinstance(out, (tuple, list)):
                        return type(out)((_shift(out[0], i, sh), *out[1:]))
                    return _shift(out, i, sh)
                handles.append(module.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def intervene(model, model_type: str | None, site: str, layer_units: UnitMap, mode: str, *,
              values: MeanMap | None = None, source_mean: MeanMap | None = None,
              target_mean: MeanMap | None = None, beta: float = 8.0) -> Iterator[None]:
    """Within the block, ``mode`` edits units ``layer_units[layer]`` of ``site`` at every position."""
    plan = _plan(model, model_type, site, layer_units, mode, values, source_mean, target_mean, beta)
    with _apply(model, model_type, plan):
        yield


def random_units(layer_units: UnitMap, n_units: int, *, n_random: int = 1,
                 seed: int | Sequence[int] = 0) -> list[dict[int, np.ndarray]]:
    """``n_random`` draws of as many units per layer as ``layer_units`` has, never one of those (sorted)."""
    if int(n_random) < 1:
        raise InvalidInput("n_random", f"need at least one random draw, got {n_random}")
    given = {int(L): _check_units(u, L, None, n_units, f"layer_units:{L}") for L, u in layer_units.items()}
    for layer, idx in given.items():
        if n_units - len(idx) < len(idx):
            raise InvalidInput(f"layer_units:{layer}", f"{len(idx)} units leave only {n_units - len(idx)} "
                                                       f"others to draw as many random ones from")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise InvalidInput("seed", f"expected a non-negative integer, got {seed!r}") from None
    draws = []
    for _ in range(int(n_random)):
        draws.append({L: np.sort(rng.choice(np.setdiff1d(np.arange(n_units), given[L]), size=len(given[L]),
                                            replace=False)).astype(np.int64) for L in sorted(given)})
    return draws


def response_means(responses: Mapping[int, np.ndarray], labels: Sequence[Hashable] | None = None):
    """``(unit_means, class_means)`` of pooled responses ``layer -> (n, n_units)``: ``{layer: (n_units,)}``
    and ``{class: {layer: (n_units,)}}`` (``None`` without ``labels``)."""
    arrs = {int(L): np.asarray(r, dtype=np.float64) for L, r in responses.items()}
    for L, a in arrs.items():
        if a.ndim != 2 or not len(a) or (labels is not None and len(a) != len(labels)):
            raise InvalidInput(f"responses:{L}", f"expected (n_examples, n_units) responses, got {a.shape}")
    means = {L: a.mean(axis=0) for L, a in arrs.items()}
    if labels is None:
        return means, None
    rows = {c: np.array([y == c for y in labels]) for c in _classes(labels)}
    return means, {c: {L: a[r].mean(axis=0) for L, a in arrs.items()} for c, r in rows.items()}


def _classes(labels) -> list:
    seen = list(dict.fromkeys(labels))
    try:
        return sorted(seen)
    except TypeError:
        return seen


# ---------------------------------------------------------------- scoring the model's output
def _texts(texts, name: str = "texts") -> list[str]:
    if isinstance(texts, str) or not list(texts):
        raise InvalidInput(name, "expected a non-empty list of texts")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise InvalidInput(f"{name}:{i}", f"text {i} is empty or not a string: {t!r}")
    return list(texts)


def _check_model(model, tokenizer, model_type: str | None, *, decoder: bool) -> str:
    mt = model_type or model.config.model_type
    get_architecture(mt)  # SiteNotFound for an architecture without hook sites
    if decoder != (mt in DECODER_MODEL_TYPES):
        want = "a causal decoder" if decoder else "a masked language model"
        raise InvalidInput("model_type", f"this measure needs {want}; {mt!r} is not one")
    if model.get_output_embeddings() is None:
        raise InvalidInput("model", "the model has no LM head: load it as AutoModelForCausalLM / "
                                    "AutoModelForMaskedLM")
    if not decoder and tokenizer.mask_token_id is None:
        raise InvalidInput("tokenizer", "the tokenizer has no mask token")
    return mt


def _encode_continuation(tokenizer, text: str, cont: str, fld: str) -> tuple[list[int], int]:
    """Token ids of ``text + cont`` (trailing special tokens dropped) and the continuation's first position."""
    if not getattr(tokenizer, "is_fast", False):
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        return ids + list(tokenizer(cont, add_special_tokens=False)["input_ids"]), len(ids)
    enc = tokenizer(text + cont, add_special_tokens=True, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    b = len(text)
    pos = [j for j, ((s, e), sp) in enumerate(zip(enc["offset_mapping"], enc["special_tokens_mask"]))
           if not sp and e > b]
    if not pos:
        raise InvalidInput(fld, f"the continuation {cont!r} has no tokens")
    start = pos[0]
    if text[enc["offset_mapping"][start][0]:b].strip():
        raise InvalidInput(fld, f"the continuation {cont!r} merges with the end of the text into one token "
                                f"(start it with a space)")
    if start == 0:
        raise InvalidInput(fld, "the text has no tokens before the continuation")
    return list(enc["input_ids"][: pos[-1] + 1]), start


def _pad_batch(seqs: list[list[int]], pad: int, dev):
    width = max(map(len, seqs))
    ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs], device=dev)
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs], device=dev)
    return ids, mask


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _sequence_logprobs(model, encs: list[tuple[list[int], int]], pad: int, batch_size: int) -> np.ndarray:
    """Per ``(ids, start)``: sum of log P(ids[j] | ids[:j]) for j >= start (right-padded batches)."""
    dev = next(model.parameters()).device
    out = np.zeros(len(encs), dtype=np.float64)
    with torch.inference_mode():
        for s0 in range(0, len(encs), batch_size):
            chunk = encs[s0:s0 + batch_size]
            ids, mask = _pad_batch([e[0] for e in chunk], pad, dev)
            logits = model(input_ids=ids, attention_mask=mask).logits
            b = [i for i, (x, st) in enumerate(chunk) for _ in range(st, len(x))]
            j = [p for x, st in chunk for p in range(st, len(x))]
            bt, jt = torch.tensor(b, device=dev), torch.tensor(j, device=dev)
            lp = torch.log_softmax(logits[bt, jt - 1].double(), dim=-1)[torch.arange(len(j), device=dev), ids[bt, jt]]
            np.add.at(out, s0 + np.asarray(b), lp.cpu().numpy())
    return out


def continuation_logprob(model, tokenizer, texts: Sequence[str], continuations: str | Sequence[str], *,
                         batch_size: int = 16) -> np.ndarray:
    """Per text, ``log P(continuation | text)`` summed over the continuation's tokens (float64)."""
    texts = _texts(texts)
    conts = [continuations] * len(texts) if isinstance(continuations, str) else list(continuations)
    if len(conts) != len(texts):
        raise InvalidInput("continuations", f"{len(conts)} continuations for {len(texts)} texts")
    encs = [_encode_continuation(tokenizer, t, c, f"continuations:{i}") for i, (t, c) in enumerate(zip(texts, conts))]
    return _sequence_logprobs(model, encs, _pad_id(tokenizer), int(batch_size))


class _LabelScorer:
    measures = ("logodds", "logprob", "accuracy")

    def __init__(self, model, tokenizer, texts, labels, continuations, suffix: str, batch_size: int):
        texts = _texts(texts)
        if not isinstance(continuations, Mapping) or len(continuations) < 2:
            raise InvalidInput("continuations", "expected a mapping label -> continuation with 2+ labels")
        if len(labels) != len(texts):
            raise InvalidInput("labels", f"{len(labels)} labels for {len(texts)} texts")
        self.classes = list(continuations)
        for i, y in enumerate(labels):
            if y not in continuations:
                raise InvalidInput(f"labels:{i}", f"label {y!r} has no continuation")
        self.labels = list(labels)
        self.y = np.array([self.classes.index(y) for y in labels])
        self.encs = [[_encode_continuation(tokenizer, t + suffix, continuations[c], f"continuations:{c}")
                      for c in self.classes] for t in texts]
        self.model, self.pad, self.batch_size = model, _pad_id(tokenizer), int(batch_size)

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        k = len(self.classes)
        lp = _sequence_logprobs(self.model, [e for r in rows for e in self.encs[r]], self.pad,
                                self.batch_size).reshape(len(rows), k)
        y = self.y[rows]
        own = lp[np.arange(len(rows)), y]
        others = np.where(np.arange(k) == y[:, None], -np.inf, lp)
        mx = others.max(axis=1, keepdims=True)
        rest = mx[:, 0] + np.log(np.exp(others - mx).sum(axis=1))
        return {"logodds": own - rest, "logprob": own, "accuracy": (lp.argmax(axis=1) == y).astype(np.float64)}


class _MaskedScorer:
    measures = ("logprob", "accuracy")

    def __init__(self, model, tokenizer, texts, word_index, batch_size: int):
        texts = _texts(texts)
        if not getattr(tokenizer, "is_fast", False):
            raise InvalidInput("tokenizer", "masking a word needs a fast tokenizer (character offsets)")
        per_text = isinstance(word_index, (Sequence, np.ndarray)) and not isinstance(word_index, str)
        wis = list(word_index) if per_text else [word_index] * len(texts)
        if len(wis) != len(texts):
            raise InvalidInput("word_index", f"{len(wis)} word indices for {len(texts)} texts")
        self.encs = []
        unk = tokenizer.unk_token_id
        for i, (t, w) in enumerate(zip(texts, wis)):
            fld = f"word_index:{i}" if per_text else "word_index"
            words = [m.span() for m in re.finditer(r"\S+", t)]
            if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or not 0 <= w < len(words):
                raise InvalidInput(fld, f"word {w!r} is outside text {i}, which has {len(words)} words")
            a, b = words[w]
            enc = tokenizer(t, add_special_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True)
            pos = [j for j, ((s, e), sp) in enumerate(zip(enc["offset_mapping"], enc["special_tokens_mask"]))
                   if not sp and e > s and s < b and e > a]
            ids = list(enc["input_ids"])
            if not pos or ids[pos[0]] == unk:
                raise InvalidInput(fld, f"word {t[a:b]!r} of text {i} has no known token")
            self.encs.append((ids[:pos[0]] + [tokenizer.mask_token_id] + ids[pos[-1] + 1:], pos[0], ids[pos[0]]))
        self.model, self.pad, self.batch_size = model, _pad_id(tokenizer), int(batch_size)

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        dev = next(self.model.parameters()).device
        lp, acc = np.empty(len(rows)), np.empty(len(rows))
        with torch.inference_mode():
            for s0 in range(0, len(rows), self.batch_size):
                chunk = [self.encs[r] for r in rows[s0:s0 + self.batch_size]]
                ids, mask = _pad_batch([c[0] for c in chunk], self.pad, dev)
                logits = self.model(input_ids=ids, attention_mask=mask).logits
                at = logits[torch.arange(len(chunk), device=dev), torch.tensor([c[1] for c in chunk], device=dev)]
                tgt = torch.tensor([c[2] for c in chunk], device=dev)
                lp[s0:s0 + len(chunk)] = torch.log_softmax(at.double(), -1).gather(1, tgt[:, None])[:, 0].cpu().numpy()
                acc[s0:s0 + len(chunk)] = (at.argmax(-1) == tgt).double().cpu().numpy()
        return {"logprob": lp, "accuracy": acc}


# ---------------------------------------------------------------- sentence encoders (zero-shot labels)
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
            ids, mask = _pad_batch(seqs[s0:s0 + batch_size], pad, dev)
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
    return _embed(model, _encode_texts(tokenizer, _texts(texts), cfg), _pad_id(tokenizer), cfg, int(batch_size))


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


def _check_encoder(model, model_type: str | None) -> str:
    mt = model_type or model.config.model_type
    get_architecture(mt)  # SiteNotFound for an architecture without hook sites
    return mt


class _EncoderScorer:
    """Zero-shot labels from a sentence encoder: P(c | text) = softmax_c(cos(e(text), e(label_texts[c])) / T).
    The label descriptions are embedded once, here (so before any intervention): only texts move."""

    measures = ("logodds", "logprob", "accuracy")

    def __init__(self, model, tokenizer, texts, labels, label_texts, temperature, pooling, batch_size: int):
        texts = _texts(texts)
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
        self.model, self.pad, self.batch_size = model, _pad_id(tokenizer), int(batch_size)
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
        lp = self.log_probabilities(rows)
        y = self.y[rows]
        own = lp[np.arange(len(rows)), y]
        others = np.where(np.arange(lp.shape[1]) == y[:, None], -np.inf, lp)
        mx = others.max(axis=1, keepdims=True)
        rest = mx[:, 0] + np.log(np.exp(others - mx).sum(axis=1))
        return {"logodds": own - rest, "logprob": own, "accuracy": (lp.argmax(axis=1) == y).astype(np.float64)}


@dataclass(frozen=True)
class Delta:
    """Per-example measures without (``base``) and with (``after``) an intervention; ``delta[m]`` = after - base."""

    base: dict[str, np.ndarray] = field(repr=False)
    after: dict[str, np.ndarray] = field(repr=False)

    measures = property(lambda self: tuple(self.base))
    delta_logprob = property(lambda self: self["logprob"])
    delta_logodds = property(lambda self: self["logodds"])
    delta_accuracy = property(lambda self: self["accuracy"])

    def __getitem__(self, measure: str) -> np.ndarray:
        if measure not in self.base:
            raise InvalidInput("measure", f"unknown measure {measure!r}; here: {', '.join(self.base)}")
        return self.after[measure] - self.base[measure]


def _delta(model, model_type, scorer, site, layer_units, mode, values, source_mean, target_mean, beta) -> Delta:
    plan = _plan(model, model_type, site, layer_units, mode, values, source_mean, target_mean, beta)
    rows = np.arange(len(scorer.encs))
    base = scorer(rows)
    with _apply(model, model_type, plan):
        return Delta(base, scorer(rows))


def label_logprob_delta(model, tokenizer, texts: Sequence[str], labels: Sequence[Hashable],
                        continuations: Mapping[Hashable, str], layer_units: UnitMap, mode: str, *,
                        suffix: str = "", site: str = "mlp_post", model_type: str | None = None,
                        values: MeanMap | None = None, source_mean: MeanMap | None = None,
                        target_mean: MeanMap | None = None, beta: float = 8.0, batch_size: int = 16) -> Delta:
    """Decoder: change of ``logprob`` / ``logodds`` / ``accuracy`` of the label continuation per text."""
    mt = _check_model(model, tokenizer, model_type, decoder=True)
    scorer = _LabelScorer(model, tokenizer, texts, labels, continuations, suffix, batch_size)
    return _delta(model, mt, scorer, site, layer_units, mode, values, source_mean, target_mean, beta)


def masked_prediction_delta(model, tokenizer, texts: Sequence[str], word_index: int | Sequence[int],
                            layer_units: UnitMap, mode: str, *, site: str = "mlp_post",
                            model_type: str | None = None, values: MeanMap | None = None,
                            source_mean: MeanMap | None = None, target_mean: MeanMap | None = None,
                            beta: float = 8.0, batch_size: int = 16) -> Delta:
    """Masked LM: change of ``logprob`` / ``accuracy`` of the masked word's first sub-token per text."""
    mt = _check_model(model, tokenizer, model_type, decoder=False)
    scorer = _MaskedScorer(model, tokenizer, texts, word_index, batch_size)
    return _delta(model, mt, scorer, site, layer_units, mode, values, source_mean, target_mean, beta)


def embedding_label_delta(model, tokenizer, texts: Sequence[str], labels: Sequence[Hashable],
                          label_texts: Mapping[Hashable, str], layer_units: UnitMap, mode: str, *,
                          temperature: float = 0.05, pooling: str | Sequence[str] | None = None,
                          site: str = "mlp_post", model_type: str | None = None, values: MeanMap | None = None,
                          source_mean: MeanMap | None = None, target_mean: MeanMap | None = None,
                          beta: float = 8.0, batch_size: int = 16) -> Delta:
    """Sentence encoder: change of the zero-shot ``logprob`` / ``logodds`` / ``accuracy`` of each text's
    label, P(c) = softmax_c(cos(text, label_texts[c]) / temperature); the descriptions are embedded
    once without the intervention."""
    mt = _check_encoder(model, model_type)
    scorer = _EncoderScorer(model, tokenizer, texts, labels, label_texts, temperature, pooling, batch_size)
    return _delta(model, mt, scorer, site, layer_units, mode, values, source_mean, target_mean, beta)


# ---------------------------------------------------------------- ranked vs random, per (mode, k)
@dataclass(frozen=True)
class LabelTask:
    """Decoder task: ``text + suffix + continuations[label]``, e.g. suffix " It was", {"pos": " great", ...}."""

    texts: Sequence[str]
    labels: Sequence[Hashable]
    continuations: Mapping[Hashable, str]
    suffix: str = ""


@dataclass(frozen=True)
class MaskedTask:
    """Masked-LM task: word ``word_index`` of each text is masked; ``labels`` are needed for translate."""

    texts: Sequence[str]
    word_index: int | Sequence[int]
    labels: Sequence[Hashable] | None = None


@dataclass(frozen=True)
class EncoderTask:
    """Sentence-encoder task (a base model, no head): zero-shot labels from the model's own sentence
    embedding, P(c | text) = softmax_c(cos(text, label_texts[c]) / temperature), e.g.
    ``{1: "A positive review.", 0: "A negative review."}``. ``pooling`` None: as the model folder's
    sentence-transformers files say (``embedding_config``)."""

    texts: Sequence[str]
    labels: Sequence[Hashable]
    label_texts: Mapping[Hashable, str]
    temperature: float = 0.05
    pooling: str | Sequence[str] | None = None


@dataclass
class Effect:
    """One (mode, k, measure): per-example deltas of the ranked top-k and of each random draw."""

    mode: str
    k: int
    measure: str
    ranked: np.ndarray = field(repr=False)  # (n_examples,)
    random_draws: np.ndarray = field(repr=False)  # (n_random, n_examples)
    confidence: float = 0.95

    n_examples = property(lambda self: len(self.ranked))
    random = property(lambda self: self.random_draws.mean(axis=0))
    difference = property(lambda self: self.ranked - self.random)
    mean_ranked = property(lambda self: float(self.ranked.mean()))
    mean_random = property(lambda self: float(self.random.mean()))
    mean_difference = property(lambda self: float(self.difference.mean()))
    ci_ranked = property(lambda self: _t_interval(self.ranked, self.confidence))
    ci_random = property(lambda self: _t_interval(self.random, self.confidence))
    ci_difference = property(lambda self: _t_interval(self.difference, self.confidence))

    def summary(self) -> dict:
        keys = ("mode", "k", "measure", "n_examples", "mean_ranked", "ci_ranked", "mean_random", "ci_random",
                "mean_difference", "ci_difference")
        return {key: getattr(self, key) for key in keys}


@dataclass
class InterventionEffects:
    """``effects[(mode, k, measure)]``; ``self[mode, k]`` uses ``measure`` (the task's main one)."""

    site: str
    measure: str
    baseline: dict[str, np.ndarray] = field(repr=False)
    effects: dict[tuple[str, int, str], Effect] = field(repr=False)
    top_units: dict[int, dict[int, list[int]]] = field(repr=False)  # k -> layer -> units
    random_units: dict[int, list[dict[int, list[int]]]] = field(repr=False)  # k -> draws
    seed: int = 0

    def __getitem__(self, key) -> Effect:
        return self.effects[key if len(key) == 3 else (*key, self.measure)]

    def summary(self) -> list[dict]:
        return [e.summary() for e in self.effects.values()]


def _full_means(means, name: str, layers, n_units: int) -> None:
    for L in layers:
        try:
            arr = np.asarray(means[L], dtype=np.float64)
        except (KeyError, IndexError, TypeError, ValueError):
            raise InvalidInput(f"{name}:{L}", f"expected {n_units} numbers for layer {L}") from None
        if arr.shape != (n_units,) or not np.isfinite(arr).all():
            raise InvalidInput(f"{name}:{L}", f"expected {n_units} finite numbers for layer {L}, got {arr.shape}")


def intervention_effects(model, tokenizer, task: LabelTask | MaskedTask | EncoderTask,
                         ranking: Mapping[int, Sequence[int]], ks: Sequence[int], *, modes: Sequence[str] = MODES, site: str = "mlp_post",
                         model_type: str | None = None, unit_means: MeanMap | None = None,
                         class_means: Mapping[Hashable, MeanMap] | None = None,
                         translate_to: Mapping[Hashable, Hashable] | None = None, beta: float = 8.0,
                         n_random: int = 5, seed: int = 0, confidence: float = 0.95,
                         batch_size: int = 16) -> InterventionEffects:
    """Per (mode, k): the effect of the top-k units of ``ranking[layer]`` (an order, best first, or an
    object with ``.order``) of each layer vs random k-sets; means as ``response_means`` returns them."""
    if isinstance(task, LabelTask):
        mt = _check_model(model, tokenizer, model_type, decoder=True)
        scorer = _LabelScorer(model, tokenizer, task.texts, task.labels, task.continuations, task.suffix, batch_size)
        labels = scorer.labels
    elif isinstance(task, MaskedTask):
        mt = _check_model(model, tokenizer, model_type, decoder=False)
        scorer = _MaskedScorer(model, tokenizer, task.texts, task.word_index, batch_size)
        labels = None if task.labels is None else list(task.labels)
    elif isinstance(task, EncoderTask):
        mt = _check_encoder(model, model_type)
        scorer = _EncoderScorer(model, tokenizer, task.texts, task.labels, task.label_texts, task.temperature,
                                task.pooling, batch_size)
        labels = scorer.labels
    else:
        raise InvalidInput("task", f"expected a LabelTask, a MaskedTask or an EncoderTask, "
                                   f"got {type(task).__name__}")
    s, n_layers, n_units = _sizes(model, mt, site)
    beta = _check_beta(beta)
    modes = [_check_mode(m) for m in ([modes] if isinstance(modes, str) else modes)]
    if not modes or len(set(modes)) != len(modes):
        raise InvalidInput("modes", "expected distinct modes")
    if int(n_random) < 1:
        raise InvalidInput("n_random", f"need at least one random draw, got {n_random}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInput("seed", f"expected a non-negative integer, got {seed!r}")
    if not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must lie in (0, 1), got {confidence}")
    if not isinstance(ranking, Mapping) or not ranking:
        raise InvalidInput("ranking", "expected a non-empty mapping layer -> units, best first")
    order = {int(L): _check_units(getattr(r, "order", r), L, n_layers, n_units, f"ranking:{L}")
             for L, r in ranking.items()}
    ks = [ks] if isinstance(ks, (int, np.integer)) else list(ks)
    if not ks or len(set(ks)) != len(ks) or any(isinstance(k, bool) or not isinstance(k, (int, np.integer))
                                                 or k < 0 for k in ks):
        raise InvalidInput("ks", f"expected distinct non-negative integers, got {ks}")
    for k in ks:
        short = [L for L, o in order.items() if len(o) < k]
        if short or 2 * k > n_units:
            raise InvalidInput("ks", f"k = {k} needs {k} ranked units per layer (layers {short} have fewer) "
                                     f"and {k} others to draw from ({n_units} units per layer)")
    n = len(scorer.encs)
    if "mean" in modes:
        if unit_means is None:
            raise InvalidInput("unit_means", "mode 'mean' needs unit_means (layer -> per-unit mean)")
        _full_means(unit_means, "unit_means", order, n_units)
    if "translate" in modes:
        if class_means is None or not isinstance(class_means, Mapping) or len(class_means) < 2:
            raise InvalidInput("class_means", "mode 'translate' needs class_means for 2+ classes")
        if labels is None or len(labels) != n:
            raise InvalidInput("task.labels", "mode 'translate' needs one label per text")
        for c, m in class_means.items():
            _full_means(m, f"class_means:{c}", order, n_units)
        cyc = _classes(list(class_means))
        to = dict(translate_to) if translate_to is not None else {c: cyc[(i + 1) % len(cyc)] for i, c in enumerate(cyc)}
        for i, y in enumerate(labels):
            if y not in class_means:
                raise InvalidInput("class_means", f"no class means for label {y!r} (text {i})")
            if to.get(y) not in class_means or to[y] == y:
                raise InvalidInput("translate_to", f"label {y!r} needs another class with means to move toward")
        groups = [(np.flatnonzero(np.array([lab == c for lab in labels])), c) for c in _classes(labels)]

    rows = np.arange(n)
    base = scorer(rows)

    def run(units: dict, mode: str) -> dict[str, np.ndarray]:
        if mode != "translate":
            with _apply(model, mt, _plan(model, mt, s.name, units, mode, unit_means, None, None, beta)):
                return scorer(rows)
        out = {m: np.empty(n) for m in scorer.measures}
        for idx, c in groups:
            plan = _plan(model, mt, s.name, units, mode, None, class_means[c], class_means[to[c]], beta)
            with _apply(model, mt, plan):
                for m, v in scorer(idx).items():
                    out[m][idx] = v
        return out

    effects, tops, rands = {}, {}, {}
    for k in ks:
        top = {L: o[:k] for L, o in order.items()}
        draws = random_units(top, n_units, n_random=n_random, seed=[int(seed), int(k)])
        tops[int(k)] = {L: u.tolist() for L, u in top.items()}
        rands[int(k)] = [{L: u.tolist() for L, u in d.items()} for d in draws]
        for mode in modes:
            ranked = run(top, mode)
            rand = [run(d, mode) for d in draws]
            for m in scorer.measures:
                effects[mode, int(k), m] = Effect(mode, int(k), m, ranked[m] - base[m],
                                                  np.stack([r[m] - base[m] for r in rand]), confidence)
    return InterventionEffects(s.name, scorer.measures[0], base, effects, tops, rands, int(seed))
