"""The packaged datasets over HTTP, for clients that build a job's body (the web UI's submit form):

``GET /v1/datasets``         the packaged datasets' names
``GET /v1/datasets/{name}``  one as a describe / rank job's ``dataset`` field: name, texts, labels,
                             label names (404 for any other name: no file of the server is named)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException

from neuroscribe.service.describe.dataset import PACKAGED_DATASETS, load_dataset_spec

__all__ = ["router"]

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@lru_cache(maxsize=8)
def _packaged(name: str) -> dict:
    return load_dataset_spec(Path(name)).model_dump(mode="json")


@router.get("")
def datasets() -> list[str]:
    """The names a job may use for a packaged dataset."""
    return sorted(PACKAGED_DATASETS)


@router.get("/{name}", responses={404: {"description": "Not a packaged dataset."}})
def dataset(name: str) -> dict:
    """A packaged dataset as a job's ``dataset`` field."""
    if name not in PACKAGED_DATASETS:
        raise HTTPException(404, f"no packaged dataset {name[:100]!r} (packaged: {', '.join(sorted(PACKAGED_DATASETS))})")
    return _packaged(name)
