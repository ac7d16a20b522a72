"""Causal check (docs/methods.md#a7): fix a concept's expert units, measure its words' log-probability.

* ``load_causal_lm``: the model WITH its LM head, resolved like ``load_subject_model``.
* ``fixed_units``: chosen units of a hook site (``activations.sites``) read given values at every
  position (validated here, then ``activations.edits.edit_units`` with ``replace_units``: output
  site: forward hook returning a modified copy; input site, e.g. Llama's ``down_proj`` input:
  forward pre-hook returning modified args); hooks always removed on exit.
* ``concept_logprob``: per prompt, ``log sum_w P(first token of " " + w | prompt)``: the next-token
  probability of each word's first sub-token, with a leading space (how a word follows another in
  BPE / SentencePiece vocabularies; a whitespace-only leading piece like a bare "▁" is skipped;
  words sharing a first token count once). Prompts are right-stripped, tokenized with special
  tokens and right-padded HERE, whatever the tokenizer's ``padding_side``, so default positions
  equal the unpadded ones; each score is read at the prompt's last real token.
* ``causal_effect``: ``delta_experts[p] = logprob_fixed[p] - logprob_baseline[p]``; ``delta_random[p]``
  = mean of that delta over ``n_random`` draws of as many random units per layer as it has experts
  (experts excluded), each fixed to its own value. Intervals: Student-t over prompts (paired for
  the difference; ``workers.stats.t_bounds``), NaN with one prompt. Values come from
  ``unit_value``: ``(layer, unit) -> float``, or ``layer -> (n_positive, units)`` responses whose
  per-unit median is used (the default, docs/methods.md#a7).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from neuroscribe.errors import InvalidInput, ModelNotFound
from neuroscribe.workers.activations.edits import edit_units, replace_units, site_sizes
from neuroscribe.workers.activations.loading import resolve_device
from neuroscribe.workers.activations.sites import get_architecture
from neuroscribe.workers.models.hub import first_line, resolve_model
from neuroscribe.workers.stats import t_bounds

__all__ = ["DECODER_MODEL_TYPES", "CausalResult", "load_causal_lm", "fixed_units", "word_token_ids",
           "concept_logprob", "causal_effect"]

# Model types of activations.sites whose models are causal decoders (scored with their LM head).
DECODER_MODEL_TYPES = frozenset({"gpt_neox", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2"})

UnitValue = Callable[[int, int], float] | Mapping[int, np.ndarray]


def load_causal_lm(name_or_path: str, *, revision: str | None = None, device: str = "cpu",
                   cache_dir: str | None = None, local_files_only: bool | None = None,
                   trust_remote_code: bool = False, dtype: torch.dtype | None = None):
    """``(model, tokenizer)``: ``AutoModelForCausalLM`` (float32, eval) resolved like the subject models."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    src = resolve_model(name_or_path, revision=revision, cache_dir=cache_dir,
                        local_files_only=local_files_only, trust_remote_code=trust_remote_code)
    kw = src.pretrained_kwargs(trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(src.load_from, dtype=dtype or torch.float32, **kw)
        tokenizer = AutoTokenizer.from_pretrained(src.load_from, **kw)
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFound("model", f"cannot load {name_or_path!r} as a causal LM: {first_line(e)}") from None
    if tokenizer.pad_token is None and (tokenizer.eos_token or tokenizer.unk_token) is not None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return model.to(dev).eval(), tokenizer


def _check_decoder(model, model_type: str) -> None:
    get_architecture(model_type)  # SiteNotFound for an unknown architecture
    if model_type not in DECODER_MODEL_TYPES:
        raise InvalidInput("model_type", f"the causal check needs a decoder model; {model_type!r} is not one "
                                         f"(decoders: {', '.join(sorted(DECODER_MODEL_TYPES))})")
    if model.get_output_embeddings() is None:
        raise InvalidInput("model", "the model has no LM head: load it with load_causal_lm")


@contextmanager
def fixed_units(model, model_type: str, site: str,
                units: Mapping[int, tuple[torch.Tensor, torch.Tensor]]) -> Iterator[None]:
    """Within the block, units ``units[layer][0]`` of ``site`` read ``units[layer][1]`` at every position."""
    s, n_layers, n_units = site_sizes(model, model_type, site)
    checked = {}
    for layer, (idx, vals) in units.items():
        idx, vals = torch.as_tensor(idx, dtype=torch.long), torch.as_tensor(vals, dtype=torch.float32)
        fld = f"units:{layer}"
        if not 0 <= int(layer) < n_layers:
            raise InvalidInput(fld, f"layer {layer} out of range: the model has {n_layers} layers")
        if idx.dim() != 1 or vals.shape != idx.shape:
            raise InvalidInput(fld, f"unit indices and values must be 1-D of one length, got "
                                    f"{tuple(idx.shape)} and {tuple(vals.shape)}")
        if idx.numel() and not (0 <= int(idx.min()) and int(idx.max()) < n_units):
            raise InvalidInput(fld, f"unit index out of range: site {s.name} has {n_units} units per layer")
        if idx.unique().numel() != idx.numel():
            raise InvalidInput(fld, "a unit is given twice")
        checked[int(layer)] = (idx, vals)
    with edit_units(model, s, checked, replace_units):
        yield


def word_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """The distinct first sub-tokens of ``" " + word`` (whitespace-only leading pieces skipped)."""
    if isinstance(words, str) or not list(words):
        raise InvalidInput("words", "expected a non-empty list of words")
    unknown = set(tokenizer.all_special_ids) | {tokenizer.unk_token_id}
    backend_unk = getattr(getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None), "unk_token", None)
    if backend_unk is not None:  # the vocabulary's own unknown token, when it differs from unk_token
        unknown.add(tokenizer.convert_tokens_to_ids(backend_unk))
    ids: list[int] = []
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w.strip():
            raise InvalidInput(f"words:{i}", f"word {i} is empty or not a string: {w!r}")
        toks = list(tokenizer(" " + w.strip(), add_special_tokens=False)["input_ids"])
        while toks and not tokenizer.decode([toks[0]]).strip():
            toks.pop(0)
        if not toks or toks[0] in unknown:
            raise InvalidInput(f"words:{i}", f"word {w!r} starts with an unknown or special token here")
        if toks[0] not in ids:
            ids.append(toks[0])
    return ids


