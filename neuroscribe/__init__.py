"""neuroscribe: what do the neurons of a language model respond to?

The public surface: every job and result (``neuroscribe.jobs``), the errors, ``Settings``, the
HTTP ``Client`` of a running service, and ``run(job, out=...)``, which runs any job in this
process (the embedded mode: no server) and returns its result::

    import neuroscribe as ns
    job = ns.ExpertsJob(concepts=[ns.ConceptSpec(name="cat")], generator=ns.GeneratorSpec(backend="fake"))
    result = ns.run(job, out="runs/cat")

Nothing heavy is imported here: ``import neuroscribe`` does not import torch (nor httpx: ``Client``
is loaded when first used).
"""

from importlib.metadata import PackageNotFoundError, version as _version

from neuroscribe.errors import GenerationError, InvalidInput, ModelNotFound, NeuroscribeError, SiteNotFound
from neuroscribe.jobs import (
    SCHEMA_VERSION,
    ConceptExperts,
    ConceptSpec,
    DescribeJob,
    DescribeResult,
    ExpertsJob,
    ExpertsResult,
    ExpertUnit,
    GeneratorSpec,
    JobStatus,
    Pooling,
    Provenance,
    RankJob,
    RankResult,
    SamplingSpec,
    SentenceRecord,
    SubjectModelSpec,
    parse_job,
    parse_result,
)
from neuroscribe.jobs.describe import DatasetSpec, VocabularySpec
from neuroscribe.jobs.experts_suite import AlignmentSpec, CausalSpec, StabilitySpec, SweepTarget
from neuroscribe.jobs.rank import AttributeDataSpec, InterventionSpec, ProbingSpec
from neuroscribe.settings import Settings

try:
    __version__ = _version("neuroscribe")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "SCHEMA_VERSION",
    # jobs and their parts
    "ExpertsJob",
    "DescribeJob",
    "RankJob",
    "ConceptSpec",
    "SentenceRecord",
    "SubjectModelSpec",
    "GeneratorSpec",
    "SamplingSpec",
    "Pooling",
    "StabilitySpec",
    "AlignmentSpec",
    "SweepTarget",
    "CausalSpec",
    "DatasetSpec",
    "VocabularySpec",
    "AttributeDataSpec",
    "ProbingSpec",
    "InterventionSpec",
    "parse_job",
    # results
    "ExpertsResult",
    "DescribeResult",
    "RankResult",
    "ConceptExperts",
    "ExpertUnit",
    "Provenance",
    "JobStatus",
    "parse_result",
    # errors
    "NeuroscribeError",
    "InvalidInput",
    "ModelNotFound",
    "SiteNotFound",
    "GenerationError",
    # running
    "Settings",
    "Client",
    "run",
]


def run(job, out, *, force: bool = False, progress: bool = True, settings: Settings | None = None, log=print):
    """Run ``job`` (any registered kind) in this process and write its result folder ``out``;
    returns the result. ``settings`` defaults to ``Settings.from_env()`` (cache, device, LLM key)."""
    from neuroscribe.service import registry
    from neuroscribe.service.kinds import load_object

    if isinstance(job, dict):
        job = registry.parse_job(job)
    runner = load_object(registry.get(job.kind).run)
    return runner(job, out, force=force, progress=progress, settings=settings, log=log)


def __getattr__(name: str):
    if name == "Client":
        from neuroscribe.service.client import Client

        return Client
    raise AttributeError(f"module 'neuroscribe' has no attribute {name!r}")
