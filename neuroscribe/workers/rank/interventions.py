"""Used information (docs/methods.md#c3; Antverg & Belinkov 2022): intervene on ranked units, measure the model.

This module is the driver; the parts live beside it:

* ``edit_modes``: ``intervene`` (modes ``zero`` / ``mean`` / ``translate`` of chosen units of a hook
  site, at every position), ``random_units``, ``response_means``;
* ``lm_scoring``: the decoder and masked-LM measures (``continuation_logprob``, label
  continuations, a masked word);
* ``encoder_scoring``: the sentence-encoder measures (``embedding_config``, ``sentence_embeddings``,
  zero-shot labels from the model's own sentence embedding);
* ``effects``: the results (``Delta``, ``Effect``, ``InterventionEffects``) and their intervals.

Here: one intervention's effect on the model's own output (per example, intervened minus clean;
``Delta``): ``label_logprob_delta`` (decoders), ``masked_prediction_delta`` (masked LMs),
``embedding_label_delta`` (sentence encoders); the tasks ``LabelTask`` / ``MaskedTask`` /
``EncoderTask``; and ``intervention_effects``, which runs every (mode, k): the top-k units per layer
of a ranking versus ``n_random`` random k-sets per layer (seeded from ``(seed, k)``, the top-k
excluded, the same draws for every mode), with Student-t intervals over examples (paired for the
difference). For ``translate`` each example moves from its label's class means toward
``translate_to[label]`` (default: the next class, cyclically, in sorted order, as in the authors' code).

Every public name of the parts is importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations.edits import site_sizes
from neuroscribe.workers.rank.edit_modes import (MODES, MeanMap, UnitMap, apply_plan, check_beta, check_mode,
                                                 check_units, classes, intervene, plan_edits, random_units,
                                                 response_means)
from neuroscribe.workers.rank.effects import Delta, Effect, InterventionEffects
from neuroscribe.workers.rank.encoder_scoring import (POOLING_MODES, EmbeddingConfig, EncoderScorer, check_encoder,
                                                      embedding_config, sentence_embeddings)
from neuroscribe.workers.rank.lm_scoring import LabelScorer, MaskedScorer, check_lm, continuation_logprob

__all__ = ["MODES", "intervene", "random_units", "response_means", "continuation_logprob", "Delta",
           "label_logprob_delta", "masked_prediction_delta", "POOLING_MODES", "EmbeddingConfig",
           "embedding_config", "sentence_embeddings", "embedding_label_delta", "LabelTask", "MaskedTask",
           "EncoderTask", "Effect", "InterventionEffects", "intervention_effects"]


# ---------------------------------------------------------------- one intervention
def _delta(model, model_type, scorer, site, layer_units, mode, values, source_mean, target_mean, beta) -> Delta:
    plan = plan_edits(model, model_type, site, layer_units, mode, values, source_mean, target_mean, beta)
    rows = np.arange(len(scorer.encs))
    base = scorer(rows)
    with apply_plan(model, plan):
        return Delta(base, scorer(rows))


def label_logprob_delta(model, tokenizer, texts: Sequence[str], labels: Sequence[Hashable],
                        continuations: Mapping[Hashable, str], layer_units: UnitMap, mode: str, *,
                        suffix: str = "", site: str = "mlp_post", model_type: str | None = None,
                        values: MeanMap | None = None, source_mean: MeanMap | None = None,
                        target_mean: MeanMap | None = None, beta: float = 8.0, batch_size: int = 16) -> Delta:
    """Decoder: change of ``logprob`` / ``logodds`` / ``accuracy`` of the label continuation per text."""
    mt = check_lm(model, tokenizer, model_type, decoder=True)
    scorer = LabelScorer(model, tokenizer, texts, labels, continuations, suffix, batch_size)
    return _delta(model, mt, scorer, site, layer_units, mode, values, source_mean, target_mean, beta)


def masked_prediction_delta(model, tokenizer, texts: Sequence[str], word_index: int | Sequence[int],
                            layer_units: UnitMap, mode: str, *, site: str = "mlp_post",
                            model_type: str | None = None, values: MeanMap | None = None,
                            source_mean: MeanMap | None = None, target_mean: MeanMap | None = None,
                            beta: float = 8.0, batch_size: int = 16) -> Delta:
    """Masked LM: change of ``logprob`` / ``accuracy`` of the masked word's first sub-token per text."""
    mt = check_lm(model, tokenizer, model_type, decoder=False)
    scorer = MaskedScorer(model, tokenizer, texts, word_index, batch_size)
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
    mt = check_encoder(model, model_type)
    scorer = EncoderScorer(model, tokenizer, texts, labels, label_texts, temperature, pooling, batch_size)
    return _delta(model, mt, scorer, site, layer_units, mode, values, source_mean, target_mean, beta)


# ---------------------------------------------------------------- the tasks; ranked vs random, per (mode, k)
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
        mt = check_lm(model, tokenizer, model_type, decoder=True)
        scorer = LabelScorer(model, tokenizer, task.texts, task.labels, task.continuations, task.suffix, batch_size)
        labels = scorer.labels
    elif isinstance(task, MaskedTask):
        mt = check_lm(model, tokenizer, model_type, decoder=False)
        scorer = MaskedScorer(model, tokenizer, task.texts, task.word_index, batch_size)
        labels = None if task.labels is None else list(task.labels)
    elif isinstance(task, EncoderTask):
        mt = check_encoder(model, model_type)
        scorer = EncoderScorer(model, tokenizer, task.texts, task.labels, task.label_texts, task.temperature,
                                task.pooling, batch_size)
        labels = scorer.labels
    else:
        raise InvalidInput("task", f"expected a LabelTask, a MaskedTask or an EncoderTask, "
                                   f"got {type(task).__name__}")
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
    if not isinstance(ranking, Mapping) or not ranking:
        raise InvalidInput("ranking", "expected a non-empty mapping layer -> units, best first")
    order = {int(L): check_units(getattr(r, "order", r), L, n_layers, n_units, f"ranking:{L}")
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

    def run(units: dict, mode: str) -> dict[str, np.ndarray]:
        if mode != "translate":
            with apply_plan(model, plan_edits(model, mt, s.name, units, mode, unit_means, None, None, beta)):
                return scorer(rows)
        out = {m: np.empty(n) for m in scorer.measures}
        for idx, c in groups:
            plan = plan_edits(model, mt, s.name, units, mode, None, class_means[c], class_means[to[c]], beta)
            with apply_plan(model, plan):
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