def _prompt_ids(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    if isinstance(prompts, str) or not list(prompts):
        raise InvalidInput("prompts", "expected a non-empty list of prompts")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise InvalidInput(f"prompts:{i}", f"prompt {i} is empty or not a string: {p!r}")
    enc = tokenizer([p.rstrip() for p in prompts], add_special_tokens=True)["input_ids"]
    for i, ids in enumerate(enc):
        if not ids:
            raise InvalidInput(f"prompts:{i}", f"prompt {i} has no tokens: {prompts[i]!r}")
    return [list(x) for x in enc]


def concept_logprob(model, tokenizer, prompts: Sequence[str], words: Sequence[str], *,
                    batch_size: int = 16) -> np.ndarray:
    """Per prompt, ``log sum_w P(first token of " " + w | prompt)`` (float64, one per prompt)."""
    word_ids = torch.tensor(word_token_ids(tokenizer, words))
    enc = _prompt_ids(tokenizer, prompts)
    dev = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = np.empty(len(enc), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(enc), batch_size):
            chunk = enc[start:start + batch_size]
            width = max(map(len, chunk))
            ids = torch.tensor([x + [pad] * (width - len(x)) for x in chunk], device=dev)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in chunk], device=dev)
            logits = model(input_ids=ids, attention_mask=mask).logits
            last = logits[torch.arange(len(chunk), device=dev), mask.sum(1) - 1].float()
            lp = torch.log_softmax(last, dim=-1)[:, word_ids.to(dev)].logsumexp(dim=-1)
            out[start:start + len(chunk)] = lp.double().cpu().numpy()
    return out


@dataclass
class CausalResult:
    """Per-prompt deltas of the concept words' log-probability; summary numbers as properties."""

    site: str
    experts: list[tuple[int, int]]
    logprob_baseline: np.ndarray = field(repr=False)  # (n_prompts,)
    delta_experts: np.ndarray = field(repr=False)  # (n_prompts,)
    delta_random_draws: np.ndarray = field(repr=False)  # (n_random, n_prompts)
    confidence: float = 0.95
    seed: int = 0

    n_units = property(lambda self: len(self.experts))
    n_prompts = property(lambda self: len(self.delta_experts))
    n_random = property(lambda self: len(self.delta_random_draws))
    delta_random = property(lambda self: self.delta_random_draws.mean(axis=0))
    difference = property(lambda self: self.delta_experts - self.delta_random)
    mean_experts = property(lambda self: float(self.delta_experts.mean()))
    mean_random = property(lambda self: float(self.delta_random.mean()))
    mean_difference = property(lambda self: float(self.difference.mean()))
    ci_experts = property(lambda self: t_bounds(self.delta_experts, self.confidence))
    ci_random = property(lambda self: t_bounds(self.delta_random, self.confidence))
    ci_difference = property(lambda self: t_bounds(self.difference, self.confidence))

    def summary(self) -> dict:
        keys = ("site", "n_units", "n_prompts", "n_random", "seed", "confidence", "mean_experts", "ci_experts",
                "mean_random", "ci_random", "mean_difference", "ci_difference")
        return {k: getattr(self, k) for k in keys}


