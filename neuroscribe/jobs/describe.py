"""The contract of neuron descriptions (docs/methods.md#b): what a ``DescribeJob`` carries beyond
its model and generator, and what a ``DescribeResult`` reports.

Specs (inside ``DescribeJob``): ``DatasetSpec`` (the sentences travel inside the job, so a job
submitted over HTTP needs no shared file system; or a ``DatasetRef`` to a dataset uploaded once),
``VocabularySpec``.
Reports (inside ``DescribeResult``): ``DescriptorReport``, ``VocabularyReport``, ``UnitReport``,
``ValidityReport`` (firing, valid exemplars, duplicates, hub sentences), ``ConsistencyReport``,
``EvaluationReport``. Frozen pydantic models that cross process boundaries as JSON; an undefined
statistic (NaN) is written as ``null``. Fields added later have defaults, so an older result
still parses.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from neuroscribe.jobs.common import (SCHEMA_VERSION, DatasetRef, Frozen, GeneratorSpec, JobBase, Pooling, Provenance,
                                     SamplingSpec, SubjectModelSpec, inline_or_ref, nonblank_rows)
from neuroscribe.jobs.explanations import ExplanationReport

__all__ = ["DescribeJob", "DescribeResult", "HeldOutDescriptor", "VerificationReport", "ExplanationReport",
    "DatasetSpec", "VocabularySpec", "DescriptorReport", "VocabularyReport", "AssignedDescriptor", "UnitReport",
    "UnitStatus", "HubSentence", "ValidityReport", "ConsistencyReport", "EvaluationReport", "PAPER_P_AT_2",
    "PAPER_R_AT_2", "nan_to_none",
]

# Mondal et al. 2024 (arXiv 2401.16731): BERT on Amazon reviews, judged by ChatGPT and annotators
PAPER_P_AT_2 = 0.75
PAPER_R_AT_2 = 0.50


def nan_to_none(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# --------------------------------------------------------------------------- specs


class DatasetSpec(Frozen):
    """The sentences to describe, with optional reference labels (e.g. sentiment 0/1).

    ``label_names`` maps a label to the descriptor name it stands for in the evaluation (e.g.
    ``{"1": "positive", "0": "negative"}``); an unmapped label stands for itself. These names are
    kept out of clustering, so "positive" and "negative" never merge into one vocabulary entry.
    With ``label_word_match`` a sentence whose descriptors include e.g. "positive feedback" also
    holds "positive" (its descriptor still maps to its own cluster as well): an LLM rarely writes
    the bare label word, and the evaluation compares names exactly."""

    name: str = Field(..., min_length=1, description="Where the sentences came from (file name), for display.")
    texts: tuple[str, ...] = Field(..., min_length=2, description="One sentence per row.")
    labels: tuple[str, ...] | None = Field(None, description="Reference label per sentence (None: no evaluation).")
    label_names: dict[str, str] = Field(default_factory=dict, description="label -> descriptor name.")
    label_word_match: bool = Field(
        True, description="A descriptor holding a label's name as a whole word (e.g. 'positive feedback' for "
                          "'positive') also gives its sentence that name.")

    @field_validator("texts")
    @classmethod
    def _texts(cls, v):
        return nonblank_rows(v)  # each blank row named: texts.17

    @model_validator(mode="after")
    def _labels(self) -> "DatasetSpec":
        if self.labels is None:
            if self.label_names:
                raise ValueError("label_names given but the dataset has no labels")
            return self
        if len(self.labels) != len(self.texts):
            raise ValueError(f"labels: {len(self.labels)} labels for {len(self.texts)} sentences")
        classes = set(self.labels)
        if len(classes) < 2:
            raise ValueError(f"labels: a single class ({next(iter(classes))!r}); the evaluation needs at least 2")
        unknown = sorted(set(self.label_names) - classes)
        if unknown:
            raise ValueError(f"label_names: {unknown} are not labels of the dataset (labels: {sorted(classes)})")
        for k, name in self.label_names.items():
            if not name.strip():
                raise ValueError(f"label_names: label {k!r} maps to an empty name")
        return self

    def reference_names(self) -> dict[str, str]:
        """Every label's descriptor name (itself when unmapped), lower-cased as descriptors are."""
        if self.labels is None:
            return {}
        return {lab: " ".join(self.label_names.get(lab, lab).casefold().split()) for lab in sorted(set(self.labels))}


