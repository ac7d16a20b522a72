"""The contract: one pydantic model per job kind and per result, plus ``JobStatus``.

Everything that crosses a process boundary (CLI -> runner, HTTP -> queue -> workers) is one of
these models serialised as JSON. ``SCHEMA_VERSION`` is bumped on any incompatible change; a
payload with another version is rejected with a clear error rather than misread.

Each field's description is what ``--help`` and the OpenAPI schema show.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from neuroscribe.jobs.describe import (
    DatasetSpec,
    DescriptorReport,
    EvaluationReport,
    ConsistencyReport,
    UnitReport,
    VocabularyReport,
    VocabularySpec,
)
from neuroscribe.jobs.rank import (
    AgreementRow,
    AttributeDataSpec,
    EffectRow,
    InterventionSpec,
    ProbeRow,
    ProbingSpec,
    RankingReport,
    SameProbeRow,
)
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

__all__ = [
    "SCHEMA_VERSION",
    "JobStatus",
    "Pooling",
    "SamplingSpec",
    "GeneratorSpec",
    "SubjectModelSpec",
    "ConceptSpec",
    "SentenceRecord",
    "ExpertsJob",
    "DescribeJob",
    "RankJob",
    "AnyJob",
    "Provenance",
    "ExpertUnit",
    "ConceptExperts",
    "ExpertsResult",
    "DescribeResult",
    "RankResult",
    "AnyResult",
    "parse_job",
    "parse_result",
]

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobStatus(str, Enum):
    """Life cycle of a job. ``succeeded``, ``failed`` and ``cancelled`` are final."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class Pooling(str, Enum):
    """How a unit's per-token values become one response per sentence."""

    max = "max"
    mean = "mean"
    last = "last"
    cls = "cls"


# --------------------------------------------------------------------------- generation


