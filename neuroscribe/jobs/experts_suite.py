"""The contract of the expert-neuron analysis suite (docs/methods.md#a3 to #a7): what an
``ExpertsJob`` may ask for beyond the experts themselves, and what its result then carries.

Specs (inside ``ExpertsJob``): ``StabilitySpec``, ``AlignmentSpec``, ``SweepTarget``, ``CausalSpec``.
Reports (inside ``ExpertsResult``): ``StabilityReport``, ``AlignmentReport``, ``SweepReport``,
``CausalReport``. Like ``jobs.py``, everything is a frozen pydantic model that crosses process
boundaries as JSON; NaN (an undefined statistic) is written as ``null``.
"""

from __future__ import annotations


from pydantic import Field, field_validator

from neuroscribe.jobs.common import Frozen

__all__ = [
    "StabilitySpec", "AlignmentSpec", "PairSpec", "SweepTarget", "CausalSpec",
    "FoldStability", "SweepPoint", "ConceptStability", "StabilityReport",
    "SkippedConcept", "PairSimilarity", "MethodAlignment", "AlignmentReport",
    "SweepEntry", "SweepReport", "ConceptCausal", "CausalReport",
]


def _sorted_unique(v):
    return None if v is None else tuple(sorted(set(v)))


# --------------------------------------------------------------------------- specs


class StabilitySpec(Frozen):
    """Stability of the expert sets (A.3): K disjoint folds at the job's tau, and a sweep of
    subsamples over (n+, n-, tau)."""

    folds: int = Field(3, ge=2, le=50, description="K of the K-fold stability at the job's tau.")
    n_pos: tuple[int, ...] | None = Field(
        None, min_length=1, description="Subsample sizes n+ of the sweep (default: 1/4, 1/2, 3/4 of the fewest "
                                        "positives any concept has).")
    n_neg: tuple[int, ...] | None = Field(
        None, min_length=1, description="Subsample sizes n- of the sweep (default: 1/4, 1/2, 3/4 of the fewest "
                                        "negatives any concept has).")
    taus: tuple[float, ...] = Field((0.6, 0.7, 0.8, 0.9, 0.95), min_length=1, description="The sweep's taus.")
    repeats: int = Field(5, ge=2, le=1000, description="Subsamples drawn per (n+, n-).")

    @field_validator("n_pos", "n_neg")
    @classmethod
    def _sizes(cls, v):
        if v is not None and min(v) < 1:
            raise ValueError("subsample sizes must be >= 1")
        return _sorted_unique(v)

    @field_validator("taus")
    @classmethod
    def _taus(cls, v):
        if not all(0 < t <= 1 for t in v):
            raise ValueError("every tau must lie in (0, 1]")
        return _sorted_unique(v)


class PairSpec(Frozen):
    word1: str = Field(..., min_length=1)
    word2: str = Field(..., min_length=1)
    score: float


class AlignmentSpec(Frozen):
    """Human alignment (A.5): concept similarities from the experts against human word-pair ratings."""

    dataset: str = Field("MEN", min_length=1, description="Name of the word-pair ratings (shown in the report).")
    pairs: tuple[PairSpec, ...] | None = Field(
        None, min_length=3, description="Word pairs with human scores; None = the packaged MEN (3,000 pairs).")


class SweepTarget(Frozen):
    """One more model of a sweep (A.6), read at the main model's site, pooling and layers."""

    name: str = Field(..., min_length=1, description="Hugging Face id, local path or packaged alias.")
    revision: str | None = Field(None, description="Branch, tag or commit, e.g. 'step1000'.")
    random_init: bool = Field(False, description="Same architecture, freshly initialised weights (seeded).")


class CausalSpec(Frozen):
    """Causal check (A.7, decoder models): fix a concept's experts to their median positive response
    and measure the change in log-probability of the concept word after neutral prompts."""

    prompts: tuple[str, ...] | None = Field(
        None, min_length=2, description="Prompts the concept word may follow (default: the packaged neutral ones).")
    n_random: int = Field(10, ge=1, le=1000, description="Draws of as many random units as there are experts.")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Level of the t-intervals over prompts.")
    max_experts: int = Field(2000, ge=1, description="Fix at most this many experts per concept (the best by AP).")


# --------------------------------------------------------------------------- reports