def _value_fn(unit_value: UnitValue, n_units: int) -> Callable[[int, int], float]:
    if callable(unit_value):
        return unit_value
    cache: dict[int, np.ndarray] = {}

    def median(layer: int, unit: int) -> float:
        if layer not in cache:
            if layer not in unit_value:
                raise InvalidInput("unit_value", f"no responses for layer {layer}")
            arr = np.asarray(unit_value[layer], dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != n_units:
                raise InvalidInput("unit_value", f"responses of layer {layer} must be (n_positive >= 1, "
                                                 f"{n_units}), got {arr.shape}")
            cache[layer] = np.median(arr, axis=0)
        return float(cache[layer][unit])

    return median


def _units(pairs: Mapping[int, list[int]], value: Callable[[int, int], float], field: str) -> dict:
    out = {layer: (torch.tensor(us, dtype=torch.long), torch.tensor([float(value(layer, u)) for u in us]))
           for layer, us in pairs.items()}
    for layer, (_, vals) in out.items():
        if not torch.isfinite(vals).all():
            raise InvalidInput(field, f"a value for layer {layer} is not finite")
    return out


def causal_effect(model, tokenizer, model_type: str | None = None, *, site: str = "mlp_post",
                  experts: Sequence[tuple[int, int]], unit_value: UnitValue,
                  values: Sequence[float] | None = None, prompts: Sequence[str], words: Sequence[str],
                  n_random: int = 10, seed: int = 0, confidence: float = 0.95,
                  batch_size: int = 16) -> CausalResult:
    """Fix ``experts`` (``(layer, unit)`` pairs) to ``values`` (default ``unit_value``) vs. random units."""
    model_type = model_type or model.config.model_type
    _check_decoder(model, model_type)
    s, n_layers, n_units = site_sizes(model, model_type, site)
    if int(n_random) < 1:
        raise InvalidInput("n_random", f"need at least one random draw, got {n_random}")
    if not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must lie in (0, 1), got {confidence}")
    experts = [(int(a), int(b)) for a, b in experts]
    by_layer: dict[int, list[int]] = {}
    for i, (layer, unit) in enumerate(experts):
        if not 0 <= layer < n_layers:
            raise InvalidInput(f"experts:{i}", f"layer {layer} out of range: the model has {n_layers} layers")
        if not 0 <= unit < n_units:
            raise InvalidInput(f"experts:{i}", f"unit {unit} out of range: site {s.name} has {n_units} units")
        if unit in by_layer.setdefault(layer, []):
            raise InvalidInput(f"experts:{i}", f"expert ({layer}, {unit}) is given twice")
        by_layer[layer].append(unit)
    value = _value_fn(unit_value, n_units)
    if values is not None:
        if len(values) != len(experts):
            raise InvalidInput("values", f"{len(values)} values for {len(experts)} experts")
        given = {e: float(v) for e, v in zip(experts, values)}
        expert_value = lambda layer, unit: given[layer, unit]  # noqa: E731
    else:
        expert_value = value
    for layer, us in by_layer.items():
        if n_units - len(us) < len(us):
            raise InvalidInput("experts", f"layer {layer} has {len(us)} experts but only {n_units - len(us)} "
                                          f"other units to draw as many random ones from")

    def score(units: Mapping) -> np.ndarray:
        with fixed_units(model, model_type, s.name, units):
            return concept_logprob(model, tokenizer, prompts, words, batch_size=batch_size)

    fixed = _units(by_layer, expert_value, "values" if values is not None else "unit_value")
    base = score({})
    delta_exp = score(fixed) - base
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(int(n_random)):
        pick = {}
        for layer, us in by_layer.items():
            pool = np.setdiff1d(np.arange(n_units), us)
            pick[layer] = sorted(int(u) for u in rng.choice(pool, size=len(us), replace=False))
        draws.append(score(_units(pick, value, "unit_value")) - base)
    return CausalResult(s.name, experts, base, delta_exp, np.stack(draws), confidence, seed)
