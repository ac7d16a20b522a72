"""Ranked units against random unit sets, for several rankings at once (docs/methods.md#c3).

The tasks (``LabelTask`` decoders, ``MaskedTask`` masked LMs, ``EncoderTask`` sentence encoders)
say what is measured. ``ranked_vs_random`` runs, per k and mode, the top-k units of every ranking
and ``n_random`` random k-sets **shared by all the rankings**: drawn once per k (seeded from
``(seed, k)``), none of them holding a unit of any ranking's top-k, the same sets for every mode.
A run of R rankings therefore costs R + n_random edited passes per (k, mode) instead of
R * (1 + n_random), and every ranking is compared with the very same random sets (so a difference
between two rankings' p values is not a difference of their random sets). ``random_sets`` gives
the sets instead (e.g. to check that the same sets give the same effects).

``positions``: ``"all"`` edits every position; ``"attribute"`` only the tokens of each example's
target word (``LabelTask`` with ``word_index``: the word's sub-tokens in ``text + suffix +
continuation``; ``MaskedTask``: the mask token standing for the word), the rest of the sequence
unedited; a task without a target word (``EncoderTask``, a ``LabelTask`` without ``word_index``)
is refused (``InvalidInput("positions")``). A run covers one ``positions``; the random sets depend
only on ``(seed, k)``, so runs with each are compared with the same sets.

``cache`` (optional; ``get(key) -> {measure: array} | None``, ``put(key, {measure: array})``)
stores the per-example measures of each edited pass under ``(mode, positions, units per layer)``;
the caller scopes it to the model, the examples, the task, the means and beta
(``rank_cache.EffectCache``), so a re-run with another k or mode scores only the unit sets it has
not scored before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations.edits import site_sizes
from neuroscribe.workers.rank.edit_modes import (MODES, MeanMap, apply_plan, check_beta, check_mode, check_positions,
                                                 check_units, classes, plan_edits, random_units)
from neuroscribe.workers.rank.effects import Effect, InterventionEffects
from neuroscribe.workers.rank.encoder_scoring import EncoderScorer, check_encoder
from neuroscribe.workers.rank.lm_scoring import LabelScorer, MaskedScorer, check_lm

__all__ = ["LabelTask", "MaskedTask", "EncoderTask", "ranked_vs_random", "shared_random_sets"]


@dataclass(frozen=True)
class LabelTask:
    """Decoder task: ``text + suffix + continuations[label]``, e.g. suffix " It was", {"pos": " great", ...};
    ``word_index`` (token-level data): each text's target word, for edits at its tokens only."""

    texts: Sequence[str]
    labels: Sequence[Hashable]
    continuations: Mapping[Hashable, str]
    suffix: str = ""
    word_index: int | Sequence[int] | None = None


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


def _scorer(model, tokenizer, task, model_type, batch_size):
    if isinstance(task, LabelTask):
        mt = check_lm(model, tokenizer, model_type, decoder=True)
        scorer = LabelScorer(model, tokenizer, task.texts, task.labels, task.continuations, task.suffix, batch_size,
                             task.word_index)
        return mt, scorer, scorer.labels
    if isinstance(task, MaskedTask):
        mt = check_lm(model, tokenizer, model_type, decoder=False)
        scorer = MaskedScorer(model, tokenizer, task.texts, task.word_index, batch_size)
        return mt, scorer, None if task.labels is None else list(task.labels)
    if isinstance(task, EncoderTask):
        mt = check_encoder(model, model_type)
        scorer = EncoderScorer(model, tokenizer, task.texts, task.labels, task.label_texts, task.temperature,
                               task.pooling, batch_size)
        return mt, scorer, scorer.labels
    raise InvalidInput("task", f"expected a LabelTask, a MaskedTask or an EncoderTask, got {type(task).__name__}")