class VocabularySpec(Frozen):
    """Clustering of the distinct descriptors into a vocabulary (B.2)."""

    embedder: Literal["minilm"] = Field("minilm", description="Sentence-transformers model (packaged).")
    min_cluster_size: int = Field(5, ge=2, description="HDBSCAN min_cluster_size.")
    min_samples: int | None = Field(None, ge=1, description="HDBSCAN min_samples (default: min_cluster_size).")
    selection: Literal["leaf", "eom"] = Field(
        "leaf", description="HDBSCAN cluster selection: leaf (many small clusters) or eom (HDBSCAN's default; on "
                            "descriptor embeddings it tends to make one giant cluster).")
    reduce_to: int | None = Field(None, ge=2, description="PCA to this many dimensions before HDBSCAN (None: no).")


# --------------------------------------------------------------------------- reports


class DescriptorReport(Frozen):
    n_sentences: int
    n_distinct_sentences: int
    n_failed: int = Field(..., description="Sentences whose descriptor generation failed (left out of f and N).")
    failures: dict[str, int] = Field(default_factory=dict, description="Failure reason -> distinct sentences.")
    n_distinct_descriptors: int
    mean_per_sentence: float | None = Field(None, description="Descriptors per successful sentence (raw).")
    samples: int = Field(1, description="Samples asked per distinct sentence.")
    min_votes: int = Field(1, description="Samples that must hold a descriptor for the sentence to keep it.")
    retries: int = Field(0, description="Further attempts, with other seeds, at a failed sample.")
    n_retried: int = Field(0, description="Sentence-samples asked again after a failure.")
    n_recovered: int = Field(0, description="Of them, that succeeded on a later attempt.")
    n_dropped_by_vote: int = Field(0, description="Sentence-descriptor pairs held by fewer than min_votes samples.")


class VocabularyReport(Frozen):
    n_descriptors: int = Field(..., description="Distinct raw descriptors clustered.")
    largest_cluster: int = Field(0, description="Distinct descriptors in the largest cluster.")
    n_names: int = Field(..., description="Vocabulary size after clustering (clusters + noise + kept).")
    n_clusters: int
    n_noise: int
    kept: tuple[str, ...] = Field((), description="Names kept out of clustering (reference label names).")
    params: dict = Field(default_factory=dict)


class AssignedDescriptor(Frozen):
    descriptor: str
    count: int = Field(..., description="Exemplars (with known descriptors) that hold it.")
    f: float = Field(..., description="Percent of the unit's exemplars with known descriptors that hold it.")
    base_rate: float = Field(..., description="Percent of the dataset's sentences that hold it.")
    enrichment: float
    p: float = Field(..., description="One-sided hypergeometric p-value.")
    q: float | None = Field(None, description="Benjamini-Hochberg adjusted p (when an FDR was asked).")


UnitStatus = Literal["described", "no descriptor passed", "too few valid exemplars", "rare", "dead"]


class HeldOutDescriptor(Frozen):
    """A description made on the calibration half, tested on the held-out half (docs/methods.md#b5)."""

    descriptor: str
    n_pos: int = Field(..., description="Held-out sentences holding it.")
    n_neg: int = Field(..., description="Held-out sentences not holding it (failed generations left out).")
    auroc: float | None = Field(None, description="How well it predicts the unit's response (0.5 = chance).")
    ap: float | None = None
    ap_chance: float | None = Field(None, description="AP of a unit that knows nothing: n_pos / (n_pos + n_neg).")
    p: float | None = Field(None, description="One-sided Mann-Whitney p (AUROC > 0.5).")
    q: float | None = Field(None, description="Benjamini-Hochberg over every tested description of the run.")
    verified: bool = Field(False, description="q <= the verification FDR and AUROC > 0.5.")


