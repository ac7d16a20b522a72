"""Datasets over HTTP: the packaged ones (for clients that build a job's body, like the web UI's
submit form), and datasets uploaded once that jobs then name by hash (``service.dataset_store``):

==========================================  ====================================================
``GET    /v1/datasets``                     the packaged datasets' names
``GET    /v1/datasets/{name}``              one as a describe / rank job's ``dataset`` field: name,
                                            texts, labels, label names (404 for any other name: no
                                            file of the server is named)
``POST   /v1/datasets``                     upload ``{"kind": "describe"|"rank", "dataset": {...}}``:
                                            201 ``{sha256, kind, rows, bytes, name}``; 200 when this
                                            key holds it already. A job then says
                                            ``"dataset": {"sha256": "<hex>"}``
``GET    /v1/datasets/usage``               this key's datasets, the bytes they hold and the quota
``GET    /v1/datasets/sha256:<hex>``        the stored dataset: its canonical JSON (what the hash is of)
``DELETE /v1/datasets/sha256:<hex>``        this key's claim on it (204); the file goes with the last
==========================================  ====================================================

An upload is checked as a job's dataset is (the same pydantic models), off the event loop: 400 for a
body that is not UTF-8, 422 naming the field and row (``["body", "dataset", "texts", 17]``: "sentence
17 is empty"), 413 over ``NEUROSCRIBE_DATASET_MAX_BYTES`` (the body, before any parsing, or the
dataset's canonical JSON), 403 when it would take the key over ``NEUROSCRIBE_DATASET_QUOTA_BYTES``
(the message says the quota and the usage). A dataset another key uploaded is a 404 to this one.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from neuroscribe.service.admission import json_body
from neuroscribe.service.auth import principal
from neuroscribe.service.dataset_store import (DATASET_KINDS, DatasetStore, DatasetTooLarge, QuotaExceeded,
                                               parse_digest)
from neuroscribe.service.describe.dataset import PACKAGED_DATASETS, load_dataset_spec
from neuroscribe.service.limits import limit_refusals
from neuroscribe.service.policy import JobRefused
from neuroscribe.settings import Settings

__all__ = ["router", "DATASETS_PATH", "DatasetInfo", "DatasetUsage"]

DATASETS_PATH = "/v1/datasets"
router = APIRouter(prefix=DATASETS_PATH, tags=["datasets"])

_NOT_STORED = {404: {"description": "No such dataset stored for this key (hashes are 64 hex digits)."}}
_UPLOAD_BODY = {"requestBody": {"required": True, "description": "One dataset, as a job of that kind carries it.",
                                "content": {"application/json": {"schema": {"oneOf": [
                                    {"type": "object", "required": ["kind", "dataset"], "additionalProperties": False,
                                     "properties": {"kind": {"const": kind},
                                                    "dataset": {"$ref": f"#/components/schemas/{spec.__name__}"}}}
                                    for kind, spec in DATASET_KINDS.items()]}}}}}


class DatasetInfo(BaseModel):
    sha256: str
    kind: Literal["describe", "rank"]
    rows: int
    bytes: int
    name: str = ""


class DatasetUsage(BaseModel):
    user: str | None = None
    bytes: int
    quota_bytes: int
    max_dataset_bytes: int
    datasets: list[DatasetInfo]


def _caller(request: Request) -> tuple[str | None, bool]:
    p = principal(request)
    return (None, False) if p is None else (p.user, p.admin)


def _store(request: Request) -> DatasetStore:
    return request.app.state.datasets


def _invalid(loc: tuple, msg: str, kind: str, value=None) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": msg, "type": kind, "input": value}])


def _parse_upload(raw: bytes, settings: Settings) -> tuple[str, BaseModel]:
    """(kind, the validated dataset) of an upload's body; 400 / 422 naming the field otherwise."""
    data = json_body(raw, 'a dataset is required: {"kind": "describe"|"rank", "dataset": {...}}')
    if not isinstance(data, dict):
        raise _invalid((), f'{type(data).__name__} is not an upload: send {{"kind": "describe"|"rank", '
                           '"dataset": {...}}', "model_type")
    extras = sorted(set(data) - {"kind", "dataset"})
    if extras:
        raise RequestValidationError([{"loc": ("body", k), "msg": f"{k!r} is not a field of an upload (kind, dataset)",
                                       "type": "extra_forbidden"} for k in extras])
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in DATASET_KINDS:
        shown = kind if isinstance(kind, (str, int, float, bool, type(None))) else type(kind).__name__
        raise _invalid(("kind",), f"{shown!r} is not a dataset kind ({', '.join(DATASET_KINDS)})", "literal_error",
                       shown)
    if "dataset" not in data:
        raise _invalid(("dataset",), "Field required", "missing")
    try:
        spec = DATASET_KINDS[kind].model_validate(data["dataset"])
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", "dataset", *err["loc"])}
                                      for err in e.errors()]) from None
    too_many = limit_refusals(spec, settings)
    if too_many:
        raise RequestValidationError([{**r.as_error(), "loc": ["body", "dataset", *r.loc]} for r in too_many])
    return kind, spec