def _full_means(means, name: str, layers, n_units: int) -> None:
    for L in layers:
        try:
            arr = np.asarray(means[L], dtype=np.float64)
        except (KeyError, IndexError, TypeError, ValueError):
            raise InvalidInput(f"{name}:{L}", f"expected {n_units} numbers for layer {L}") from None
        if arr.shape != (n_units,) or not np.isfinite(arr).all():
            raise InvalidInput(f"{name}:{L}", f"expected {n_units} finite numbers for layer {L}, got {arr.shape}")


def _check_ks(ks, orders: Mapping[str, Mapping[int, np.ndarray]], n_units: int) -> list[int]:
    ks = [ks] if isinstance(ks, (int, np.integer)) else list(ks)
    if not ks or len(set(ks)) != len(ks) or any(isinstance(k, bool) or not isinstance(k, (int, np.integer))
                                                 or k < 0 for k in ks):
        raise InvalidInput("ks", f"expected distinct non-negative integers, got {ks}")
    for k in ks:
        short = sorted({L for order in orders.values() for L, o in order.items() if len(o) < k})
        if short or 2 * k > n_units:
            raise InvalidInput("ks", f"k = {k} needs {k} ranked units per layer (layers {short} have fewer) "
                                     f"and {k} others to draw from ({n_units} units per layer)")
    return [int(k) for k in ks]


def shared_random_sets(tops: Mapping[str, Mapping[int, np.ndarray]], k: int, n_units: int, n_random: int,
                       seed: int) -> list[dict[int, np.ndarray]]:
    """``n_random`` random k-sets per layer, none holding a unit of any ranking's top-k (``tops``:
    ranking -> layer -> its top-k), seeded from ``(seed, k)``."""
    layers = sorted({L for t in tops.values() for L in t})
    union = {L: np.unique(np.concatenate([np.asarray(t[L], np.int64) for t in tops.values() if L in t]))
             for L in layers}
    return random_units(union, n_units, n_random=n_random, seed=[int(seed), int(k)], size=int(k))