class UnitReport(Frozen):
    layer: int
    unit: int
    descriptors: tuple[AssignedDescriptor, ...] = Field(..., description="Assigned, best f first.")
    exemplars: tuple[int, ...] = Field(..., description="Sentence rows of the top k% distinct sentences, best first.")
    activations: tuple[float, ...] = Field(..., description="Their responses, same order.")
    n_failed: int = Field(0, description="Exemplars whose descriptor generation failed.")
    consistency: float | None = Field(None, description="Jaccard between the halves (None: empty on both).")
    reference: tuple[str, ...] | None = Field(
        None, description="Reference label names (>= t% of the exemplars the unit fires on).")
    status: UnitStatus | None = Field(
        None, description="described; no descriptor passed; too few valid exemplars; rare (fires on fewer sentences "
                          "than a description needs); dead (fires on none). None: a result from before statuses.")
    n_valid: int | None = Field(None, description="Valid exemplars: it fires on them and their descriptors are known "
                                                   "(f's denominator).")
    exemplar_counts: tuple[int, ...] = Field((), description="How often each exemplar's text occurs in the dataset.")
    firing_threshold: float | None = Field(None, description="It fires on a sentence when its response is above this "
                                                             "(None: never).")
    n_firing: int | None = Field(None, description="Distinct sentences it fires on.")
    firing_density: float | None = Field(None, description="Share of the distinct sentences it fires on.")
    max_activation: float | None = Field(None, description="Largest response over the distinct sentences.")
    quantiles: tuple[float | None, ...] = Field((), description="Response quantiles at ValidityReport.quantile_levels.")
    held_out: tuple[HeldOutDescriptor, ...] = Field((), description="Its calibration-half descriptions tested on "
                                                                        "the held-out half, verified first.")


class VerificationReport(Frozen):
    """Held-out verification of the run: what verifies, and what chance alone verifies."""

    fdr: float
    n_heldout: int = Field(..., description="Distinct held-out sentences.")
    n_pairs: int = Field(..., description="Descriptions made on the calibration half.")
    n_testable: int = Field(..., description="Of them, with held-out sentences that hold and that lack it.")
    n_verified: int
    n_units_tested: int
    n_units_verified: int
    n_verified_null: int | None = Field(None, description="Verified after permuting the responses across the "
                                                          "held-out sentences: what chance alone verifies.")


class HubSentence(Frozen):
    row: int
    text: str
    n_units: int = Field(..., description="Units that have it among the exemplars they fire on.")


class ValidityReport(Frozen):
    """Which exemplars count (docs/methods.md#b3): distinct texts the unit fires on; how many units
    fire, how many a description needs, and the sentences that are exemplars of many units."""

    firing_rule: str = Field(..., description="When a unit fires on a sentence.")
    quantile_levels: tuple[float, ...]
    quantile_method: str
    min_valid: int
    min_valid_fraction: float
    min_valid_exemplars: int = Field(..., description="Valid exemplars a description needs: max(min_valid, "
                                                      "ceil(min_valid_fraction * k)).")
    n_duplicates_collapsed: int = Field(..., description="Rows whose text came at an earlier row.")
    n_firing: int = Field(..., description="Units that fire on at least one sentence.")
    n_dead: int
    n_rare: int
    n_too_few_valid: int
    n_no_descriptor: int
    n_described: int
    hub_share: float = 0.05
    n_hub_sentences: int = Field(..., description="Sentences that are exemplars of >= hub_share of the units.")
    hubs: tuple[HubSentence, ...] = Field((), description="The sentences that are exemplars of the most units.")