def _upload(raw: bytes, request: Request) -> JSONResponse:
    settings = request.app.state.settings
    kind, spec = _parse_upload(raw, settings)
    user, _ = _caller(request)
    try:
        info, created = _store(request).put(kind, spec, user, max_bytes=settings.dataset_max_bytes,
                                            quota_bytes=settings.dataset_quota_bytes)
    except DatasetTooLarge as e:
        raise HTTPException(413, str(e)) from None
    except QuotaExceeded as e:
        raise HTTPException(403, str(e)) from None
    return JSONResponse(info.as_json(), status_code=201 if created else 200)


@router.post("", status_code=201, response_model=DatasetInfo, openapi_extra=_UPLOAD_BODY,
             responses={200: {"model": DatasetInfo, "description": "This key holds the same dataset already."},
                        400: {"description": "The body cannot be read (not UTF-8 text)."},
                        403: {"description": "Over this key's dataset quota (NEUROSCRIBE_DATASET_QUOTA_BYTES)."},
                        413: {"description": "Larger than one dataset may be (NEUROSCRIBE_DATASET_MAX_BYTES)."},
                        422: {"description": "Not a valid dataset: the field and row are named."}})
async def upload(request: Request):
    """Store a dataset once, under the sha256 of its canonical JSON; jobs name it by that hash."""
    raw = await request.body()
    return await run_in_threadpool(_upload, raw, request)


@router.get("", response_model=list[str])
def datasets() -> list[str]:
    """The names a job may use for a packaged dataset."""
    return sorted(PACKAGED_DATASETS)


@router.get("/usage", response_model=DatasetUsage)
def usage(request: Request) -> DatasetUsage:
    """This key's datasets, the bytes they hold, and the quota."""
    user, _ = _caller(request)
    settings = request.app.state.settings
    held = _store(request).held(user)
    return DatasetUsage(user=user, bytes=sum(d.bytes for d in held), quota_bytes=settings.dataset_quota_bytes,
                        max_dataset_bytes=settings.dataset_max_bytes,
                        datasets=[DatasetInfo(**d.as_json()) for d in held])


def _digest(digest: str) -> str:
    sha = parse_digest(digest)
    if sha is None:
        raise HTTPException(404, f"no dataset sha256:{digest[:80]!r} (hashes are 64 hex digits)")
    return sha


@router.get("/sha256:{digest}", response_class=Response, responses={
    **_NOT_STORED, 200: {"description": "The dataset's canonical JSON: {\"dataset\": {...}, \"kind\": ...}.",
                         "content": {"application/json": {}}},
    500: {"description": "The stored file no longer matches its hash (damaged in storage): upload it again."}})
def stored(digest: str, request: Request) -> Response:
    """A dataset this key uploaded: the bytes its hash is of (POSTed again, the same hash)."""
    sha = _digest(digest)
    user, admin = _caller(request)
    store = _store(request)
    if store.info(sha, user, admin=admin) is None:
        raise HTTPException(404, f"no dataset sha256:{sha} is stored for this key")
    try:
        data = store.read(sha)
    except JobRefused as e:
        raise HTTPException(404 if e.refusal.type == "dataset_not_found" else 500, e.refusal.msg) from None
    return Response(data, media_type="application/json", headers={"ETag": f'"sha256:{sha}"'})


@router.delete("/sha256:{digest}", status_code=204, response_class=Response,
               responses={**_NOT_STORED, 204: {"description": "Forgotten for this key (the file with its last key)."}})
def delete(digest: str, request: Request) -> Response:
    """Forget a dataset this key uploaded (an admin: any). Jobs queued with it then fail at their
    next stage, saying it is not stored."""
    sha = _digest(digest)
    user, admin = _caller(request)
    if not _store(request).delete(sha, user, admin=admin):
        raise HTTPException(404, f"no dataset sha256:{sha} is stored for this key")
    return Response(status_code=204)


@lru_cache(maxsize=8)
def _packaged(name: str) -> dict:
    return load_dataset_spec(Path(name)).model_dump(mode="json")


@router.get("/{name}", responses={404: {"description": "Not a packaged dataset."}})
def dataset(name: str) -> dict:
    """A packaged dataset as a job's ``dataset`` field."""
    if name not in PACKAGED_DATASETS:
        raise HTTPException(404, f"no packaged dataset {name[:100]!r} (packaged: {', '.join(sorted(PACKAGED_DATASETS))})")
    return _packaged(name)
