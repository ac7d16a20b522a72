"""The describe job (docs/methods.md#b) as four pure stages with JSON-able artefacts, so the
embedded runner calls them in one process and the service's workers call the same functions from
their queues (generation -> clustering -> activations -> analysis):

* ``descriptors_stage``: descriptors of every sentence (B.1) -> ``DescriptorsArtefact``;
* ``vocabulary_stage``: clustered vocabulary (B.2) and the seeded split in halves (B.5, stratified
  by each sentence's most frequent descriptor) -> ``VocabularyArtefact``;
* ``exemplars_stage``: streaming top-k% distinct exemplars over the dataset and each half, the
  units' firing statistics and every response on the validation half (B.3) -> ``ExemplarsArtefact``;
* ``analysis_stage``: valid exemplars and unit statuses (B.3), assignment (B.4), split-half
  consistency (B.5), precision@K / recall@K against the labels (B.6) -> ``DescribeResult``.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections import Counter
from datetime import datetime, timezone

import numpy as np

from neuroscribe.jobs.describe import (
    AssignedDescriptor,
    ConsistencyReport,
    DescriptorReport,
    EvaluationReport,
    HubSentence,
    UnitReport,
    ValidityReport,
    VocabularyReport,
    nan_to_none,
)
from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import DescribeJob, DescribeResult, Provenance
from neuroscribe.prompts.descriptors import DESCRIPTOR_PROMPT_VERSION
from neuroscribe.workers.describe.quality import consistency, precision_recall_at_k, reference_sets, split_half
from neuroscribe.workers.describe.descriptions import assign, exemplar_hubs, min_valid_exemplars, unit_statuses
from neuroscribe.workers.describe.descriptors import generate_descriptors
from neuroscribe.workers.describe.intervals import BOOTSTRAP, CONFIDENCE, difference_intervals, pr_intervals
from neuroscribe.workers.describe.heldout import held_out_verification, rare_label_warnings
from neuroscribe.workers.describe.exemplar_stream import (QUANTILE_METHOD, WINDOW, ExemplarsArtefact,
                                                          first_occurrences, firing_rule, occurrences)
from neuroscribe.workers.describe.artefacts import DescriptorsArtefact, VocabularyArtefact, vote
from neuroscribe.workers.describe.vocabulary import Vocabulary, build_vocabulary

__all__ = ["DescriptorsArtefact", "VocabularyArtefact", "ExemplarsArtefact", "descriptors_stage",
           "vocabulary_stage", "exemplars_stage", "analysis_stage", "dataset_sha256", "check_describe_subject",
           "vocabulary_warnings"]

# above this share of failed generations the result carries a warning
FAILURE_WARNING = 0.2
# above this share of the distinct descriptors in one cluster, the result carries a warning
LARGEST_CLUSTER_WARNING = 0.25
MIN_VOCABULARY_FOR_WARNING = 50
# random exemplar sets of the chance baseline of the evaluation
BASELINE_SETS = 1000
# hub sentences: the most frequent exemplars listed, and the share of the units that makes a hub
TOP_HUBS, HUB_SHARE = 10, 0.05
# above this share of dead units, the result carries a warning
DEAD_WARNING = 0.5


def dataset_sha256(job: DescribeJob) -> str:
    """sha256 of the sentences and labels, in order."""
    h = hashlib.sha256()
    labels = job.dataset.labels or (None,) * len(job.dataset.texts)
    for text, label in zip(job.dataset.texts, labels):
        h.update(json.dumps([text, label], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


# --------------------------------------------------------------------------- stages


def check_describe_subject(job: DescribeJob, subject) -> None:
    """Errors a loaded subject model can show before any generation: layers out of range, cls
    pooling on a model without a [CLS] token."""
    from neuroscribe.workers.activations.capture import check_layers
    from neuroscribe.workers.activations.sites import get_site

    get_site(subject.model_type, job.model.site)
    try:
        check_layers(job.model.layers, subject.n_layers)
    except InvalidInput as e:
        raise InvalidInput("model.layers", str(e)) from None
    if job.model.pooling.value == "cls" and getattr(subject.tokenizer, "cls_token_id", None) is None:
        raise InvalidInput("model.pooling", f"cls pooling needs a [CLS] token and {subject.model_id} has none; "
                                            "use --pooling mean, max or last")


def descriptors_stage(job: DescribeJob, backend, *, progress: bool = True) -> DescriptorsArtefact:
    sampling = job.sampling
    ds = generate_descriptors(backend, job.dataset.texts, sampling=sampling, seed=job.seed, samples=job.samples,
                              retries=job.retries, progress=progress)
    generator = dict(ds.generator or {})
    generator["sampling"] = sampling.model_dump(mode="json")
    samples = [[list(x) for x in per] for per in ds.samples] if job.samples > 1 else []
    return DescriptorsArtefact([None if d is None else list(d) for d in ds.descriptors], dict(ds.failures),
                               generator, ds.prompt_version, samples, job.samples, job.retries, ds.n_retried,
                               ds.n_recovered)


def vocabulary_stage(job: DescribeJob, descriptors: DescriptorsArtefact, embed=None) -> VocabularyArtefact:
    """Cluster the descriptors (the reference label names are kept as themselves; with
    ``label_word_match`` a descriptor holding such a name as a word also gives its sentence the
    name) and split the sentences in halves for the consistency."""
    if embed is None:
        from neuroscribe.workers.describe.vocabulary import minilm_embedder

        embed = minilm_embedder(device=job.model.device if job.model.device != "auto" else "cpu")
    spec = job.vocabulary
    keep = sorted(set(job.dataset.reference_names().values()))
    vocab = build_vocabulary(descriptors.descriptors, embed, min_cluster_size=spec.min_cluster_size,
                             min_samples=spec.min_samples, reduce_to=spec.reduce_to, selection=spec.selection,
                             keep=keep, seed=job.seed)
    words = keep if job.dataset.label_word_match else []

    def names(d, extra=True) -> set[str]:  # one sample's names (and the label names its descriptors hold as words)
        got = vocab.names(d)
        return got | {r for r in words if any(f" {r} " in f" {x} " for x in d)} if extra else got

    samples = descriptors.sample_lists()
    sets, dropped = vote(samples, names, job.min_votes)
    if words:
        plain, _ = vote(samples, lambda d: names(d, extra=False), job.min_votes)
        gained = sum(s is not None and set(s) != set(p) for s, p in zip(sets, plain))
        vocab.params["label_word_match"] = {"sentences_gaining_a_label_name": gained}
    if descriptors.n_samples > 1 or job.min_votes > 1:
        vocab.params["votes"] = {"samples": descriptors.n_samples, "min_votes": job.min_votes, "dropped": dropped}
    halves: list[list[int]] = []
    if job.consistency:
        calib, valid = split_half([None if s is None else frozenset(s) for s in sets], seed=job.seed)
        halves = [calib.tolist(), valid.tolist()]
    return VocabularyArtefact(vocab, sets, halves)


def exemplars_options(job: DescribeJob, subject, vocab: VocabularyArtefact, *, window: int = WINDOW) -> dict:
    """The options of ``stream_exemplars`` (and of its shards, ``exemplar_shards``) for ``job``."""
    spec = job.model
    return dict(top_percent=job.top_k_percent, halves=[np.asarray(h) for h in vocab.halves], site=spec.site,
                pooling=spec.pooling.value, layers=spec.layers, batch_size=spec.batch_size,
                max_length=spec.max_length, window=window, rule=firing_rule(subject.model_type, spec.site),
                keep_half=1 if len(vocab.halves) == 2 else None)


def exemplars_artefact(job: DescribeJob, subject, ex) -> ExemplarsArtefact:
    """The stage's artefact of streamed (or merged) exemplars ``ex``, with the subject's provenance."""
    from neuroscribe.workers.activations.sites import get_site

    spec = job.model
    info = {"model_id": subject.model_id, "revision": subject.revision, "weight_sha256": subject.weight_sha256,
            "model_type": subject.model_type, "site": get_site(subject.model_type, spec.site).name,
            "pooling": spec.pooling.value, "environment": subject.environment(), "n_saturated": ex.n_saturated,
            "firing_rule": firing_rule(subject.model_type, spec.site)}
    return ExemplarsArtefact(ex.layers, ex.units_per_layer, ex.k, ex.rows, ex.values, ex.halves, info, ex.firing,
                             ex.heldout, ex.summary)


def exemplars_stage(job: DescribeJob, subject, vocab: VocabularyArtefact, *, window: int = WINDOW,
                    progress: bool = True) -> ExemplarsArtefact:
    from neuroscribe.workers.describe.exemplar_stream import stream_exemplars

    ex = stream_exemplars(subject, job.dataset.texts, progress=progress,
                          **exemplars_options(job, subject, vocab, window=window))
    return exemplars_artefact(job, subject, ex)


def vocabulary_warnings(v: Vocabulary) -> list[str]:
    """A cluster holding more than ``LARGEST_CLUSTER_WARNING`` of the distinct descriptors (judged
    from ``MIN_VOCABULARY_FOR_WARNING`` descriptors on) would be assigned to many units."""
    if not v.clusters or len(v.mapping) < MIN_VOCABULARY_FOR_WARNING:
        return []
    big = max(v.clusters, key=lambda c: c.size)
    if big.size <= LARGEST_CLUSTER_WARNING * len(v.mapping):
        return []
    return [f"one vocabulary cluster ({big.name!r} and {big.size - 1} more) holds {100 * big.size / len(v.mapping):.0f}% "
            "of the distinct descriptors, so it will be assigned to many units; try --cluster-selection leaf, "
            "a smaller --min-cluster-size or --reduce-to"]


def _random_baseline(job: DescribeJob, sets, k: int, names: dict, population: np.ndarray, need: int):
    """precision@K / recall@K of ``BASELINE_SETS`` random "units" whose exemplars are k distinct
    sentences drawn at random (seeded), described under the same minimum of valid exemplars: how
    often a unit's top descriptor matches the majority label of its exemplars from descriptor and
    label frequencies alone, with no model involved."""
    rng = np.random.default_rng([job.seed, 7])
    rows = np.stack([np.sort(rng.choice(population, size=k, replace=False)) for _ in range(BASELINE_SETS)])
    a = assign(sets, rows, threshold=job.threshold, fdr=job.fdr, family=job.fdr_family, rows=population,
               min_valid=need)
    refs = reference_sets(list(job.dataset.labels), rows, names, threshold=job.threshold)
    return precision_recall_at_k(a, refs, ks=job.ks)  # NaN means when no random set is described


def _firing_references(labels, rows: np.ndarray, fires: np.ndarray, names: dict, threshold: float) -> list:
    """``reference_sets`` over the exemplars each unit fires on (empty for a unit firing on none)."""
    refs: list = [frozenset()] * rows.shape[0]
    n_fire = fires.sum(axis=1)
    for c in np.unique(n_fire[n_fire > 0]):
        idx = np.flatnonzero(n_fire == c)
        sub = rows[idx][fires[idx]].reshape(idx.size, int(c))
        for u, r in zip(idx, reference_sets(labels, sub, names, threshold=threshold)):
            refs[u] = r
    return refs


def _finite(x) -> float | None:
    return float(x) + 0.0 if math.isfinite(float(x)) else None


def _median(values) -> float | None:
    vals = [v for v in values if not np.isnan(v)]
    return statistics.median(vals) if vals else None


def analysis_stage(job: DescribeJob, descriptors: DescriptorsArtefact, vocab: VocabularyArtefact,
                   exemplars: ExemplarsArtefact, *, neuroscribe_version: str) -> DescribeResult:
    """Valid exemplars (distinct, fired on, known descriptors; docs/methods.md#b3) -> assignment,
    consistency, evaluation, unit statuses and hub sentences."""
    sets = vocab.frozensets()
    texts = job.dataset.texts
    n = len(sets)
    fs = exemplars.firing
    if fs is None:
        raise InvalidInput("exemplars", "the exemplars artefact has no firing statistics; run its stage again")
    warnings: list[str] = []
    distinct = first_occurrences(texts)
    need = min_valid_exemplars(exemplars.k, job.min_valid, job.min_valid_fraction)
    kw = dict(threshold=job.threshold, fdr=job.fdr, family=job.fdr_family)
    fires = exemplars.values > fs.threshold[:, None]  # a prefix of each unit's best-first exemplars
    full = assign(sets, exemplars.rows, mask=fires, min_valid=need, rows=distinct, **kw)

    cons_report, per_unit_cons, verification, held_out = None, None, None, None
    if vocab.halves:
        sides, half_need = [], []
        for h, (r, v) in zip(vocab.halves, exemplars.halves):
            half_need.append(min_valid_exemplars(r.shape[1], job.min_valid, job.min_valid_fraction))
            sides.append(assign(sets, r, mask=v > fs.threshold[:, None], min_valid=half_need[-1],
                                rows=first_occurrences(texts, h), **kw))
        if any(r.shape[1] < m for (r, _), m in zip(exemplars.halves, half_need)):
            warnings.append(f"a half has {min(r.shape[1] for r, _ in exemplars.halves)} exemplars per unit, fewer "
                            f"than the {max(half_need)} valid ones a description needs: no unit is described on it, "
                            "so the consistency is undefined; use a larger --top-percent or dataset")
        c = consistency(*sides)
        per_unit_cons = c.per_unit
        if exemplars.heldout is not None:
            verification, held_out = held_out_verification(sides[0], texts, sets, vocab.halves[1], exemplars.heldout,
                                                           fdr=job.verify_fdr, seed=job.seed)
        cons_report = ConsistencyReport(
            seed=job.seed, n_calibration=len(vocab.halves[0]), n_validation=len(vocab.halves[1]),
            stratified_by="each sentence's most frequent descriptor", mean=nan_to_none(c.mean),
            median=_median(c.per_unit), n_units=c.n_units, n_defined=c.n_defined, n_both_empty=c.n_both_empty,
            n_one_side_empty=c.n_one_side_empty,
            n_exemplars_per_half=tuple(int(r.shape[1]) for r, _ in exemplars.halves), histogram=tuple(int(x) for x in c.histogram),
            bin_edges=tuple(float(x) for x in c.bin_edges))

    evaluation, refs = None, None
    names = job.dataset.reference_names()
    if job.dataset.labels is not None:
        refs = _firing_references(list(job.dataset.labels), exemplars.rows, fires, names, job.threshold)
        pr = precision_recall_at_k(full, refs, ks=job.ks)
        base = _random_baseline(job, sets, exemplars.k, names, distinct, need)
        ci, base_ci = pr_intervals(pr, seed=job.seed), pr_intervals(base, seed=job.seed + 1)
        evaluation = EvaluationReport(label_names=names, ks=pr.ks, precision=tuple(map(nan_to_none, pr.precision)),
                                      recall=tuple(map(nan_to_none, pr.recall)), n_units=pr.n_units,
                                      n_recall_units=pr.n_recall_units, n_units_total=pr.n_units_total,
                                      baseline_sets=BASELINE_SETS,
                                      baseline_precision=tuple(map(nan_to_none, base.precision)),
                                      baseline_recall=tuple(map(nan_to_none, base.recall)),
                                      baseline_n_units=base.n_units, bootstrap=BOOTSTRAP, confidence=CONFIDENCE,
                                      precision_ci=ci.precision, recall_ci=ci.recall,
                                      baseline_precision_ci=base_ci.precision, baseline_recall_ci=base_ci.recall,
                                      precision_minus_chance_ci=difference_intervals(ci, base_ci))
        present = {s for row in sets if row is not None for s in row}
        missing = sorted(set(names.values()) - present)
        if missing:
            warnings.append(f"the reference label name(s) {missing} never occur among the descriptors, so they can "
                            "never be assigned; map labels to descriptor names with --label-name LABEL=NAME")
        warnings += rare_label_warnings(job.dataset.labels, sets, names)

    n_failed = sum(s is None for s in sets)
    if n_failed > FAILURE_WARNING * n:
        warnings.append(f"descriptor generation failed for {n_failed} of {n} sentences ({100 * n_failed / n:.0f}%); "
                        "they are left out of f and the base rates")
    if exemplars.k < need:
        warnings.append(f"only {exemplars.k} exemplar(s) per unit, fewer than the {need} valid ones a description "
                        "needs: no unit can be described; use a larger --top-percent or dataset, or lower "
                        "--min-valid")
    elif exemplars.k < 5:
        warnings.append(f"only {exemplars.k} exemplar(s) per unit: f moves in steps of {100 / exemplars.k:.0f}%; "
                        "use a larger --top-percent or dataset")
    if exemplars.subject.get("n_saturated"):
        warnings.append(f"{exemplars.subject['n_saturated']} responses exceeded the float16 range and were saturated")

    status = unit_statuses(fs.n_firing, [u.n_valid for u in full.units], [len(u.descriptors) for u in full.units],
                           need)
    tally = Counter(status)
    if tally["dead"] > DEAD_WARNING * len(status):
        warnings.append(f"{tally['dead']} of {len(status)} units never fire ({fs.description}) with "
                        f"{exemplars.subject['pooling']} pooling; they are reported, not described")
    hubs, n_hubs = exemplar_hubs(exemplars.rows, fires, n, top=TOP_HUBS, share=HUB_SHARE)
    validity = ValidityReport(
        firing_rule=fs.description, quantile_levels=fs.levels, quantile_method=QUANTILE_METHOD,
        min_valid=job.min_valid, min_valid_fraction=job.min_valid_fraction, min_valid_exemplars=need,
        n_duplicates_collapsed=n - len(distinct), n_firing=int(np.count_nonzero(fs.n_firing)),
        n_dead=tally["dead"], n_rare=tally["rare"], n_too_few_valid=tally["too few valid exemplars"],
        n_no_descriptor=tally["no descriptor passed"], n_described=tally["described"], hub_share=HUB_SHARE,
        n_hub_sentences=n_hubs, hubs=tuple(HubSentence(row=r, text=texts[r], n_units=c) for r, c in hubs))

    v = vocab.vocabulary
    largest = max((c.size for c in v.clusters), default=0)
    warnings += vocabulary_warnings(v)
    upl = exemplars.units_per_layer
    occ = occurrences(texts)
    density = fs.density
    n_failed_ex = np.array([x is None for x in sets])[exemplars.rows].sum(axis=1)
    units = []
    for u, desc in enumerate(full.units):
        cons = None if per_unit_cons is None else nan_to_none(float(per_unit_cons[u]))
        units.append(UnitReport(
            layer=exemplars.layers[u // upl], unit=u % upl,
            descriptors=tuple(AssignedDescriptor(**d.__dict__) for d in desc.descriptors),
            exemplars=tuple(int(x) for x in exemplars.rows[u]),
            activations=tuple(float(x) for x in exemplars.values[u]), n_failed=int(n_failed_ex[u]), consistency=cons,
            reference=None if refs is None else tuple(sorted(refs[u])), status=status[u], n_valid=desc.n_valid,
            exemplar_counts=tuple(int(occ[r]) for r in exemplars.rows[u]),
            firing_threshold=_finite(fs.threshold[u]), n_firing=int(fs.n_firing[u]),
            firing_density=float(density[u]), max_activation=_finite(fs.maximum[u]),
            quantiles=tuple(_finite(x) for x in fs.quantiles[u]), held_out=held_out[u] if held_out else ()))

    raw = [d for d in descriptors.descriptors if d is not None]
    subj = exemplars.subject
    provenance = Provenance(
        neuroscribe_version=neuroscribe_version, model=subj["model_id"], revision=subj["revision"],
        requested_revision=job.model.revision, weight_sha256=subj["weight_sha256"], site=subj["site"],
        pooling=subj["pooling"], data_sha256=dataset_sha256(job), environment=subj["environment"],
        generator=descriptors.generator, prompt_version=descriptors.prompt_version, seed=job.seed,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return DescribeResult(
        dataset=job.dataset.name, n_sentences=n, layers=tuple(exemplars.layers), units_per_layer=upl,
        top_k_percent=job.top_k_percent, n_exemplars=exemplars.k, threshold=job.threshold, fdr=job.fdr,
        fdr_family=job.fdr_family,
        descriptors=DescriptorReport(
            n_sentences=n, n_distinct_sentences=len(distinct),
            n_failed=n_failed, failures=descriptors.failures,
            n_distinct_descriptors=len({d for row in raw for d in row}),
            mean_per_sentence=float(np.mean([len(r) for r in raw])) if raw else None,
            samples=descriptors.n_samples, min_votes=job.min_votes, retries=descriptors.retries,
            n_retried=descriptors.n_retried, n_recovered=descriptors.n_recovered,
            n_dropped_by_vote=int(v.params.get("votes", {}).get("dropped", 0))),
        vocabulary=VocabularyReport(n_descriptors=len(v.mapping), largest_cluster=largest,
                                    n_names=len(set(v.mapping.values())),
                                    n_clusters=len(v.clusters),
                                    n_noise=len(v.noise) - len(v.params.get("kept", ())),
                                    kept=tuple(v.params.get("kept", ())), params=v.params),
        n_units=full.n_units, n_described=full.n_described, units=tuple(units), consistency=cons_report,
        evaluation=evaluation, validity=validity, verification=verification, provenance=provenance,
        warnings=tuple(warnings))
