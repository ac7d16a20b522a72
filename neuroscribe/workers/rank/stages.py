"""The rank job (docs/methods.md#c) as pure stages: the embedded runner calls them in one process,
the service's workers call the same functions (activate -> analyse).

* ``check_rank_subject``: layer, site, k and the intervention task, from the config and tokenizer
  only (before any weights load);
* ``responses_stage``: (examples, units) responses of the layer, sentence or token level;
* ``analysis_stage``: rankings (C.1), probing with a separate probe and the same-probe confound
  (C.2), interventions on the top-k against random-k (C.3), agreement between rankings ->
  ``RankResult``.

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
from neuroscribe.jobs.rank import AgreementRow, EffectRow, ProbeRow, RankingReport, SameProbeRow

__all__ = ["RankPlan", "check_rank_subject", "responses_stage", "analysis_stage", "rank_data_sha256",
           "split_rows", "DEFAULT_LABEL_TEXTS"]

# sentence encoders judged on the packaged sentiment data: label descriptions for the zero-shot choice
DEFAULT_LABEL_TEXTS = {"1": "A positive review.", "0": "A negative review."}


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


def responses_stage(job: RankJob, subject, plan: RankPlan, *, progress: bool = True) -> np.ndarray:
    from neuroscribe.workers.rank.attributes import attribute_responses

    spec = job.model
    return attribute_responses(subject, job.dataset, plan.layer, site=spec.site, pooling=spec.pooling.value,
                               batch_size=spec.batch_size, max_length=spec.max_length, progress=progress)


def _same_probe_fns(job: RankJob, seed: int) -> dict:
    """The rankings' own probes as ``fit_predict(X_train, y_train, X_test)``: the elastic-net
    logistic regression of ``linear`` and the Gaussian class-conditional probe for
    ``gaussian`` (per-class full covariance of the standardised units plus a ridge, like the ranking's)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def linear(xtr, ytr, xte):
        m = make_pipeline(StandardScaler(), LogisticRegression(solver="saga", l1_ratio=0.5, C=1.0, max_iter=500,
                                                               random_state=seed))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return m.fit(xtr, ytr).predict(xte)

    def gaussian(xtr, ytr, xte):
        return _gaussian_probe(xtr, ytr, xte, ridge=0.01)

    fns = {"linear": linear, "gaussian": gaussian}
    return {m: fns[m] for m in job.methods if m in fns}


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


def _gaussian_probe(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, *, ridge: float) -> np.ndarray:
    """The gaussian ranking's probe as a classifier: per class the mean and full covariance of the
    standardised units plus ``ridge`` * I, class priors = frequencies; the most likely class."""
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
    sd[sd == 0] = 1.0
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    classes = np.unique(ytr)
    scores = np.empty((len(b), len(classes)))
    for j, c in enumerate(classes):
        xc = a[ytr == c]
        cov = np.atleast_2d(np.cov(xc, rowvar=False, bias=True)) + ridge * np.eye(a.shape[1])
        chol = np.linalg.cholesky(cov)
        z = np.linalg.solve(chol, (b - xc.mean(axis=0)).T)
        scores[:, j] = -0.5 * (z * z).sum(axis=0) - np.log(np.diag(chol)).sum() + math.log(len(xc) / len(a))
    return classes[scores.argmax(axis=1)]


def _subsample(job: RankJob, rows: np.ndarray) -> np.ndarray:
    """The evaluation rows scored by the interventions: all, or a seeded stratified subsample."""
    cap = job.interventions.max_examples
    if len(rows) <= cap:
        return rows
    from sklearn.model_selection import train_test_split

    y = np.asarray(job.dataset.labels)[rows]
    keep, _ = train_test_split(rows, train_size=cap, stratify=y, random_state=job.seed)
    return np.sort(keep)


def interventions_stage(job: RankJob, plan: RankPlan, X: np.ndarray, rankings: dict, rank_rows: np.ndarray,
                        eval_rows: np.ndarray, *, device: str = "cpu",
                        log=lambda _m: None) -> tuple[list[EffectRow], str | None]:
    """Per ranking, mode and k: the effect of the top-k units against random-k on the model's own
    behaviour (``plan.task``), on evaluation examples; the means (mean, translate) come from the
    ranking examples. Returns the rows and the measure's name."""
    from neuroscribe.workers.rank.interventions import EncoderTask, LabelTask, MaskedTask, intervention_effects, response_means

    if job.interventions is None or plan.task is None:
        return [], None
    spec, data = job.interventions, job.dataset
    rows = _subsample(job, eval_rows)
    texts = [data.texts[i] for i in rows]
    labels = [data.labels[i] for i in rows]
    unit_means, class_means = response_means({plan.layer: X[rank_rows]}, [data.labels[i] for i in rank_rows])
    model, tokenizer = _load_with_head(job, plan, device)
    if plan.task == "label":
        task = LabelTask(texts, labels, dict(data.continuations))
    elif plan.task == "masked":
        task = MaskedTask(texts, [data.word_index[i] for i in rows], labels)
    else:
        task = EncoderTask(texts, labels, dict(data.label_texts or DEFAULT_LABEL_TEXTS))
    out: list[EffectRow] = []
    measure = None
    for name, ranking in rankings.items():
        log(f"interventions: {name}")
        eff = intervention_effects(model, tokenizer, task, {plan.layer: ranking.order}, job.ks, modes=spec.modes,
                                   site=job.model.site, model_type=plan.model_type, unit_means=unit_means,
                                   class_means=class_means, beta=spec.beta, n_random=spec.n_random, seed=job.seed,
                                   batch_size=job.model.batch_size)
        measure = eff.measure
        for (mode, k, m), e in eff.effects.items():
            if m != eff.measure:
                continue
            s = e.summary()
            out.append(EffectRow(ranking=name, mode=mode, k=k, measure=m, n_examples=s["n_examples"],
                                 mean_ranked=_nan_none(s["mean_ranked"]),
                                 ci_ranked=tuple(map(_nan_none, s["ci_ranked"])),
                                 mean_random=_nan_none(s["mean_random"]),
                                 ci_random=tuple(map(_nan_none, s["ci_random"])),
                                 mean_difference=_nan_none(s["mean_difference"]),
                                 ci_difference=tuple(map(_nan_none, s["ci_difference"])),
                                 random_draws=tuple(_nan_none(float(v)) for v in e.random_draws.mean(axis=1)),
                                 p_random=_p_random(e.mean_ranked, e.random_draws.mean(axis=1))))
    return out, measure


def _p_random(ranked: float, draws: np.ndarray) -> float | None:
    """Two-sided empirical p of the ranked effect among the random sets' effects (see ``EffectRow``)."""
    draws = np.asarray(draws, dtype=float)
    if not draws.size or not math.isfinite(ranked) or not np.isfinite(draws).all():
        return None
    centre = float(draws.mean())
    extreme = int(np.count_nonzero(np.abs(draws - centre) >= abs(ranked - centre)))
    return (1 + extreme) / (1 + draws.size)


def _load_with_head(job: RankJob, plan: RankPlan, device: str):
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


def analysis_stage(job: RankJob, plan: RankPlan, X: np.ndarray, subject_info: dict, *, neuroscribe_version: str,
                   device: str = "cpu", log=lambda _m: None) -> tuple[RankResult, dict]:
    """Rankings, probing, interventions, agreement; returns the result and the objects the result
    folder's figures need (``{"rankings", "probe_curve", "agreement"}``)."""
    from neuroscribe.workers.rank.probing import agreement, probe_curve
    from neuroscribe.workers.rank.rankings import rank

    data = job.dataset
    y = np.asarray(data.labels)
    rank_rows, eval_rows, split_warning = split_rows(job)
    warnings: list[str] = [split_warning] if split_warning else []
    log(f"ranking {plan.units} units of layer {plan.layer} on {len(rank_rows)} examples: {', '.join(job.methods)}")
    rankings = rank(X[rank_rows], y[rank_rows], methods=job.methods, seed=job.seed,
                    max_k=min(max(job.ks), plan.units))
    for name, r in rankings.items():
        if r.params.get("converged") is False:
            warnings.append(f"the {name} probe did not converge within its iterations; its ranking is approximate")
    log(f"probing on the other {len(eval_rows)} examples: top-, bottom- and random-k with a separate probe")
    p = job.probing
    curve = probe_curve(X[eval_rows], y[eval_rows], {n: r.order for n, r in rankings.items()}, job.ks,
                        probe=p.probe, seeds=p.seeds,
                        test_size=p.test_size, seed=job.seed, same_probe=_same_probe_fns(job, job.seed))
    probing = [ProbeRow(ranking=r["ranking"], selection=r["selection"], probe=r["probe"], k=int(r["k"]),
                        accuracy=_nan_none(r["accuracy"]), ci_low=_nan_none(r["ci_low"]),
                        ci_high=_nan_none(r["ci_high"]), n_seeds=int(r["n_seeds"])) for r in curve.to_rows()]
    same = [SameProbeRow(ranking=r["ranking"], k=int(r["k"]), independent=_nan_none(r["independent"]),
                         same_probe=_nan_none(r["same_probe"]), gap=_nan_none(r["gap"])) for r in curve.side_by_side()]
    agree = agreement({n: r.order for n, r in rankings.items()}, job.ks, n_units=plan.units)
    agreement_rows = [AgreementRow(a=r["a"], b=r["b"], k=int(r["k"]), overlap=float(r["overlap"]),
                                   jaccard=float(r["jaccard"]), chance=float(agree.chance[r["k"]])) for r in agree.rows]
    effects, measure = interventions_stage(job, plan, X, rankings, rank_rows, eval_rows, device=device, log=log)
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
                                     scores=tuple(float(s) for s in r.scores), params=_jsonable(r.params))
                       for n, r in rankings.items()),
        probing=tuple(probing), same_probe=tuple(same), interventions=tuple(effects), intervention_measure=measure,
        agreement=tuple(agreement_rows), provenance=provenance, warnings=tuple(warnings))
    return result, {"rankings": rankings, "probe_curve": curve, "agreement": agree}


def _jsonable(params: dict) -> dict:
    return json.loads(json.dumps(params, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