class FoldStability(Frozen):
    tau: float
    k: int
    jaccard: float | None = Field(..., description="Mean pairwise Jaccard over defined fold pairs (None: none).")
    n_pairs: int = Field(..., description="Fold pairs with at least one expert between them.")
    n_experts: tuple[int, ...] = Field(..., description="Experts found on each fold.")


class SweepPoint(Frozen):
    """One (n+, n-, tau) of the sweep: ``repeats`` subsamples, their mean pairwise Jaccard and counts."""

    n_pos: int
    n_neg: int
    tau: float
    repeats: int
    jaccard: float | None
    n_pairs: int
    n_experts_mean: float
    n_experts_std: float
    n_empty: int
    base_rate: float
    n_distinct: int


class ConceptStability(Frozen):
    concept: str
    folds: FoldStability
    sweep: tuple[SweepPoint, ...]
    best: dict[str, SweepPoint | None] = Field(
        ..., description="For each tau (as text), the (n+, n-) with the best overlap, its expert count beside it; "
                         "None when no grid point above chance had experts.")


class StabilityReport(Frozen):
    spec: StabilitySpec
    n_pos: tuple[int, ...] = Field(..., description="The n+ grid used.")
    n_neg: tuple[int, ...] = Field(..., description="The n- grid used.")
    concepts: tuple[ConceptStability, ...]


class SkippedConcept(Frozen):
    concept: str
    reason: str


class PairSimilarity(Frozen):
    word1: str
    word2: str
    human: float
    similarity: dict[str, float] = Field(..., description="Method -> model similarity of the pair.")


class MethodAlignment(Frozen):
    method: str
    description: str
    rho: float | None
    p_value: float | None


class AlignmentReport(Frozen):
    dataset: str
    n_pairs: int = Field(..., description="Pairs used: both words are concepts and every method is defined.")
    methods: tuple[MethodAlignment, ...] = Field(..., description="Spearman rho per method, on the same pairs.")
    pairs: tuple[PairSimilarity, ...]
    skipped: tuple[SkippedConcept, ...] = Field(..., description="Concepts in no usable pair, and why.")
    dropped_pairs: tuple[dict, ...] = Field((), description="Pairs left out because a similarity was undefined.")
    baseline_layer: int = Field(..., description="Hidden-state layer of the embedding baselines.")


class SweepEntry(Frozen):
    """Experts of one model of the sweep at the job's tau."""

    model: str
    requested_revision: str | None
    revision: str | None = Field(..., description="Resolved revision (commit), when known.")
    random_init: bool = False
    weight_sha256: str
    n_params: int
    n_layers: int
    units_per_layer: int
    layers: tuple[int, ...]
    step: int | None = Field(None, description="Training step parsed from a 'stepN' revision.")
    counts_per_layer: dict[str, dict[int, int]] = Field(..., description="Concept -> layer -> experts.")
    from_cache: bool = Field(False, description="Responses read from the cache (no forward pass).")

    @property
    def label(self) -> str:
        if self.random_init:
            return f"{self.model} (random init)"
        return f"{self.model}@{self.requested_revision}" if self.requested_revision else self.model

    def total(self, concept: str | None = None) -> int:
        per = self.counts_per_layer.values() if concept is None else [self.counts_per_layer[concept]]
        return sum(sum(c.values()) for c in per)


class SweepReport(Frozen):
    tau: float
    entries: tuple[SweepEntry, ...] = Field(..., description="Every model of the sweep, the job's own included.")
    identical_weights: tuple[tuple[str, ...], ...] = Field(
        (), description="Groups of sweep entries (labels) whose weight files hash the same.")


class ConceptCausal(Frozen):
    concept: str
    n_units: int
    n_prompts: int
    n_random: int
    words: tuple[str, ...]
    mean_experts: float | None = None
    ci_experts: tuple[float | None, float | None] | None = None
    mean_random: float | None = None
    ci_random: tuple[float | None, float | None] | None = None
    mean_difference: float | None = None
    ci_difference: tuple[float | None, float | None] | None = None
    skipped: str | None = Field(None, description="Why the concept was not tested (e.g. no experts).")


class CausalReport(Frozen):
    site: str
    confidence: float
    prompts: tuple[str, ...]
    concepts: tuple[ConceptCausal, ...]
    skipped: str | None = Field(None, description="Why no concept was tested (e.g. not a decoder model).")