class ConsistencyReport(Frozen):
    """B.5: per-unit Jaccard of the descriptor sets assigned on two halves of the dataset."""

    seed: int
    n_calibration: int
    n_validation: int
    stratified_by: str
    mean: float | None = Field(..., description="Mean Jaccard over units described on at least one side.")
    median: float | None = None
    n_units: int
    n_defined: int
    n_both_empty: int = Field(..., description="Units with no descriptor on either half (not counted as 1).")
    n_one_side_empty: int
    n_exemplars_per_half: tuple[int, ...] = Field((), description="k on each half (its own top k%).")
    histogram: tuple[int, ...]
    bin_edges: tuple[float, ...]
    paper_mean: float = 0.95


class EvaluationReport(Frozen):
    """B.6: precision@K / recall@K of assigned descriptors against the dataset's labels."""

    label_names: dict[str, str]
    ks: tuple[int, ...]
    precision: tuple[float | None, ...]
    recall: tuple[float | None, ...]
    n_units: int = Field(..., description="Units with at least one descriptor (precision's denominator).")
    n_recall_units: int = Field(..., description="Of those, units with a non-empty reference (recall's).")
    n_units_total: int
    baseline_sets: int = Field(0, description="Random exemplar sets (k random sentences each) of the chance baseline.")
    baseline_precision: tuple[float | None, ...] = Field(
        (), description="precision@K of random exemplar sets: what descriptor and label frequencies alone give.")
    baseline_recall: tuple[float | None, ...] = ()
    baseline_n_units: int = Field(0, description="Random sets with at least one descriptor.")
    bootstrap: int = Field(0, description="Bootstrap resamples of the intervals (units; random sets for the chance "
                                          "row); 0: no intervals (an older result).")
    confidence: float = 0.95
    precision_ci: tuple[tuple[float, float] | None, ...] = Field((), description="Interval of precision@K.")
    recall_ci: tuple[tuple[float, float] | None, ...] = ()
    baseline_precision_ci: tuple[tuple[float, float] | None, ...] = ()
    baseline_recall_ci: tuple[tuple[float, float] | None, ...] = ()
    precision_minus_chance_ci: tuple[tuple[float, float] | None, ...] = Field(
        (), description="Interval of precision@K minus its chance row (independent resamples): below 0, below "
                        "chance; above 0, above chance; holding 0, not told apart.")
    paper_precision_at_2: float = PAPER_P_AT_2
    paper_recall_at_2: float = PAPER_R_AT_2


# --------------------------------------------------------------------------- the job and its result


