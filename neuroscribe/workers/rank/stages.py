"""The rank job (docs/methods.md#c) as pure stages: the embedded runner calls them in one process,
the service's workers call the same functions (activate -> analyse).

* ``check_rank_subject``: layer, site, k and the intervention task, from the config and tokenizer
  only (before any weights load);
* ``responses_stage``: (examples, units) responses of the layer, sentence or token level (read from
  the rank cache when an earlier run computed them: ``rank_cache``);
* ``analysis_stage``: rankings (C.1; cached per method), their bottom-k (``selections``) and
  stability, probing with a separate probe and the same-probe confound (C.2), interventions on the
  top-k against random k-sets shared by the rankings (C.3, ``intervention_stage``), agreement
  between rankings -> ``RankResult``.

The intervention measures the model's own behaviour: decoders, the log-odds of the label-bearing
``continuations``; models with a masked-LM head on a token-level attribute, the masked-word
prediction; sentence encoders (no LM head, e.g. the packaged MiniLM), their zero-shot choice among
``label_texts`` by embedding similarity.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import Provenance, RankJob, RankResult
from neuroscribe.jobs.rank import (AgreementRow, BottomRow, ProbeRow, RankingReport, SameProbeRow,
                                   StabilityRow)
from neuroscribe.workers.rank.intervention_stage import DEFAULT_LABEL_TEXTS, interventions_stage
from neuroscribe.workers.rank.rank_cache import RankCache, digest, rank_responses_key

__all__ = ["RankPlan", "check_rank_subject", "responses_stage", "analysis_stage", "rank_data_sha256",
           "split_rows", "rankings_stage", "DEFAULT_LABEL_TEXTS"]


@dataclass(frozen=True)
class RankPlan:
    """What the checks resolved: the layer, its units, and which task measures interventions."""

    layer: int
    units: int
    task: str | None  # "label" (decoder), "masked", "encoder", or None (no interventions)
    model_type: str


def rank_data_sha256(job: RankJob) -> str:
    d = job.dataset
    blob = json.dumps([d.texts, d.labels, d.word_index], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _nan_none(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def check_rank_subject(job: RankJob, shape) -> RankPlan:
    """``shape``: ``activations.loading.peek_subject`` (config + tokenizer) or a loaded subject."""
    from neuroscribe.workers.activations.sites import get_site
    from neuroscribe.workers.experts.causal import DECODER_MODEL_TYPES

    site = get_site(shape.model_type, job.model.site)
    layer = shape.n_layers - 1 if job.layer is None else job.layer
    if not 0 <= layer < shape.n_layers:
        raise InvalidInput("layer", f"{layer} is out of range: the model has layers 0..{shape.n_layers - 1}")
    units = site.units(shape.config)
    if max(job.ks) > units:
        raise InvalidInput("ks", f"k = {max(job.ks)} is larger than the {units} units of a layer")
    if job.dataset.word_index is None and job.model.pooling.value == "cls" and \
            getattr(shape.tokenizer, "cls_token_id", None) is None:
        raise InvalidInput("model.pooling", f"cls pooling needs a [CLS] token and {shape.model_id} has none")
    task = None
    if job.interventions is not None:
        archs = " ".join(getattr(shape.config, "architectures", None) or ())
        if shape.model_type in DECODER_MODEL_TYPES:
            if not job.dataset.continuations:
                raise InvalidInput("dataset.continuations", "interventions on a decoder need a label-bearing "
                                   "continuation per label (e.g. --continuation '1= It was great.'), or --no-interventions")
            task = "label"
        elif job.dataset.word_index is not None and ("MaskedLM" in archs or "ForPreTraining" in archs):
            task = "masked"
        elif job.dataset.word_index is None:
            if not (job.dataset.label_texts or set(job.dataset.labels) <= set(DEFAULT_LABEL_TEXTS)):
                raise InvalidInput("dataset.label_texts", "interventions on a sentence encoder need a description "
                                   "per label (e.g. --label-text '1=A positive review.'), or --no-interventions")
            task = "encoder"
        else:
            raise InvalidInput("interventions", f"{shape.model_id} has no masked-LM head for a token-level "
                                                "attribute (its config names no *ForMaskedLM); use --no-interventions")
    return RankPlan(layer=layer, units=units, task=task, model_type=shape.model_type)


def responses_stage(job: RankJob, subject, plan: RankPlan, *, progress: bool = True,
                    cache_dir=None) -> tuple[np.ndarray, str, bool]:
    """(responses, their cache key, True when read from the cache under ``cache_dir``)."""
    from neuroscribe.workers.rank.attributes import attribute_responses

    spec = job.model
    key = rank_responses_key(subject, job.dataset.texts, site=spec.site, pooling=spec.pooling.value, layer=plan.layer,
                             max_length=spec.max_length, word_index=job.dataset.word_index)
    X, hit = RankCache(cache_dir).responses(key, lambda: attribute_responses(
        subject, job.dataset, plan.layer, site=spec.site, pooling=spec.pooling.value, batch_size=spec.batch_size,
        max_length=spec.max_length, progress=progress))
    return X, key, hit


def rankings_stage(job: RankJob, X: np.ndarray, y: np.ndarray, methods, seed: int, max_k: int,
                   cache: RankCache) -> tuple[dict, list[str]]:
    """Each method's ranking of ``X`` for ``y`` ({method: Ranking}), read from ``cache`` when the same
    responses, labels, options and seed were ranked before; and the methods that were."""
    from neuroscribe.workers.rank.rankings import rank

    spec = job.ranking
    opts = {"linear": dict(tol=spec.linear_tol, max_iter=spec.linear_max_iter), "gaussian": dict(max_k=max_k)}
    data_key = digest(np.ascontiguousarray(X), [str(v) for v in y])
    out, reused = {}, []
    for m in methods:
        key = digest(data_key, m, opts.get(m, {}), int(seed) if m in ("linear", "random") else None)
        out[m], hit = cache.ranking(key, lambda m=m: rank(X, y, methods=[m], seed=seed, max_k=max_k,
                                                           **({} if m != "linear" else opts["linear"]))[m])
        if hit:
            reused.append(m)
    return out, reused


def split_rows(job: RankJob) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(ranking rows, evaluation rows, warning): a seeded split stratified by label, ``rank_fraction``
    of each class to the rankings. Probes and interventions judged on the examples a ranking was
    computed on are optimistic for its top units, and pessimistic (below chance) for its bottom
    units, whose class means were chosen to agree on exactly those examples. When a class is too
    small for ``MIN_PER_CLASS`` examples on both sides, everything uses every example, with a warning."""
    from neuroscribe.jobs.rank import MIN_PER_CLASS

    y = np.asarray(job.dataset.labels)
    every = np.arange(len(y))
    if job.rank_fraction is None:
        return every, every, ("rankings, probes and interventions use the same examples (rank_fraction None): the "
                              "probing accuracies of top and bottom units are biased")
    rng = np.random.default_rng([job.seed, 11])
    rank_rows, eval_rows = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        cut = int(round(job.rank_fraction * len(rows)))
        if min(cut, len(rows) - cut) < MIN_PER_CLASS:
            return every, every, (f"class {c!r} has {len(rows)} examples, too few for {MIN_PER_CLASS} on each side of "
                                  "the ranking/evaluation split: rankings, probes and interventions use the same "
                                  "examples, and the probing accuracies of top and bottom units are biased")
        rank_rows.append(rows[:cut])
        eval_rows.append(rows[cut:])
    return np.sort(np.concatenate(rank_rows)), np.sort(np.concatenate(eval_rows)), None


