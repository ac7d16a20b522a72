"""The experts job (docs/methods.md, part A): concepts, their sentences (generated or given), tau;
and its result: per concept the experts, counts per layer, top units, and the suite's reports.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import Field, field_validator, model_validator

from neuroscribe.jobs.common import SCHEMA_VERSION, Frozen, GeneratorSpec, JobBase, Provenance, SubjectModelSpec
from neuroscribe.jobs.experts_suite import (
    AlignmentReport,
    AlignmentSpec,
    CausalReport,
    CausalSpec,
    StabilityReport,
    StabilitySpec,
    SweepReport,
    SweepTarget,
)

__all__ = ["ConceptSpec", "SentenceRecord", "ExpertsJob", "ExpertUnit", "ConceptExperts", "ExpertsResult"]


class ConceptSpec(Frozen):
    """A concept, optionally with a category (``cat:animal`` on the command line)."""

    # the pattern says in the schema what the validator does: some character that is not whitespace
    name: str = Field(..., min_length=1, pattern=r"[^\s\x1c-\x1f]", description="The concept word or phrase.")
    category: str | None = Field(None, description="Optional group used by overlap analyses.")

    @field_validator("name", mode="before")  # before the pattern, so the error says what is wrong
    @classmethod
    def _non_empty(cls, v):
        if not isinstance(v, str):
            return v
        v = " ".join(v.split())
        if not v:
            raise ValueError("concept must not be empty")
        return v

    @classmethod
    def from_string(cls, s: str) -> "ConceptSpec":
        name, _, cat = s.partition(":")
        return cls(name=name, category=cat.strip() or None)


class SentenceRecord(Frozen):
    """One sentence used for a concept: positive (label 1) or negative (label 0)."""

    text: str = Field(..., min_length=1)
    concept: str = Field(..., min_length=1)
    label: Literal[0, 1]
    style: Literal["fact", "story", "user"] = "user"
    prompt_version: str | None = None
    generator: dict | None = Field(None, description="Backend, model and revision that wrote it.")
    sampling: dict | None = Field(None, description="Sampling settings of the request that wrote it.")


class ExpertsJob(JobBase):
    """Find expert neurons: units whose response separates a concept's sentences (AP >= tau)."""

    kind: Literal["experts"] = "experts"
    concepts: tuple[ConceptSpec, ...] = Field(..., min_length=1, description="Concepts to analyse.")
    model: SubjectModelSpec = Field(default_factory=SubjectModelSpec)
    generator: GeneratorSpec = Field(default_factory=GeneratorSpec)
    n_pos: int = Field(20, ge=1, le=100_000, description="Positive sentences per concept (generated).")
    n_neg: int = Field(20, ge=1, le=100_000, description="Negative sentences per concept (generated).")
    tau: float = Field(0.9, gt=0.0, le=1.0, description="AP threshold for an expert, in (0, 1].")
    top_n: int = Field(10, ge=1, le=10_000, description="Top units by AP reported per concept.")
    min_words: int = Field(4, ge=1, description="Shortest generated sentence kept (words).")
    max_words: int = Field(40, ge=1, description="Longest generated sentence kept (words).")
    per_request: int = Field(15, ge=1, le=200, description="Sentences asked for in one LLM request.")
    max_rounds: int = Field(4, ge=1, le=50, description="Generation rounds to reach n_pos / n_neg.")
    sentences: tuple[SentenceRecord, ...] | None = Field(
        None, description="User sentences instead of generated ones (every concept needs both labels)."
    )
    stability: StabilitySpec | None = Field(
        default_factory=StabilitySpec, description="Stability of the expert sets (None: skip)."
    )
    alignment: AlignmentSpec | None = Field(None, description="Human alignment on word-pair ratings (None: skip).")
    sweep: tuple[SweepTarget, ...] = Field(
        (), description="More models / revisions whose expert counts per layer are compared with the main model's."
    )
    causal: CausalSpec | None = Field(None, description="Causal check of the experts (decoder models; None: skip).")

    @field_validator("concepts")
    @classmethod
    def _unique(cls, v):
        names = [c.name for c in v]
        if len(set(names)) != len(names):
            dup = sorted(n for n, k in Counter(names).items() if k > 1)
            raise ValueError(f"concepts must be unique (repeated: {', '.join(dup)})")
        return v

    @model_validator(mode="after")
    def _check(self) -> "ExpertsJob":
        names = [c.name for c in self.concepts]
        if self.min_words > self.max_words:
            raise ValueError("min_words must be <= max_words")
        st = self.stability
        if st is not None and self.sentences is None:
            for field, sizes, have in (("n_pos", st.n_pos, self.n_pos), ("n_neg", st.n_neg, self.n_neg)):
                if sizes is not None and max(sizes) > have:
                    raise ValueError(f"stability.{field}: subsample size {max(sizes)} exceeds the {have} sentences "
                                     f"asked for per concept ({field} = {have})")
            if st.folds > min(self.n_pos, self.n_neg):
                raise ValueError(f"stability.folds: {st.folds} folds need at least {st.folds} positives and "
                                 f"negatives per concept (n_pos = {self.n_pos}, n_neg = {self.n_neg})")
        main = SweepTarget(name=self.model.name, revision=self.model.revision)
        targets = [main, *self.sweep]
        if len(set(targets)) != len(targets):
            raise ValueError("sweep: every (model, revision) must appear once, the main model included")
        if self.sentences is not None:  # one pass over the sentences (not concepts x sentences)
            labels_of: dict[str, set[int]] = {}
            for s in self.sentences:
                labels_of.setdefault(s.concept, set()).add(s.label)
            for c in names:
                labels = labels_of.get(c, set())
                if labels != {0, 1}:
                    missing = "positives" if 1 not in labels else "negatives"
                    raise ValueError(f"sentences for concept {c!r} have no {missing}")
        return self


# --------------------------------------------------------------------------- results


class ExpertUnit(Frozen):
    layer: int
    unit: int
    ap: float


class ConceptExperts(Frozen):
    concept: str
    category: str | None = None
    n_pos: int
    n_neg: int
    experts: tuple[ExpertUnit, ...] = Field(..., description="Units with AP >= tau, best first.")
    counts_per_layer: dict[int, int] = Field(..., description="Number of experts per layer (every layer listed).")
    top: tuple[ExpertUnit, ...] = Field(..., description="Top-N units by AP, experts or not.")


class ExpertsResult(Frozen):
    kind: Literal["experts"] = "experts"
    schema_version: Literal[1] = SCHEMA_VERSION
    tau: float
    layers: tuple[int, ...]
    units_per_layer: int
    concepts: tuple[ConceptExperts, ...]
    drops: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Per concept, generated sentences dropped and why."
    )
    provenance: Provenance
    stability: StabilityReport | None = None
    alignment: AlignmentReport | None = None
    sweep: SweepReport | None = None
    causal: CausalReport | None = None
    warnings: tuple[str, ...] = Field((), description="Things the user should know (e.g. identical weights).")
