"""Used information as a stage (docs/methods.md#c3): the examples scored, the model with the head the
measure needs, every ranking's top-k against random k-sets shared by all rankings, and the p over
unit sets with its floor; once per ``interventions.positions`` (every position, and/or only the
target word's tokens), each on its own rows against the same random sets."""

from __future__ import annotations

import math
import numpy as np

from neuroscribe.jobs import RankJob
from neuroscribe.jobs.rank import EffectRow
from neuroscribe.workers.rank.rank_cache import RankCache, digest

__all__ = ["interventions_stage", "scored_rows", "p_over_sets", "load_with_head", "DEFAULT_LABEL_TEXTS"]

# sentence encoders judged on the packaged sentiment data: label descriptions for the zero-shot choice
DEFAULT_LABEL_TEXTS = {"1": "A positive review.", "0": "A negative review."}


def _nan_none(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def scored_rows(job: RankJob, rows: np.ndarray) -> np.ndarray:
    """The evaluation rows scored by the interventions: all, or a seeded stratified subsample."""
    cap = job.interventions.max_examples
    if len(rows) <= cap:
        return rows
    from sklearn.model_selection import train_test_split

    y = np.asarray(job.dataset.labels)[rows]
    keep, _ = train_test_split(rows, train_size=cap, stratify=y, random_state=job.seed)
    return np.sort(keep)


def interventions_stage(job: RankJob, plan, X: np.ndarray, rankings: dict, rank_rows: np.ndarray,
                        eval_rows: np.ndarray, *, device: str = "cpu", log=lambda _m: None,
                        cache: RankCache | None = None, subject: dict | None = None,
                        reused: list | None = None) -> tuple[list[EffectRow], str | None]:
    """Per positions, ranking, mode and k: the effect of the top-k units against random-k on the model's
    own behaviour (``plan.task``), on evaluation examples; the means (mean, translate) come from the
    ranking examples. The random k-sets are drawn once per k and shared by every ranking and by both
    positions (``effect_runs.ranked_vs_random``). With ``cache`` (and ``subject``: the model's identity, from
    ``files.subject_info``), edited passes already scored are read back. Returns the rows and the
    measure's name."""
    from neuroscribe.workers.rank.edit_modes import response_means
    from neuroscribe.workers.rank.effect_runs import EncoderTask, LabelTask, MaskedTask, ranked_vs_random

    if job.interventions is None or plan.task is None:
        return [], None
    spec, data = job.interventions, job.dataset
    rows = scored_rows(job, eval_rows)
    texts = [data.texts[i] for i in rows]
    labels = [data.labels[i] for i in rows]
    unit_means, class_means = response_means({plan.layer: X[rank_rows]}, [data.labels[i] for i in rank_rows])
    model, tokenizer = load_with_head(job, plan, device)
    if plan.task == "label":
        words = None if data.word_index is None else [data.word_index[i] for i in rows]
        task = LabelTask(texts, labels, dict(data.continuations), word_index=words)
    elif plan.task == "masked":
        task = MaskedTask(texts, [data.word_index[i] for i in rows], labels)
    else:
        task = EncoderTask(texts, labels, dict(data.label_texts or DEFAULT_LABEL_TEXTS))
    if cache is not None and subject:
        ident = {k: subject.get(k) for k in ("model_id", "revision", "weight_sha256", "site")}
        cache = cache.effects(digest(ident, plan.layer, plan.task, repr(task), spec.beta, job.model.max_length,
                                     device, unit_means[plan.layer], *[class_means[c][plan.layer] for c in sorted(class_means)]))
    else:
        cache = None
    names = list(rankings)
    out: list[EffectRow] = []
    measure = None
    for positions in spec.positions:
        where = "every position" if positions == "all" else "the target word's tokens"
        log(f"interventions at {where}: {', '.join(names)} against {spec.n_random} random k-sets shared by them")
        effects = ranked_vs_random(model, tokenizer, task, {n: {plan.layer: rankings[n].order} for n in names},
                                   job.ks, modes=spec.modes, site=job.model.site, model_type=plan.model_type,
                                   unit_means=unit_means, class_means=class_means, beta=spec.beta,
                                   n_random=spec.n_random, seed=job.seed, batch_size=job.model.batch_size,
                                   cache=cache, positions=positions)
        for name in names:
            measure = effects[name].measure
            out += _rows(name, effects[name])
    if cache is not None and cache.hits and reused is not None:
        reused.append(f"effects of {cache.hits} of {cache.hits + cache.misses} edited passes")
    return out, measure


def _rows(name: str, eff) -> list[EffectRow]:
    """The ``EffectRow`` of each (mode, k) of one ranking's ``InterventionEffects``, in its main measure."""
    out = []
    for (mode, k, m), e in eff.effects.items():
        if m != eff.measure:
            continue
        s = e.summary()
        draws = e.random_draws.mean(axis=1)
        out.append(EffectRow(ranking=name, mode=mode, positions=eff.positions, k=k, measure=m,
                             n_examples=s["n_examples"],
                             mean_ranked=_nan_none(s["mean_ranked"]),
                             ci_ranked=tuple(map(_nan_none, s["ci_ranked"])),
                             mean_random=_nan_none(s["mean_random"]),
                             ci_random=tuple(map(_nan_none, s["ci_random"])),
                             mean_difference=_nan_none(s["mean_difference"]),
                             ci_difference=tuple(map(_nan_none, s["ci_difference"])),
                             random_draws=tuple(_nan_none(float(v)) for v in draws),
                             p_random=p_over_sets(e.mean_ranked, draws), p_floor=1.0 / (1 + len(draws))))
    return out


def p_over_sets(ranked: float, draws: np.ndarray) -> float | None:
    """Two-sided empirical p of the ranked effect among the random sets' effects (see ``EffectRow``)."""
    draws = np.asarray(draws, dtype=float)
    if not draws.size or not math.isfinite(ranked) or not np.isfinite(draws).all():
        return None
    centre = float(draws.mean())
    extreme = int(np.count_nonzero(np.abs(draws - centre) >= abs(ranked - centre)))
    return (1 + extreme) / (1 + draws.size)


def load_with_head(job: RankJob, plan, device: str):
    """The model as the task needs it: with its LM head (decoder / masked) or the base encoder."""
    if plan.task == "label":
        from neuroscribe.workers.experts.causal import load_causal_lm

        return load_causal_lm(job.model.name, revision=job.model.revision, device=device,
                              trust_remote_code=job.model.trust_remote_code)
    from neuroscribe.workers.activations import load_subject_model

    if plan.task == "encoder":
        s = load_subject_model(job.model.name, revision=job.model.revision, device=device,
                               trust_remote_code=job.model.trust_remote_code)
        return s.model, s.tokenizer
    from transformers import AutoModelForMaskedLM

    from neuroscribe.workers.models.hub import resolve_model

    s = load_subject_model(job.model.name, revision=job.model.revision, device=device,
                           trust_remote_code=job.model.trust_remote_code)
    src = resolve_model(job.model.name, revision=job.model.revision)
    model = AutoModelForMaskedLM.from_pretrained(src.load_from, **src.pretrained_kwargs(job.model.trust_remote_code))
    return model.to(s.device).eval(), s.tokenizer
