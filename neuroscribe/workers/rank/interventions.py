"""Used information (docs/methods.md#c3; Antverg & Belinkov 2022): intervene on ranked units, measure the model.

This module is the driver; the parts live beside it:

* ``edit_modes``: ``intervene`` (modes ``zero`` / ``mean`` / ``translate`` of chosen units of a hook
  site, at every position or at masked ones), ``random_units``, ``response_means``;
* ``lm_scoring``: the decoder and masked-LM measures (``continuation_logprob``, label
  continuations, a masked word);
* ``encoder_scoring``: the sentence-encoder measures (``embedding_config``, ``sentence_embeddings``,
  zero-shot labels from the model's own sentence embedding);
* ``effects``: the results (``Delta``, ``Effect``, ``InterventionEffects``) and their intervals.

Here: one intervention's effect on the model's own output (per example, intervened minus clean;
``Delta``): ``label_logprob_delta`` (decoders), ``masked_prediction_delta`` (masked LMs),
``embedding_label_delta`` (sentence encoders); the tasks ``LabelTask`` / ``MaskedTask`` /
``EncoderTask`` (from ``effect_runs``); and ``intervention_effects``, which runs every (mode, k): the
top-k units per layer of a ranking versus ``n_random`` random k-sets per layer (seeded from ``(seed,
k)``, the top-k excluded, the same draws for every mode; ``effect_runs.ranked_vs_random`` does it for
several rankings against shared sets), with Student-t intervals over examples (paired for the
difference). For ``translate`` each example moves from its label's class means toward
``translate_to[label]`` (default: the next class, cyclically, in sorted order, as in the authors' code).
``positions="attribute"`` edits only the tokens of each example's target word (``effect_runs``).

Every public name of the parts is importable from here too.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np

from neuroscribe.workers.rank.edit_modes import (MODES, POSITIONS, MeanMap, UnitMap, apply_plan, intervene,
                                                 plan_edits, random_units, response_means)
from neuroscribe.workers.rank.effect_runs import EncoderTask, LabelTask, MaskedTask, ranked_vs_random
from neuroscribe.workers.rank.effects import Delta, Effect, InterventionEffects
from neuroscribe.workers.rank.encoder_scoring import (POOLING_MODES, EmbeddingConfig, EncoderScorer, check_encoder,
                                                      embedding_config, sentence_embeddings)
from neuroscribe.workers.rank.lm_scoring import LabelScorer, MaskedScorer, check_lm, continuation_logprob

__all__ = ["MODES", "POSITIONS", "intervene", "random_units", "response_means", "continuation_logprob", "Delta",
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


# ---------------------------------------------------------------- one ranking against random sets
def intervention_effects(model, tokenizer, task: LabelTask | MaskedTask | EncoderTask,
                         ranking: Mapping[int, Sequence[int]], ks: Sequence[int], *, modes: Sequence[str] = MODES,
                         site: str = "mlp_post", model_type: str | None = None, unit_means: MeanMap | None = None,
                         class_means: Mapping[Hashable, MeanMap] | None = None,
                         translate_to: Mapping[Hashable, Hashable] | None = None, beta: float = 8.0,
                         n_random: int = 20, seed: int = 0, confidence: float = 0.95,
                         batch_size: int = 16, positions: str = "all") -> InterventionEffects:
    """Per (mode, k): the effect of the top-k units of ``ranking[layer]`` (an order, best first, or an
    object with ``.order``) of each layer vs random k-sets drawn outside them; means as
    ``response_means`` returns them. Several rankings with shared random sets: ``ranked_vs_random``."""
    return ranked_vs_random(model, tokenizer, task, {"": ranking}, ks, modes=modes, site=site, model_type=model_type,
                            unit_means=unit_means, class_means=class_means, translate_to=translate_to, beta=beta,
                            n_random=n_random, seed=seed, confidence=confidence, batch_size=batch_size,
                            positions=positions)[""]
