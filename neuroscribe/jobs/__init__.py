"""The contract: one pydantic model per job kind and per result, plus ``JobStatus``.

Everything that crosses a process boundary (CLI -> runner, HTTP -> queue -> workers) is one of
these models serialised as JSON. ``SCHEMA_VERSION`` is bumped on any incompatible change; a
payload with another version is rejected with a clear error rather than misread.

One module per method (``experts``, ``describe``, ``rank``) beside what they share (``common``);
this package exports every job and result. ``AnyJob`` / ``parse_job`` cover the built-in kinds;
the service reads its kinds from ``neuroscribe.service.registry``.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, TypeAdapter

from neuroscribe.jobs.common import (
    SCHEMA_VERSION,
    GeneratorSpec,
    JobStatus,
    Pooling,
    Provenance,
    SamplingSpec,
    SubjectModelSpec,
)
from neuroscribe.jobs.describe import DescribeJob, DescribeResult
from neuroscribe.jobs.experts import ConceptExperts, ConceptSpec, ExpertsJob, ExpertsResult, ExpertUnit, SentenceRecord
from neuroscribe.jobs.rank import RankJob, RankResult

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

AnyJob = Annotated[Union[ExpertsJob, DescribeJob, RankJob], Field(discriminator="kind")]
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
