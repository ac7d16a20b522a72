"""The describe job (docs/methods.md#b) as four pure stages with JSON-able artefacts, so the
embedded runner calls them in one process and the service's workers call the same functions from
their queues (generation -> clustering -> activations -> analysis):

* ``descriptors_stage``: descriptors of every sentence (B.1) -> ``DescriptorsArtefact``;
* ``vocabulary_stage``: clustered vocabulary (B.2) and the seeded split in halves (B.5, stratified
  by each sentence's most frequent descriptor) -> ``VocabularyArtefact``;
* ``exemplars_stage``: streaming top-k% exemplars over the dataset and each half (B.3) ->
  ``ExemplarsArtefact``;
* ``analysis_stage``: assignment (B.4), split-half consistency (B.5), precision@K / recall@K
  against the labels (B.6) -> ``DescribeResult``.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from neuroscribe.jobs.describe import (
    AssignedDescriptor,
    ConsistencyReport,
    DescriptorReport,
    EvaluationReport,
    UnitReport,
    VocabularyReport,
    nan_to_none,
)
from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import DescribeJob, DescribeResult, Provenance
from neuroscribe.prompts.descriptors import DESCRIPTOR_PROMPT_VERSION
from neuroscribe.workers.describe.quality import consistency, precision_recall_at_k, reference_sets, split_half
from neuroscribe.workers.describe.descriptions import assign
from neuroscribe.workers.describe.descriptors import generate_descriptors
from neuroscribe.workers.describe.vocabulary import Cluster, Vocabulary, build_vocabulary

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


def dataset_sha256(job: DescribeJob) -> str:
    """sha256 of the sentences and labels, in order."""
    h = hashlib.sha256()
    labels = job.dataset.labels or (None,) * len(job.dataset.texts)
    for text, label in zip(job.dataset.texts, labels):
        h.update(json.dumps([text, label], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


# --------------------------------------------------------------------------- artefacts


@dataclass
class DescriptorsArtefact:
    descriptors: list[list[str] | None]  # per sentence (input order); None: generation failed
    failures: dict[str, int]
    generator: dict
    prompt_version: str = DESCRIPTOR_PROMPT_VERSION

    def to_json(self) -> dict:
        return {"descriptors": self.descriptors, "failures": self.failures, "generator": self.generator,
                "prompt_version": self.prompt_version}

    @classmethod
    def from_json(cls, data: dict) -> "DescriptorsArtefact":
        return cls([None if d is None else list(d) for d in data["descriptors"]], dict(data["failures"]),
                   dict(data["generator"]), data["prompt_version"])


def _vocab_json(v: Vocabulary) -> dict:
    return {"mapping": v.mapping, "params": v.params, "noise": [list(x) for x in v.noise],
            "clusters": [{"name": c.name, "members": [list(m) for m in c.members], "size": c.size, "count": c.count}
                         for c in v.clusters]}


def _vocab_from_json(d: dict) -> Vocabulary:
    clusters = [Cluster(c["name"], tuple((m[0], int(m[1])) for m in c["members"]), int(c["size"]), int(c["count"]))
                for c in d["clusters"]]
    return Vocabulary(dict(d["mapping"]), clusters, [(x[0], int(x[1])) for x in d["noise"]], dict(d["params"]))


@dataclass
class VocabularyArtefact:
    vocabulary: Vocabulary
    sets: list[list[str] | None]  # per sentence its vocabulary names (sorted); None: failed
    halves: list[list[int]] = field(default_factory=list)  # [calibration rows, validation rows] or []

    def to_json(self) -> dict:
        return {"vocabulary": _vocab_json(self.vocabulary), "sets": self.sets, "halves": self.halves}

    @classmethod
    def from_json(cls, data: dict) -> "VocabularyArtefact":
        return cls(_vocab_from_json(data["vocabulary"]), [None if s is None else list(s) for s in data["sets"]],
                   [list(map(int, h)) for h in data["halves"]])

    def frozensets(self) -> list[frozenset[str] | None]:
        return [None if s is None else frozenset(s) for s in self.sets]


@dataclass
class ExemplarsArtefact:
    layers: list[int]
    units_per_layer: int
    k: int
    rows: np.ndarray
    values: np.ndarray
    halves: list[tuple[np.ndarray, np.ndarray]]
    subject: dict  # model_id, revision, weight_sha256, model_type, site, pooling, environment, n_saturated

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"rows": self.rows, "values": self.values}
        for i, (r, v) in enumerate(self.halves):
            arrays[f"half{i}_rows"], arrays[f"half{i}_values"] = r, v
        np.savez(directory / "exemplars.npz", **arrays)
        meta = {"layers": self.layers, "units_per_layer": self.units_per_layer, "k": self.k,
                "n_halves": len(self.halves), "subject": self.subject}
        (directory / "exemplars.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "ExemplarsArtefact":
        directory = Path(directory)
        meta = json.loads((directory / "exemplars.json").read_text(encoding="utf-8"))
        with np.load(directory / "exemplars.npz", allow_pickle=False) as z:
            halves = [(z[f"half{i}_rows"], z[f"half{i}_values"]) for i in range(meta["n_halves"])]
            return cls(meta["layers"], meta["units_per_layer"], meta["k"], z["rows"], z["values"], halves,
                       meta["subject"])


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
    ds = generate_descriptors(backend, job.dataset.texts, sampling=sampling, seed=job.seed, progress=progress)
    generator = dict(ds.generator or {})
    generator["sampling"] = sampling.model_dump(mode="json")
    return DescriptorsArtefact([None if d is None else list(d) for d in ds.descriptors], dict(ds.failures),
                               generator, ds.prompt_version)


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
    sets = [None if d is None else sorted(vocab.names(d)) for d in descriptors.descriptors]
    if keep and job.dataset.label_word_match:
        gained = 0
        for i, d in enumerate(descriptors.descriptors):
            if d is None:
                continue
            extra = {r for r in keep if r not in sets[i] and any(f" {r} " in f" {x} " for x in d)}
            if extra:
                sets[i] = sorted(set(sets[i]) | extra)
                gained += 1
        vocab.params["label_word_match"] = {"sentences_gaining_a_label_name": gained}
    halves: list[list[int]] = []
    if job.consistency:
        calib, valid = split_half([None if s is None else frozenset(s) for s in sets], seed=job.seed)
        halves = [calib.tolist(), valid.tolist()]
    return VocabularyArtefact(vocab, sets, halves)


def exemplars_stage(job: DescribeJob, subject, vocab: VocabularyArtefact, *, window: int = 2048,
                    progress: bool = True) -> ExemplarsArtefact:
    from neuroscribe.workers.describe.exemplar_stream import stream_exemplars

    spec = job.model
    ex = stream_exemplars(subject, job.dataset.texts, top_percent=job.top_k_percent,
                          halves=[np.asarray(h) for h in vocab.halves], site=spec.site, pooling=spec.pooling.value,
                          layers=spec.layers, batch_size=spec.batch_size, max_length=spec.max_length, window=window,
                          progress=progress)
    from neuroscribe.workers.activations.sites import get_site

    info = {"model_id": subject.model_id, "revision": subject.revision, "weight_sha256": subject.weight_sha256,
            "model_type": subject.model_type, "site": get_site(subject.model_type, spec.site).name,
            "pooling": spec.pooling.value, "environment": subject.environment(), "n_saturated": ex.n_saturated}
    return ExemplarsArtefact(ex.layers, ex.units_per_layer, ex.k, ex.rows, ex.values, ex.halves, info)


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


def _random_baseline(job: DescribeJob, sets, k: int, names: dict):
    """precision@K / recall@K of ``BASELINE_SETS`` random "units" whose exemplars are k sentences
    drawn at random (seeded): how often a unit's top descriptor matches the majority label of its
    exemplars from descriptor and label frequencies alone, with no model involved."""
    n = len(sets)
    rng = np.random.default_rng([job.seed, 7])
    rows = np.stack([np.sort(rng.choice(n, size=k, replace=False)) for _ in range(BASELINE_SETS)])
    a = assign(sets, rows, threshold=job.threshold, fdr=job.fdr, family=job.fdr_family)
    refs = reference_sets(list(job.dataset.labels), rows, names, threshold=job.threshold)
    return precision_recall_at_k(a, refs, ks=job.ks)  # NaN means when no random set is described


def _median(values) -> float | None:
    vals = [v for v in values if not np.isnan(v)]
    return statistics.median(vals) if vals else None


def analysis_stage(job: DescribeJob, descriptors: DescriptorsArtefact, vocab: VocabularyArtefact,
                   exemplars: ExemplarsArtefact, *, neuroscribe_version: str) -> DescribeResult:
    sets = vocab.frozensets()
    n = len(sets)
    warnings: list[str] = []
    full = assign(sets, exemplars.rows, threshold=job.threshold, fdr=job.fdr, family=job.fdr_family)

    cons_report, per_unit_cons = None, None
    if vocab.halves:
        (r0, _), (r1, _) = exemplars.halves
        a0 = assign(sets, r0, threshold=job.threshold, fdr=job.fdr, family=job.fdr_family, rows=vocab.halves[0])
        a1 = assign(sets, r1, threshold=job.threshold, fdr=job.fdr, family=job.fdr_family, rows=vocab.halves[1])
        c = consistency(a0, a1)
        per_unit_cons = c.per_unit
        cons_report = ConsistencyReport(
            seed=job.seed, n_calibration=len(vocab.halves[0]), n_validation=len(vocab.halves[1]),
            stratified_by="each sentence's most frequent descriptor", mean=nan_to_none(c.mean),
            median=_median(c.per_unit), n_units=c.n_units, n_defined=c.n_defined, n_both_empty=c.n_both_empty,
            n_one_side_empty=c.n_one_side_empty, histogram=tuple(int(x) for x in c.histogram),
            bin_edges=tuple(float(x) for x in c.bin_edges))

    evaluation, refs = None, None
    names = job.dataset.reference_names()
    if job.dataset.labels is not None:
        refs = reference_sets(list(job.dataset.labels), exemplars.rows, names, threshold=job.threshold)
        pr = precision_recall_at_k(full, refs, ks=job.ks)
        base = _random_baseline(job, sets, exemplars.k, names)
        evaluation = EvaluationReport(label_names=names, ks=pr.ks, precision=tuple(map(nan_to_none, pr.precision)),
                                      recall=tuple(map(nan_to_none, pr.recall)), n_units=pr.n_units,
                                      n_recall_units=pr.n_recall_units, n_units_total=pr.n_units_total,
                                      baseline_sets=BASELINE_SETS,
                                      baseline_precision=tuple(map(nan_to_none, base.precision)),
                                      baseline_recall=tuple(map(nan_to_none, base.recall)),
                                      baseline_n_units=base.n_units)
        present = {s for row in sets if row is not None for s in row}
        missing = sorted(set(names.values()) - present)
        if missing:
            warnings.append(f"the reference label name(s) {missing} never occur among the descriptors, so they can "
                            "never be assigned; map labels to descriptor names with --label-name LABEL=NAME")

    n_failed = sum(s is None for s in sets)
    if n_failed > FAILURE_WARNING * n:
        warnings.append(f"descriptor generation failed for {n_failed} of {n} sentences ({100 * n_failed / n:.0f}%); "
                        "they are left out of f and the base rates")
    if exemplars.k < 5:
        warnings.append(f"only {exemplars.k} exemplar(s) per unit: f moves in steps of {100 / exemplars.k:.0f}%; "
                        "use a larger --top-percent or dataset")
    if exemplars.subject.get("n_saturated"):
        warnings.append(f"{exemplars.subject['n_saturated']} responses exceeded the float16 range and were saturated")

    v = vocab.vocabulary
    largest = max((c.size for c in v.clusters), default=0)
    warnings += vocabulary_warnings(v)
    upl = exemplars.units_per_layer
    units = []
    for u, desc in enumerate(full.units):
        cons = None if per_unit_cons is None else nan_to_none(float(per_unit_cons[u]))
        units.append(UnitReport(
            layer=exemplars.layers[u // upl], unit=u % upl,
            descriptors=tuple(AssignedDescriptor(**d.__dict__) for d in desc.descriptors),
            exemplars=tuple(int(x) for x in exemplars.rows[u]),
            activations=tuple(float(x) for x in exemplars.values[u]), n_failed=desc.n_failed, consistency=cons,
            reference=None if refs is None else tuple(sorted(refs[u]))))

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
            n_sentences=n, n_distinct_sentences=len(set(" ".join(t.split()) for t in job.dataset.texts)),
            n_failed=n_failed, failures=descriptors.failures,
            n_distinct_descriptors=len({d for row in raw for d in row}),
            mean_per_sentence=float(np.mean([len(r) for r in raw])) if raw else None),
        vocabulary=VocabularyReport(n_descriptors=len(v.mapping), largest_cluster=largest,
                                    n_names=len(set(v.mapping.values())),
                                    n_clusters=len(v.clusters),
                                    n_noise=len(v.noise) - len(v.params.get("kept", ())),
                                    kept=tuple(v.params.get("kept", ())), params=v.params),
        n_units=full.n_units, n_described=full.n_described, units=tuple(units), consistency=cons_report,
        evaluation=evaluation, provenance=provenance, warnings=tuple(warnings))