def analysis_stage(job: RankJob, plan: RankPlan, X: np.ndarray, subject_info: dict, *, neuroscribe_version: str,
                   device: str = "cpu", log=lambda _m: None, cache_dir=None) -> tuple[RankResult, dict]:
    """Rankings, bottom-k, stability, probing, interventions, agreement; returns the result and what
    the result folder holds beside it (``{"rankings", "probe_curve", "agreement", "responses", "split",
    "reused"}``: what came from the rank cache; the result itself does not depend on it).
    ``cache_dir``: the rank cache (rankings and edited passes computed before are read back)."""
    from neuroscribe.jobs.rank import BOTTOM_K, MIN_PER_CLASS
    from neuroscribe.workers.rank.probing import agreement, probe_curve
    from neuroscribe.workers.rank.same_probe import same_probe_fns
    from neuroscribe.workers.rank.selections import bottom_sets, stability

    data = job.dataset
    y = np.asarray(data.labels)
    cache = RankCache(cache_dir)
    rank_rows, eval_rows, split_warning = split_rows(job)
    warnings: list[str] = [split_warning] if split_warning else []
    reused = ["responses"] if subject_info.get("responses_cached") else []
    log(f"ranking {plan.units} units of layer {plan.layer} on {len(rank_rows)} examples: {', '.join(job.methods)}")
    max_k = min(max(job.ks), plan.units)

    def rank_fn(Xs, ys, methods, seed):
        return rankings_stage(job, Xs, ys, methods, seed, max_k, cache)[0]

    rankings, hits = rankings_stage(job, X[rank_rows], y[rank_rows], job.methods, job.seed, max_k, cache)
    reused += [f"ranking {m}" for m in hits]
    for name, r in rankings.items():
        if r.params.get("converged") is False:
            warnings.append(f"the {name} probe did not converge within {r.params.get('max_iter')} iterations (tol "
                            f"{r.params.get('tol')}); its ranking is approximate: raise --linear-max-iter")
    stable = []
    if job.ranking.stability:
        log("stability: the rankings again with another seed and on two halves of the ranking examples")
        stable = [StabilityRow(**r) for r in stability(X[rank_rows], y[rank_rows], rankings, job.ks, seed=job.seed,
                                                       rank_fn=rank_fn, min_per_class=MIN_PER_CLASS)]
    bottoms = bottom_sets(rankings, job.ks, job.seed)
    bottom_rows = [BottomRow(ranking=n, k=k, by="gaussian objective of the unit alone" if rankings[n].relevance
                             is not None else "score", units=tuple(int(u) for u in b.units),
                             boundary=_nan_none(b.boundary), tied=b.tied, tied_in_bottom=b.tied_in_bottom)
                   for n, per in bottoms.items() for k, b in per.items()]
    log(f"probing on the other {len(eval_rows)} examples: top-, bottom- and random-k with a separate probe ({BOTTOM_K})")
    p = job.probing
    curve = probe_curve(X[eval_rows], y[eval_rows], {n: r.order for n, r in rankings.items()}, job.ks,
                        probe=p.probe, seeds=p.seeds, test_size=p.test_size, seed=job.seed,
                        same_probe=same_probe_fns(job, job.seed),
                        bottom={n: {k: b.units for k, b in per.items()} for n, per in bottoms.items()})
    probing = [ProbeRow(ranking=r["ranking"], selection=r["selection"], probe=r["probe"], k=int(r["k"]),
                        accuracy=_nan_none(r["accuracy"]), ci_low=_nan_none(r["ci_low"]),
                        ci_high=_nan_none(r["ci_high"]), n_seeds=int(r["n_seeds"])) for r in curve.to_rows()]
    same = [SameProbeRow(ranking=r["ranking"], k=int(r["k"]), independent=_nan_none(r["independent"]),
                         same_probe=_nan_none(r["same_probe"]), gap=_nan_none(r["gap"])) for r in curve.side_by_side()]
    agree = agreement({n: r.order for n, r in rankings.items()}, job.ks, n_units=plan.units)
    agreement_rows = [AgreementRow(a=r["a"], b=r["b"], k=int(r["k"]), overlap=float(r["overlap"]),
                                   jaccard=float(r["jaccard"]), chance=float(agree.chance[r["k"]])) for r in agree.rows]
    effects, measure = interventions_stage(job, plan, X, rankings, rank_rows, eval_rows, device=device, log=log,
                                           cache=cache if cache_dir is not None else None, subject=subject_info,
                                           reused=reused)
    provenance = Provenance(
        neuroscribe_version=neuroscribe_version, model=subject_info["model_id"], revision=subject_info["revision"],
        requested_revision=job.model.revision, weight_sha256=subject_info["weight_sha256"],
        site=subject_info["site"], pooling=job.model.pooling, data_sha256=rank_data_sha256(job),
        environment=subject_info.get("environment", {}), generator=None, prompt_version=None, seed=job.seed,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    result = RankResult(
        dataset=data.name, level="token" if data.word_index is not None else "sentence", n_examples=len(data.texts),
        classes=data.class_counts(), n_ranking_examples=len(rank_rows), n_evaluation_examples=len(eval_rows),
        layer=plan.layer, units=plan.units, ks=job.ks,
        rankings=tuple(RankingReport(method=n, order=tuple(int(u) for u in r.order),
                                     scores=tuple(float(s) for s in r.scores), params=_jsonable(r.params),
                                     relevance=None if r.relevance is None else tuple(map(float, r.relevance)))
                       for n, r in rankings.items()),
        bottom=tuple(bottom_rows), stability=tuple(stable),
        probing=tuple(probing), same_probe=tuple(same), interventions=tuple(effects), intervention_measure=measure,
        agreement=tuple(agreement_rows), label_names=data.label_names, provenance=provenance,
        warnings=tuple(warnings))
    split = {"ranking_rows": rank_rows.tolist(), "evaluation_rows": eval_rows.tolist()}
    return result, {"rankings": rankings, "probe_curve": curve, "agreement": agree, "responses": X, "split": split,
                    "reused": reused}


def _jsonable(params: dict) -> dict:
    return json.loads(json.dumps(params, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