class DescribeJob(JobBase):
    """Describe neurons with LLM-written descriptors of a dataset's sentences (docs/methods.md#b)."""

    kind: Literal["describe"] = "describe"
    dataset: DatasetSpec | DatasetRef = Field(
        ..., description="The sentences (and optional labels) to describe, inline or as {\"sha256\": ...} of a dataset "
                         "uploaded to POST /v1/datasets (the workers read it; a handler always sees the DatasetSpec).")
    # mean pooling by measurement (docs/methods.md#b3): on the Amazon sentences it verified 483 descriptions
    # on the held-out half against 102 for the paper's cls (6,214 of MiniLM's 9,216 units never fire with cls)
    model: SubjectModelSpec = Field(default_factory=lambda: SubjectModelSpec(pooling=Pooling.mean))
    generator: GeneratorSpec = Field(default_factory=GeneratorSpec)
    sampling: SamplingSpec = Field(
        default_factory=lambda: SamplingSpec(temperature=0.2, top_p=0.9, max_new_tokens=48, repetition_penalty=1.15),
        description="Sampling of the descriptor requests (the seed of each is derived from the job seed).")
    vocabulary: VocabularySpec = Field(default_factory=VocabularySpec)
    top_k_percent: float = Field(1.0, gt=0.0, le=100.0, description="Exemplars per unit: top k% sentences.")
    threshold: float = Field(50.0, gt=0.0, le=100.0, description="Assign a descriptor when f >= threshold (%).")
    fdr: float | None = Field(None, gt=0.0, lt=1.0, description="Optional Benjamini-Hochberg FDR.")
    fdr_family: Literal["tested", "all"] = Field("tested", description="BH family: pairs with x >= 1, or all.")
    consistency: bool = Field(True, description="Split-half consistency and held-out verification (B.5).")
    verify_fdr: float = Field(0.05, gt=0.0, lt=1.0, description="A description is verified when it predicts the "
                                                              "unit's held-out responses at this Benjamini-Hochberg "
                                                              "FDR (and AUROC > 0.5).")
    min_valid: int = Field(5, ge=1, description="Describe a unit only from at least this many valid exemplars "
                                                "(distinct sentences it fires on, with known descriptors).")
    min_valid_fraction: float = Field(0.5, ge=0.0, le=1.0,
                                      description="Describe a unit only from at least this share of its k exemplars "
                                                  "(valid ones).")
    ks: tuple[int, ...] = Field((1, 2, 3), min_length=1, description="K of precision@K / recall@K.")
    samples: int = Field(1, ge=1, le=16, description="Descriptor samples per sentence, each with its own seed "
                                                     "(self-consistency; docs/methods.md#b1).")
    min_votes: int = Field(1, ge=1, le=16, description="Keep a descriptor (vocabulary name) of a sentence only when "
                                                       "at least this many of its samples hold it; a sentence with "
                                                       "fewer successful samples counts as failed.")
    retries: int = Field(1, ge=0, le=8, description="Ask a failed descriptor generation again, with another seed, "
                                                    "up to this many times.")
    explain_units: int = Field(10, ge=0, le=10_000, description="Units the LLM explains in one sentence, scored on "
                                                               "the held-out half (verified units first, then the "
                                                               "top-firing ones; 0: none; docs/methods.md#b7).")
    detection_sentences: int = Field(5, ge=1, le=500, description="Held-out sentences per class (firing, not firing) "
                                                                   "the LLM judges per explained unit.")
    token_evidence: bool = Field(True, description="Write every unit's per-token activations on its exemplars and on "
                                                   "sentences at its response quantiles, its mean and a display "
                                                   "histogram (token_evidence.npz/.json; docs/methods.md#b3).")

    @field_validator("dataset", mode="wrap")
    @classmethod
    def _dataset(cls, v, handler):
        return inline_or_ref(DatasetSpec, v, handler)

    @model_validator(mode="after")
    def _votes(self) -> "DescribeJob":
        if self.min_votes > self.samples:
            raise ValueError(f"min_votes: {self.min_votes} votes of {self.samples} sample(s) can never be reached; "
                             "ask for at least as many samples")
        return self

    @field_validator("ks")
    @classmethod
    def _ks(cls, v):
        if min(v) < 1:
            raise ValueError("every K must be >= 1")
        return tuple(sorted(set(v)))


class DescribeResult(Frozen):
    """Descriptions of every unit of the chosen layers (docs/methods.md#b)."""

    kind: Literal["describe"] = "describe"
    schema_version: Literal[1] = SCHEMA_VERSION
    dataset: str
    n_sentences: int
    layers: tuple[int, ...]
    units_per_layer: int
    top_k_percent: float
    n_exemplars: int = Field(..., description="Exemplars per unit, k = ceil(n * top_k_percent / 100), n the "
                                              "distinct sentences.")
    threshold: float
    fdr: float | None = None
    fdr_family: str = "tested"
    descriptors: DescriptorReport
    vocabulary: VocabularyReport
    n_units: int
    n_described: int = Field(..., description="Units with at least one assigned descriptor.")
    units: tuple[UnitReport, ...] = Field(..., description="Every unit, layer by layer.")
    consistency: ConsistencyReport | None = None
    evaluation: EvaluationReport | None = Field(None, description="None when the dataset has no labels.")
    validity: ValidityReport | None = Field(None, description="Firing and valid exemplars (None: an older result).")
    verification: VerificationReport | None = Field(None, description="Held-out verification (None: no halves).")
    explanations: ExplanationReport | None = Field(None, description="LLM-written explanations scored on the held-out "
                                                                     "half (docs/methods.md#b7; None: not asked).")
    provenance: Provenance
    warnings: tuple[str, ...] = ()
