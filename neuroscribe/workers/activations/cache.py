"""Responses cached on disk, so a re-run (or a sweep that adds one revision) runs no forward pass
for what it has already seen.

Key: sha256 of (model id, resolved revision, weight sha256, model type, site, pooling, layers,
max length, the model's dtype, the sentences' ``dataset_sha256``, the store's format version).
The batch size is not part of the key: it changes values only by float rounding. A cache entry
is a responses folder (``store.py``) under ``<cache_dir>/<key[:2]>/<key>/``; ``save_responses``
writes ``meta.json`` last, so a folder with one is complete, and an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.models.hashing import dataset_sha256
from neuroscribe.workers.activations.capture import capture_responses
from neuroscribe.workers.activations.loading import SubjectModel
from neuroscribe.workers.activations.pooling import check_pooling
from neuroscribe.workers.activations.sites import get_site
from neuroscribe.workers.activations.store import FORMAT_VERSION, Responses, load_responses, save_responses

__all__ = ["responses_key", "cached_capture"]


def responses_key(subject: SubjectModel, texts: Sequence[str], *, site: str, pooling: str,
                  layers: Sequence[int] | None, max_length: int) -> str:
    chosen = sorted(layers) if layers is not None else list(range(subject.n_layers))
    dtype = str(next(subject.model.parameters()).dtype)
    parts = [subject.model_id, subject.revision, subject.weight_sha256, subject.model_type,
             get_site(subject.model_type, site).name, check_pooling(pooling), chosen, int(max_length), dtype,
             dataset_sha256(texts), FORMAT_VERSION]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def cached_capture(subject: SubjectModel, texts: Sequence[str], cache_dir: str | Path | None, *,
                   site: str = "mlp_post", pooling: str = "max", layers: Sequence[int] | None = None,
                   batch_size: int = 32, max_length: int = 128, progress: bool = True) -> tuple[Responses, bool]:
    """``capture_responses`` through the cache: (responses, True) when they were on disk."""
    kwargs = dict(site=site, pooling=pooling, layers=layers, batch_size=batch_size, max_length=max_length,
                  progress=progress)
    if cache_dir is None:
        return capture_responses(subject, texts, **kwargs), False
    key = responses_key(subject, texts, site=site, pooling=pooling, layers=layers, max_length=max_length)
    folder = Path(cache_dir) / key[:2] / key
    if (folder / "meta.json").is_file():
        try:
            resp = load_responses(folder, mmap=True)
            if resp.meta.n_sentences == len(texts) and resp.meta.data_sha256 == dataset_sha256(texts):
                return resp, True
        except (InvalidInput, OSError, ValueError):
            pass  # unreadable entry: recompute and overwrite it
    resp = capture_responses(subject, texts, **kwargs)
    try:
        save_responses(resp, folder)
    except OSError:
        pass  # a cache that cannot be written only costs time
    return resp, False
