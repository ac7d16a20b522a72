"""neuroscribe: what do the neurons of a language model respond to?

The public surface is the job contract (``neuroscribe.jobs``) and the embedded runner.
Nothing heavy is imported here: ``import neuroscribe`` does not import torch.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from neuroscribe.errors import GenerationError, InvalidInput, ModelNotFound, NeuroscribeError, SiteNotFound
from neuroscribe.jobs import (
    SCHEMA_VERSION,
    ConceptSpec,
    ExpertsJob,
    ExpertsResult,
    GeneratorSpec,
    JobStatus,
    SamplingSpec,
    SubjectModelSpec,
)

try:
    __version__ = _version("neuroscribe")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "SCHEMA_VERSION",
    "ConceptSpec",
    "ExpertsJob",
    "ExpertsResult",
    "GeneratorSpec",
    "JobStatus",
    "SamplingSpec",
    "SubjectModelSpec",
    "NeuroscribeError",
    "InvalidInput",
    "ModelNotFound",
    "SiteNotFound",
    "GenerationError",
]
