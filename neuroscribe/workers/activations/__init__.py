"""Subject models, hook sites, pooling, capture and on-disk responses (pure compute, no service).

``load_subject_model`` -> ``SubjectModel``; ``capture_responses`` -> ``Responses`` (float16,
sentences x units per layer, rows in input order); ``save_responses`` / ``load_responses`` for
the on-disk format documented in ``neuroscribe.workers.activations.store``.
"""

from neuroscribe.workers.activations.cache import cached_capture, responses_key
from neuroscribe.workers.activations.capture import capture_responses
from neuroscribe.workers.models.hashing import dataset_sha256
from neuroscribe.workers.activations.loading import SubjectModel, load_subject_model, random_init_subject
from neuroscribe.workers.activations.pooling import POOLINGS
from neuroscribe.workers.activations.sites import Site, get_site, list_sites
from neuroscribe.workers.activations.store import Responses, ResponsesMeta, load_responses, save_responses

__all__ = [
    "SubjectModel",
    "load_subject_model",
    "random_init_subject",
    "capture_responses",
    "cached_capture",
    "responses_key",
    "Responses",
    "ResponsesMeta",
    "save_responses",
    "load_responses",
    "dataset_sha256",
    "list_sites",
    "get_site",
    "Site",
    "POOLINGS",
]