class SamplingSpec(_Frozen):
    """Sampling settings of one LLM request; recorded with every output."""

    # Defaults suit the packaged SmolLM2-135M-Instruct (its card recommends ~0.2 / 0.9): at 0.8 it
    # mostly abandons the numbered-list format. Diversity comes from per-request seeds and topics.
    temperature: float = Field(0.4, ge=0.0, le=5.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(320, ge=1, le=8192, description="Most tokens generated per request.")
    repetition_penalty: float = Field(1.15, ge=1.0, le=3.0, description="Penalty on repeated tokens (1 = none).")
    seed: int = Field(0, ge=0, description="Random seed of the request.")


GeneratorBackend = Literal["transformers", "vllm", "openai", "fake"]


class GeneratorSpec(_Frozen):
    """Which LLM writes sentences, and how.

    String form (``--generator``): ``BACKEND[:MODEL][@BASE_URL]``, e.g. ``transformers:smollm2``
    (the packaged default), ``vllm:meta-llama/Llama-3.1-8B-Instruct``,
    ``openai:my-model@http://127.0.0.1:8000/v1``, ``fake``.
    """

    backend: GeneratorBackend = Field("transformers", description="LLM backend.")
    model: str = Field("smollm2", min_length=1, description="Model id, local path or packaged alias (smollm2).")
    base_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server (openai backend).")
    batch_size: int = Field(16, ge=1, le=4096, description="Requests generated together.")
    sampling: SamplingSpec = Field(default_factory=SamplingSpec, description="Default sampling settings.")
    trust_remote_code: bool = Field(False, description="Allow model repositories to run their own code.")

    @model_validator(mode="after")
    def _url_for_openai(self) -> "GeneratorSpec":
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (string form: openai:MODEL@http://host:port/v1)")
        return self

    @classmethod
    def from_string(cls, spec: str, **overrides) -> "GeneratorSpec":
        """Parse ``BACKEND[:MODEL][@BASE_URL]``."""
        spec = spec.strip()
        m = re.fullmatch(r"(?P<backend>[a-z]+)(?::(?P<model>[^@]+))?(?:@(?P<url>\S+))?", spec)
        if not m:
            raise ValueError(f"generator spec {spec!r} is not BACKEND[:MODEL][@BASE_URL]")
        data = {"backend": m["backend"]}
        if m["model"]:
            data["model"] = m["model"]
        elif m["backend"] == "fake":
            data["model"] = "fake"
        if m["url"]:
            data["base_url"] = m["url"]
        data.update(overrides)
        return cls(**data)


# --------------------------------------------------------------------------- subject model


class SubjectModelSpec(_Frozen):
    """The model whose neurons are analysed, and how responses are read from it."""

    name: str = Field("minilm", min_length=1, description="Hugging Face id, local path, or packaged alias (minilm).")
    revision: str | None = Field(None, description="Branch, tag or commit, e.g. Pythia's 'step1000'.")
    site: str = Field("mlp_post", min_length=1, description="Hook site: mlp_post (MLP post-activation) or residual.")
    pooling: Pooling = Field(Pooling.max, description="Pooling over a sentence's real tokens.")
    layers: tuple[int, ...] | None = Field(None, min_length=1, description="Layers to read (default: all).")
    batch_size: int = Field(32, ge=1, le=4096, description="Sentences per forward pass.")
    max_length: int = Field(128, ge=2, le=8192, description="Tokens kept per sentence.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1'...")
    trust_remote_code: bool = Field(False, description="Allow model repositories to run their own code.")

    @field_validator("layers")
    @classmethod
    def _layers_unique(cls, v):
        if v is None:
            return v
        if len(set(v)) != len(v):
            raise ValueError("layers must not repeat")
        return tuple(sorted(v))


# --------------------------------------------------------------------------- sentences


class ConceptSpec(_Frozen):
    """A concept, optionally with a category (``cat:animal`` on the command line)."""

    name: str = Field(..., description="The concept word or phrase.")
    category: str | None = Field(None, description="Optional group used by overlap analyses.")

    @field_validator("name")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("concept must not be empty")
        return v

    @classmethod
    def from_string(cls, s: str) -> "ConceptSpec":
        name, _, cat = s.partition(":")
        return cls(name=name, category=cat.strip() or None)


class SentenceRecord(_Frozen):
    """One sentence used for a concept: positive (label 1) or negative (label 0)."""

    text: str = Field(..., min_length=1)
    concept: str = Field(..., min_length=1)
    label: Literal[0, 1]
    style: Literal["fact", "story", "user"] = "user"
    prompt_version: str | None = None
    generator: dict | None = Field(None, description="Backend, model and revision that wrote it.")
    sampling: dict | None = Field(None, description="Sampling settings of the request that wrote it.")


# --------------------------------------------------------------------------- jobs


class _JobBase(_Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    seed: int = Field(0, ge=0, description="Seed for every random choice of the job.")


class ExpertsJob(_JobBase):
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
            dup = sorted({n for n in names if names.count(n) > 1})
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
        if self.sentences is not None:
            for c in names:
                labels = {s.label for s in self.sentences if s.concept == c}
                if labels != {0, 1}:
                    missing = "positives" if 1 not in labels else "negatives"
                    raise ValueError(f"sentences for concept {c!r} have no {missing}")
        return self


class DescribeJob(_JobBase):
    """Describe neurons with LLM-written descriptors of a dataset's sentences (METHODS.md part B)."""

    kind: Literal["describe"] = "describe"
    dataset: DatasetSpec = Field(..., description="The sentences (and optional labels) to describe.")
    model: SubjectModelSpec = Field(default_factory=lambda: SubjectModelSpec(pooling=Pooling.cls))
    generator: GeneratorSpec = Field(default_factory=GeneratorSpec)
    sampling: SamplingSpec = Field(
        default_factory=lambda: SamplingSpec(temperature=0.2, top_p=0.9, max_new_tokens=48, repetition_penalty=1.15),
        description="Sampling of the descriptor requests (the seed of each is derived from the job seed).")
    vocabulary: VocabularySpec = Field(default_factory=VocabularySpec)
    top_k_percent: float = Field(1.0, gt=0.0, le=100.0, description="Exemplars per unit: top k% sentences.")
    threshold: float = Field(50.0, gt=0.0, le=100.0, description="Assign a descriptor when f >= threshold (%).")
    fdr: float | None = Field(None, gt=0.0, lt=1.0, description="Optional Benjamini-Hochberg FDR.")
    fdr_family: Literal["tested", "all"] = Field("tested", description="BH family: pairs with x >= 1, or all.")
    consistency: bool = Field(True, description="Split-half consistency (B.5).")
    ks: tuple[int, ...] = Field((1, 2, 3), min_length=1, description="K of precision@K / recall@K.")

    @field_validator("ks")
    @classmethod
    def _ks(cls, v):
        if min(v) < 1:
            raise ValueError("every K must be >= 1")
        return tuple(sorted(set(v)))


class RankJob(_JobBase):
    """Rank the units of a layer for an attribute and judge the rankings (METHODS.md part C)."""

    kind: Literal["rank"] = "rank"
    dataset: AttributeDataSpec = Field(..., description="Labelled examples (sentence or token level).")
    model: SubjectModelSpec = Field(default_factory=lambda: SubjectModelSpec(pooling=Pooling.mean))
    layer: int | None = Field(None, ge=0, description="The layer whose units are ranked (default: the last).")
    methods: tuple[Literal["linear", "gaussian", "probeless", "ap", "random"], ...] = Field(
        ("linear", "gaussian", "probeless", "ap", "random"), min_length=1)
    ks: tuple[int, ...] = Field((10, 50), min_length=1, description="Top-k sizes evaluated.")
    rank_fraction: float | None = Field(
        0.5, gt=0.0, lt=1.0, description="Share of the examples (seeded, stratified) the rankings are computed on; "
                                         "probing and interventions use the others, so no ranking has seen the "
                                         "examples it is judged on (None: all examples for everything).")
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


AnyJob = Annotated[Union[ExpertsJob, DescribeJob, RankJob], Field(discriminator="kind")]


# --------------------------------------------------------------------------- results


class Provenance(_Frozen):
    """Where a result came from: enough to reproduce it."""

    neuroscribe_version: str
    schema_version: Literal[1] = SCHEMA_VERSION
    model: str
    revision: str | None = Field(None, description="The resolved revision (commit) of the weights, when known.")
    requested_revision: str | None = Field(None, description="The revision as asked for (e.g. 'step1000').")
    weight_sha256: str
    site: str
    pooling: Pooling
    data_sha256: str = Field(..., description="sha256 of the sentences (text + concept + label, in order).")
    texts_sha256: str | None = Field(
        None, description="sha256 of the distinct sentence texts in response-row order (responses/meta.json data_sha256)."
    )
    environment: dict = Field(default_factory=dict, description="Device, dtype and library versions of the run.")
    generator: dict | None = Field(None, description="None when the user brought the sentences.")
    prompt_version: str | None = None
    seed: int = 0
    created_at: str = Field(..., description="UTC ISO-8601 time the result was made.")


class ExpertUnit(_Frozen):
    layer: int
    unit: int
    ap: float


class ConceptExperts(_Frozen):
    concept: str
    category: str | None = None
    n_pos: int
    n_neg: int
    experts: tuple[ExpertUnit, ...] = Field(..., description="Units with AP >= tau, best first.")
    counts_per_layer: dict[int, int] = Field(..., description="Number of experts per layer (every layer listed).")
    top: tuple[ExpertUnit, ...] = Field(..., description="Top-N units by AP, experts or not.")


class ExpertsResult(_Frozen):
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


class DescribeResult(_Frozen):
    """Descriptions of every unit of the chosen layers (METHODS.md part B)."""

    kind: Literal["describe"] = "describe"
    schema_version: Literal[1] = SCHEMA_VERSION
    dataset: str
    n_sentences: int
    layers: tuple[int, ...]
    units_per_layer: int
    top_k_percent: float
    n_exemplars: int = Field(..., description="Exemplars per unit, k = ceil(n * top_k_percent / 100).")
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
    provenance: Provenance
    warnings: tuple[str, ...] = ()


class RankResult(_Frozen):
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
    probing: tuple[ProbeRow, ...]
    same_probe: tuple[SameProbeRow, ...] = ()
    interventions: tuple[EffectRow, ...] = ()
    intervention_measure: str | None = Field(None, description="What the effects measure (None: not run).")
    agreement: tuple[AgreementRow, ...] = ()
    provenance: Provenance
    warnings: tuple[str, ...] = ()


AnyResult = Annotated[Union[ExpertsResult, DescribeResult, RankResult], Field(discriminator="kind")]

_JOB = TypeAdapter(AnyJob)
_RESULT = TypeAdapter(AnyResult)


def parse_job(data: str | bytes | dict):
    """Validate a job from JSON text or a dict; raises ``pydantic.ValidationError``."""
    if isinstance(data, (str, bytes)):
        return _JOB.validate_json(data)
    return _JOB.validate_python(data)


def parse_result(data: str | bytes | dict):
    """Validate a result from JSON text or a dict; raises ``pydantic.ValidationError``."""
    if isinstance(data, (str, bytes)):
        return _RESULT.validate_json(data)
    return _RESULT.validate_python(data)