def ranked_vs_random(model, tokenizer, task, rankings: Mapping[str, Mapping[int, Sequence[int]]], ks: Sequence[int],
                     *, modes: Sequence[str] = MODES, site: str = "mlp_post", model_type: str | None = None,
                     unit_means: MeanMap | None = None, class_means: Mapping[Hashable, MeanMap] | None = None,
                     translate_to: Mapping[Hashable, Hashable] | None = None, beta: float = 8.0, n_random: int = 20,
                     seed: int = 0, confidence: float = 0.95, batch_size: int = 16,
                     random_sets: Mapping[int, list] | None = None, cache=None,
                     positions: str = "all") -> dict[str, InterventionEffects]:
    """Per ranking (``rankings[name][layer]``: an order, best first, or an object with ``.order``), per
    (mode, k): its top-k units against the shared random k-sets, edited at ``positions``; means as
    ``response_means`` returns them."""
    positions = check_positions(positions)
    mt, scorer, labels = _scorer(model, tokenizer, task, model_type, batch_size)
    mask = None
    if positions == "attribute":
        if getattr(scorer, "word_positions", None) is None:
            raise InvalidInput("positions", f"'attribute' edits the tokens of each text's target word, and a "
                                            f"{type(task).__name__} without word_index has none")
        mask = scorer.position_mask
    s, n_layers, n_units = site_sizes(model, mt, site)
    beta = check_beta(beta)
    modes = [check_mode(m) for m in ([modes] if isinstance(modes, str) else modes)]
    if not modes or len(set(modes)) != len(modes):
        raise InvalidInput("modes", "expected distinct modes")
    if int(n_random) < 1:
        raise InvalidInput("n_random", f"need at least one random draw, got {n_random}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInput("seed", f"expected a non-negative integer, got {seed!r}")
    if not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must lie in (0, 1), got {confidence}")
    if not isinstance(rankings, Mapping) or not rankings or not all(isinstance(r, Mapping) and r
                                                                    for r in rankings.values()):
        raise InvalidInput("ranking", "expected a non-empty mapping layer -> units, best first")
    orders = {name: {int(L): check_units(getattr(r, "order", r), L, n_layers, n_units, f"ranking:{L}")
                     for L, r in ranking.items()} for name, ranking in rankings.items()}
    ks = _check_ks(ks, orders, n_units)
    layers = sorted({L for o in orders.values() for L in o})
    n = len(scorer.encs)
    if "mean" in modes:
        if unit_means is None:
            raise InvalidInput("unit_means", "mode 'mean' needs unit_means (layer -> per-unit mean)")
        _full_means(unit_means, "unit_means", layers, n_units)
    if "translate" in modes:
        if class_means is None or not isinstance(class_means, Mapping) or len(class_means) < 2:
            raise InvalidInput("class_means", "mode 'translate' needs class_means for 2+ classes")
        if labels is None or len(labels) != n:
            raise InvalidInput("task.labels", "mode 'translate' needs one label per text")
        for c, m in class_means.items():
            _full_means(m, f"class_means:{c}", layers, n_units)
        cyc = classes(list(class_means))
        to = dict(translate_to) if translate_to is not None else {c: cyc[(i + 1) % len(cyc)] for i, c in enumerate(cyc)}
        for i, y in enumerate(labels):
            if y not in class_means:
                raise InvalidInput("class_means", f"no class means for label {y!r} (text {i})")
            if to.get(y) not in class_means or to[y] == y:
                raise InvalidInput("translate_to", f"label {y!r} needs another class with means to move toward")
        groups = [(np.flatnonzero(np.array([lab == c for lab in labels])), c) for c in classes(labels)]

    rows = np.arange(n)
    base = scorer(rows)

    def scored(units: dict, mode: str) -> dict[str, np.ndarray]:
        if mode != "translate":
            with apply_plan(model, plan_edits(model, mt, s.name, units, mode, unit_means, None, None, beta), mask):
                return scorer(rows)
        out = {m: np.empty(n) for m in scorer.measures}
        for idx, c in groups:
            plan = plan_edits(model, mt, s.name, units, mode, None, class_means[c], class_means[to[c]], beta)
            with apply_plan(model, plan, mask):
                for m, v in scorer(idx).items():
                    out[m][idx] = v
        return out

    def run(units: dict, mode: str) -> dict[str, np.ndarray]:
        if cache is None:
            return scored(units, mode)
        key = json.dumps([mode, positions, {str(L): sorted(int(u) for u in v) for L, v in sorted(units.items())}])
        hit = cache.get(key)
        if hit is None:
            hit = scored(units, mode)
            cache.put(key, hit)
        return hit

    effects = {name: {} for name in orders}
    tops = {name: {} for name in orders}
    rands: dict[int, list] = {}
    for k in ks:
        top = {name: {L: o[:k] for L, o in order.items()} for name, order in orders.items()}
        if random_sets is not None and k in random_sets:
            draws = [{int(L): check_units(u, L, n_layers, n_units, f"random_sets:{k}") for L, u in d.items()}
                     for d in random_sets[k]]
        else:
            draws = shared_random_sets(top, k, n_units, int(n_random), int(seed))
        rands[k] = [{L: u.tolist() for L, u in d.items()} for d in draws]
        for name in orders:
            tops[name][k] = {L: u.tolist() for L, u in top[name].items()}
        for mode in modes:
            rand = [run(d, mode) for d in draws]
            for name in orders:
                ranked = run(top[name], mode)
                for m in scorer.measures:
                    effects[name][mode, k, m] = Effect(mode, k, m, ranked[m] - base[m],
                                                       np.stack([r[m] - base[m] for r in rand]), confidence)
    return {name: InterventionEffects(s.name, scorer.measures[0], base, effects[name], tops[name], rands, int(seed),
                                      positions) for name in orders}
