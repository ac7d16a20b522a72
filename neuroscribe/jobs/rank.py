"""The contract of neuron rankings (docs/methods.md#c, Antverg & Belinkov 2022): what a ``RankJob``
carries beyond its model, and what a ``RankResult`` reports.

Specs (inside ``RankJob``): ``AttributeDataSpec`` (the labelled examples travel inside the job, or a
``DatasetRef`` to a dataset uploaded once),
``RankingSpec``, ``ProbingSpec``, ``InterventionSpec``. Reports (inside ``RankResult``):
``RankingReport``, ``BottomRow``, ``StabilityRow``, ``ProbeRow``, ``SameProbeRow``, ``EffectRow``,
``AgreementRow``. Frozen pydantic models that cross
process boundaries as JSON; an undefined statistic (NaN) is written as ``null``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from neuroscribe.jobs.common import (SCHEMA_VERSION, DatasetRef, Frozen, JobBase, Pooling, Provenance, SubjectModelSpec,
                                     inline_or_ref, nonblank_rows, row_errors)

__all__ = ["RankJob", "RankResult", "AttributeDataSpec", "RankingSpec", "ProbingSpec", "InterventionSpec",
           "RankingReport", "BottomRow", "StabilityRow", "ProbeRow", "SameProbeRow", "EffectRow", "AgreementRow",
           "MIN_PER_CLASS", "METHODS", "BOTTOM_K", "EDIT_POSITIONS"]

MIN_PER_CLASS = 5
METHODS = ("linear", "gaussian", "probeless", "ap", "random")
EDIT_POSITIONS = ("all", "attribute")
BOTTOM_K = ("bottom-k: the k units the ranking considers least relevant (lowest relevance score), ties at the "
            "boundary broken at random with the job's seed; gaussian's relevance is each unit's score alone "
            "(the greedy objective before any unit is chosen), not its gain given the selected units")


class AttributeDataSpec(Frozen):
    """Labelled examples: a sentence-level attribute, or a token-level one when ``word_index`` marks
    the target word of each text (0-based, whitespace words).

    ``continuations`` (decoders): per label a text that bears it, appended to each example for the
    intervention effect (e.g. {"1": " It was great.", "0": " It was terrible."}). ``label_texts``
    (sentence encoders without an LM head): per label a description whose embedding the model's own
    sentence embedding is compared with (e.g. {"1": "A positive review."})."""

    name: str = Field(..., min_length=1)
    texts: tuple[str, ...] = Field(..., min_length=2)
    labels: tuple[str, ...]
    word_index: tuple[int, ...] | None = Field(None, description="Target word per text (token-level attribute).")
    continuations: dict[str, str] | None = None
    label_texts: dict[str, str] | None = None
    label_names: dict[str, str] | None = Field(None, description="Readable names of the labels (e.g. 1 -> positive), "
                                                                 "shown beside them.")

    @field_validator("texts")
    @classmethod
    def _texts(cls, v):
        return nonblank_rows(v)  # each blank row named: texts.17

    @model_validator(mode="after")
    def _check(self) -> "AttributeDataSpec":
        n = len(self.texts)
        if len(self.labels) != n:
            raise ValueError(f"labels: {len(self.labels)} labels for {n} texts")
        counts: dict[str, int] = {}
        for lab in self.labels:
            counts[lab] = counts.get(lab, 0) + 1
        if len(counts) < 2:
            raise ValueError(f"labels: a single class ({next(iter(counts))!r}); a ranking needs at least 2")
        small = {k: v for k, v in sorted(counts.items()) if v < MIN_PER_CLASS}
        if small:
            raise ValueError(f"labels: classes with fewer than {MIN_PER_CLASS} examples: "
                             + ", ".join(f"{k!r} has {v}" for k, v in small.items()))
        if self.word_index is not None:
            if len(self.word_index) != n:
                raise ValueError(f"word_index: {len(self.word_index)} indices for {n} texts")
            bad = [(("word_index", i), w, "word_outside_sentence",
                    f"{w} is outside sentence {i} ({words} words: 0..{words - 1})")
                   for i, (t, w) in enumerate(zip(self.texts, self.word_index))
                   for words in (len(t.split()),) if not 0 <= w < words]
            if bad:  # each row named: word_index.17
                raise row_errors("AttributeDataSpec", bad)
        for field in ("continuations", "label_texts"):
            given = getattr(self, field)
            if given is not None and set(given) != set(counts):
                raise ValueError(f"{field}: must name every label {sorted(counts)}, got {sorted(given)}")
        unknown = sorted(set(self.label_names or {}) - set(counts))
        if unknown:
            raise ValueError(f"label_names: {', '.join(map(repr, unknown))} is no label of the data "
                             f"(labels: {sorted(counts)})")
        return self

    def class_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for lab in self.labels:
            out[lab] = out.get(lab, 0) + 1
        return dict(sorted(out.items()))


class RankingSpec(Frozen):
    """How the rankings are computed (C.1) and checked for stability."""

    linear_tol: float = Field(1e-4, gt=0.0, le=1.0, description="Stopping tolerance of the elastic-net (linear) "
                                                                "probe's saga solver.")
    linear_max_iter: int = Field(20000, ge=1, le=1_000_000,
                                 description="Iteration limit of the linear probe (reached: a warning, not converged).")
    stability: bool = Field(True, description="Rank again with a second seed and on two halves of the ranking "
                                              "examples, and report the top-k overlap of each pair.")


class ProbingSpec(Frozen):
    """Encoded information (C.2): a separate probe on the top-, bottom- and random-k units."""

    probe: Literal["logreg", "linear_svm", "mlp"] = Field("logreg", description="The evaluation probe.")
    seeds: int = Field(5, ge=2, le=100, description="Train/test splits (and random-k draws) per k.")
    test_size: float = Field(0.3, gt=0.0, lt=1.0)


class InterventionSpec(Frozen):
    """Used information (C.3): interventions on the top-k units against random-k."""

    modes: tuple[Literal["zero", "mean", "translate"], ...] = Field(("zero", "mean", "translate"), min_length=1)
    beta: float = Field(8.0, gt=0.0, le=1000.0, description="Translation strength toward another class's mean.")
    n_random: int = Field(20, ge=1, le=200, description="Random k-sets drawn once per k (shared by every ranking, "
                                                        "none of any ranking's top-k); the p over sets has the floor "
                                                        "1 / (n_random + 1).")
    max_examples: int = Field(200, ge=2, description="Examples scored (a seeded stratified subsample beyond it).")
    positions: tuple[Literal["all", "attribute"], ...] = Field(
        ("all",), min_length=1, description="Where the units are edited, each reported on its own rows: 'all' (every "
                                            "position) and/or 'attribute' (only the tokens of each example's target "
                                            "word; token-level data only).")

    @field_validator("positions")
    @classmethod
    def _positions(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("positions must not repeat")
        return v


class RankingReport(Frozen):
    method: str
    order: tuple[int, ...] = Field(..., description="Every unit, best first.")
    scores: tuple[float, ...] = Field(..., description="Per unit, in unit order; higher = better.")
    params: dict = Field(default_factory=dict)
    relevance: tuple[float, ...] | None = Field(None, description="Per unit, what bottom-k is taken from when it is "
                                                                  "not ``scores`` (gaussian: each unit alone).")


class BottomRow(Frozen):
    """The bottom-k units of one ranking (see ``BOTTOM_K``)."""

    ranking: str
    k: int
    by: str = Field(..., description="The relevance the units are the lowest by.")
    units: tuple[int, ...]
    boundary: float | None = Field(..., description="Relevance of the k-th least relevant unit.")
    tied: int = Field(..., description="Units whose relevance equals the boundary (1: no tie).")
    tied_in_bottom: int = Field(..., description="How many of those the random tie-break put in the bottom-k.")


class StabilityRow(Frozen):
    """Top-k overlap of a ranking with itself recomputed: ``seed`` (another seed, same examples; a method
    without randomness gives 1) or ``halves`` (two disjoint stratified halves of the ranking examples)."""

    ranking: str
    k: int
    kind: Literal["seed", "halves"]
    overlap: float
    chance: float = Field(..., description="k / units.")


class ProbeRow(Frozen):
    ranking: str
    selection: str = Field(..., description="top, bottom, random, top_same_probe or majority.")
    probe: str
    k: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    n_seeds: int


class SameProbeRow(Frozen):
    ranking: str
    k: int
    independent: float | None
    same_probe: float | None
    gap: float | None = Field(..., description="same-probe minus independent accuracy.")


class EffectRow(Frozen):
    ranking: str
    mode: str
    positions: Literal["all", "attribute"] = Field(
        "all", description="Where the units were edited: every position, or only the tokens of each example's "
                           "target word (the attribute-bearing word).")
    k: int
    measure: str
    n_examples: int
    mean_ranked: float | None
    ci_ranked: tuple[float | None, float | None]
    mean_random: float | None
    ci_random: tuple[float | None, float | None]
    mean_difference: float | None
    ci_difference: tuple[float | None, float | None]
    random_draws: tuple[float | None, ...] = Field(
        (), description="Mean effect of each random k-set. The intervals are over examples; these show the "
                        "spread over unit sets, which the intervals do not hold.")
    p_random: float | None = Field(
        None, description="Empirical two-sided p over unit sets: (1 + random sets whose mean effect is at least as far "
                          "from the random sets' mean as the ranked one) / (1 + sets). Its floor is 1 / (1 + sets).")
    p_floor: float | None = Field(None, description="1 / (1 + random sets): the smallest p_random can be.")


class AgreementRow(Frozen):
    a: str
    b: str
    k: int
    overlap: float = Field(..., description="|top-k(a) & top-k(b)| / k.")
    jaccard: float
    chance: float = Field(..., description="k / units: the expected overlap of two random top-k sets.")


# --------------------------------------------------------------------------- the job and its result


class RankJob(JobBase):
    """Rank the units of a layer for an attribute and judge the rankings (docs/methods.md#c)."""

    kind: Literal["rank"] = "rank"
    dataset: AttributeDataSpec | DatasetRef = Field(
        ..., description="Labelled examples (sentence or token level), inline or as {\"sha256\": ...} of a dataset "
                         "uploaded to POST /v1/datasets (the workers read it; a handler always sees the "
                         "AttributeDataSpec).")
    model: SubjectModelSpec = Field(default_factory=lambda: SubjectModelSpec(pooling=Pooling.mean))
    layer: int | None = Field(None, ge=0, description="The layer whose units are ranked (default: the last).")
    methods: tuple[Literal["linear", "gaussian", "probeless", "ap", "random"], ...] = Field(
        ("linear", "gaussian", "probeless", "ap", "random"), min_length=1)
    ks: tuple[int, ...] = Field((10, 50), min_length=1, description="Top-k sizes evaluated.")
    rank_fraction: float | None = Field(
        0.5, gt=0.0, lt=1.0, description="Share of the examples (seeded, stratified) the rankings are computed on; "
                                         "probing and interventions use the others, so no ranking has seen the "
                                         "examples it is judged on (None: all examples for everything).")
    ranking: RankingSpec = Field(default_factory=RankingSpec)
    probing: ProbingSpec = Field(default_factory=ProbingSpec)
    interventions: InterventionSpec | None = Field(default_factory=InterventionSpec,
                                                   description="Used information (None: skip).")

    @field_validator("ks")
    @classmethod
    def _ks(cls, v):
        if min(v) < 1:
            raise ValueError("every k must be >= 1")
        return tuple(sorted(set(v)))

    @field_validator("methods")
    @classmethod
    def _methods(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("methods must not repeat")
        return v

    @field_validator("dataset", mode="wrap")
    @classmethod
    def _dataset(cls, v, handler):
        return inline_or_ref(AttributeDataSpec, v, handler)

    @model_validator(mode="after")
    def _check(self) -> "RankJob":
        spec = self.interventions
        if isinstance(self.dataset, DatasetRef):  # checked once the workers (and the API's door) resolve it
            return self
        if spec is not None and "attribute" in spec.positions and self.dataset.word_index is None:
            raise ValueError("interventions.positions: 'attribute' edits only the tokens of each example's target "
                             "word, and sentence-level data has no attribute-bearing word (no word_index: give the "
                             "target words for a token-level attribute, or edit 'all' positions)")
        return self


class RankResult(Frozen):
    """Rankings of one layer's units for an attribute, judged by probing and by interventions."""

    kind: Literal["rank"] = "rank"
    schema_version: Literal[1] = SCHEMA_VERSION
    dataset: str
    level: Literal["sentence", "token"]
    n_examples: int
    classes: dict[str, int] = Field(..., description="label -> examples.")
    n_ranking_examples: int = Field(0, description="Examples the rankings were computed on.")
    n_evaluation_examples: int = Field(0, description="Examples probing and interventions used (disjoint from "
                                                      "the ranking examples unless a warning says otherwise).")
    layer: int
    units: int
    ks: tuple[int, ...]
    rankings: tuple[RankingReport, ...]
    bottom: tuple[BottomRow, ...] = ()
    stability: tuple[StabilityRow, ...] = ()
    probing: tuple[ProbeRow, ...]
    same_probe: tuple[SameProbeRow, ...] = ()
    interventions: tuple[EffectRow, ...] = ()
    intervention_measure: str | None = Field(None, description="What the effects measure (None: not run).")
    agreement: tuple[AgreementRow, ...] = ()
    label_names: dict[str, str] | None = None
    provenance: Provenance
    warnings: tuple[str, ...] = ()
