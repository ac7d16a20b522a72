"""What every job kind shares: the schema version, the life cycle, the subject model, the
generator and its sampling, the job base (seed) and the provenance every result carries.

Frozen pydantic models: everything that crosses a process boundary is one of them as JSON.
Each field's description is what ``--help`` and the OpenAPI schema show.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["SCHEMA_VERSION", "Frozen", "JobStatus", "Pooling", "SamplingSpec", "GeneratorBackend", "GeneratorSpec",
           "SubjectModelSpec", "JobBase", "Provenance", "DatasetRef", "inline_or_ref", "nonblank_rows", "row_errors"]

SCHEMA_VERSION = 1


class Frozen(BaseModel):
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


class SamplingSpec(Frozen):
    """Sampling settings of one LLM request; recorded with every output."""

    # Defaults suit the packaged SmolLM2-135M-Instruct (its card recommends ~0.2 / 0.9): at 0.8 it
    # mostly abandons the numbered-list format. Diversity comes from per-request seeds and topics.
    temperature: float = Field(0.4, ge=0.0, le=5.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(320, ge=1, le=8192, description="Most tokens generated per request.")
    repetition_penalty: float = Field(1.15, ge=1.0, le=3.0, description="Penalty on repeated tokens (1 = none).")
    seed: int = Field(0, ge=0, description="Random seed of the request.")


GeneratorBackend = Literal["llamacpp", "transformers", "vllm", "openai", "fake"]


class GeneratorSpec(Frozen):
    """Which LLM writes sentences, and how.

    String form (``--generator``): ``BACKEND[:MODEL][@BASE_URL]``, e.g. ``llamacpp:smollm2`` or
    ``transformers:smollm2`` (the packaged GGUF: llama.cpp is the default, see bench/bench_generate.py),
    ``vllm:meta-llama/Llama-3.1-8B-Instruct``,
    ``openai:my-model@http://127.0.0.1:8000/v1``, ``fake``.
    """

    backend: GeneratorBackend = Field("llamacpp", description="LLM backend.")
    model: str = Field("smollm2", min_length=1, description="Model id, local path or packaged alias (smollm2).")
    base_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server (openai backend).")
    batch_size: int = Field(16, ge=1, le=4096, description="Requests generated together.")
    threads: int | None = Field(None, ge=1, le=1024, description="CPU threads of the llamacpp backend (default: every "
                                                                 "core).")
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


class SubjectModelSpec(Frozen):
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


# --------------------------------------------------------------------------- datasets


_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_ROW_ERRORS = 20  # rows named in one error (a dataset of 100,000 blank rows is not 100,000 errors)


class DatasetRef(Frozen):
    """A dataset uploaded once (``POST /v1/datasets``), named by the sha256 of its canonical JSON;
    the workers read it from the server's dataset store (``service.dataset_store``)."""

    sha256: str = Field(..., description="sha256 of an uploaded dataset: 64 hex digits ('sha256:' prefix accepted).")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        digest = v.strip().removeprefix("sha256:").lower()
        if not _SHA256.fullmatch(digest):
            shown = v if len(v) <= 80 else v[:80] + "..."
            raise ValueError(f"{shown!r} is not a sha256 (64 hex digits)")
        return digest


def inline_or_ref(spec: type[BaseModel], value, handler):
    """A job's ``dataset`` field (a wrap validator's body): an object with ``sha256`` is a
    ``DatasetRef``, any other object the inline ``spec``; each is validated alone, so an error names
    the field of that form (``dataset.texts.3``), not a union's guesses at both."""
    if isinstance(value, dict):
        return DatasetRef.model_validate(value) if "sha256" in value else spec.model_validate(value)
    if isinstance(value, (spec, DatasetRef)):
        return handler(value)
    raise ValueError(f"{type(value).__name__} is not a dataset: give an object, the dataset itself or "
                     "{\"sha256\": \"<64 hex digits>\"} of an uploaded one")


def row_errors(title: str, rows: list[tuple[tuple, object, str, str]]) -> ValidationError:
    """One ``ValidationError`` naming each bad row: ``(loc, input, type, message)``, ``loc`` relative
    to the validated field (e.g. ``(17,)`` under ``texts``), at most ``MAX_ROW_ERRORS`` of them."""
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError(kind, msg), loc=loc, input=value)
        for loc, value, kind, msg in rows[:MAX_ROW_ERRORS]])


def nonblank_rows(texts: tuple[str, ...]) -> tuple[str, ...]:
    """``texts`` when no sentence is blank; else a ``ValidationError`` at each blank row (``texts.17``)."""
    bad = [((i,), t, "blank_sentence", f"sentence {i} is empty") for i, t in enumerate(texts) if not t.strip()]
    if bad:
        raise row_errors("texts", bad)
    return texts


# --------------------------------------------------------------------------- jobs and results


def _kind_required(schema: dict, cls: type) -> None:
    """``kind`` has a default in Python (``ExpertsJob(...)``) but a submitted job must say it (the
    API tells the kinds apart by it): the JSON schema says so."""
    if "kind" in schema.get("properties", {}) and "kind" not in schema.get("required", []):
        schema["required"] = ["kind", *schema.get("required", [])]


class JobBase(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_kind_required)

    schema_version: Literal[1] = SCHEMA_VERSION
    seed: int = Field(0, ge=0, description="Seed for every random choice of the job.")


class Provenance(Frozen):
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
