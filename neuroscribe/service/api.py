"""The HTTP API (FastAPI): submit jobs, follow them, fetch results and artefacts.

``create_app(queue, artefacts_dir=..., api_key=...)`` builds the app; nothing happens at import
time. Every route is a thin shell over the ``JobQueue`` interface (``service.queue``):

=======================================  ==================================================
``POST /v1/jobs``                        submit a job (any kind of ``jobs.py``); 201, or 200 with
                                         the existing job for a known ``Idempotency-Key``
``GET  /v1/jobs?limit=N``                the most recent jobs first
``GET  /v1/jobs/{id}``                   the job's record: status, stage, progress per stage
``POST /v1/jobs/{id}/cancel``            cancel (a queued job at once, a running one at its next renew)
``GET  /v1/jobs/{id}/result``            the result JSON; 409 until the job has succeeded
``GET  /v1/jobs/{id}/artefacts``         relative paths of the files under ``ARTEFACTS/<id>/``
``GET  /v1/jobs/{id}/artefacts/{path}``  one of those files
``GET  /healthz``                        the process answers (never needs the key)
``GET  /readyz``                         the queue answers (``queue.ping()``); else 503
=======================================  ==================================================

With an object store (``NEUROSCRIBE_ARTEFACTS_URL``, ``service.storage``) the job's committed files
are fetched into ``ARTEFACTS/<id>/`` before ``/result`` (when offloaded) and ``/artefacts`` serve them
(503 with ``Retry-After`` while the store does not answer); hidden names are never served.

Errors are JSON ``{"detail": ...}``: 401 without the API key (when one is set), 404 for an
unknown job (job ids are 32 hex characters) or file, 400 for a path that tries to leave the job's
folder, 409 for a result not available yet, 422 for an invalid job (pydantic's errors; ``loc``
is ``["body", FIELD, ...]``, e.g. ``["body", "tau"]``) or a kind that cannot run yet, 503 when the
queue backend cannot be reached (with ``Retry-After``), never a 500 with a traceback for that.
Submitting (``service.admission``): 413 over ``settings.max_body_bytes`` before any parsing
(``limits.BodyLimit``), 400 for a body that is not UTF-8, and 422 naming the field and the value for
what the server's policy and limits refuse (``service.policy``, ``service.limits``) -- all checked
off the event loop.

The API key (``api_key``) and the per-user keys (``keys``, ``service.auth``): every route but
``/healthz`` -- ``/readyz``, ``/openapi.json`` and ``/docs`` included -- then needs
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; a user sees only their own jobs, an admin all;
``rate_limiter`` answers 429 with ``Retry-After`` over a key's rate. Records carry a result summary;
the result itself is ``/result`` only (``service.results``). ``Idempotency-Key``: refused empty
(422), 409 when it was used for another body. Logs: ``service.logs``; operations routes (DELETE,
dead letters, ``/metrics``): ``service.api_ops``. Datasets (the packaged ones, and uploads that jobs
name by sha256, with per-key quotas): ``service.api_data``.
"""

import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response

from neuroscribe import __version__
from neuroscribe.atlas.api import is_ui_path, router as atlas_router, ui_router
from neuroscribe.jobs import AnyResult, JobStatus
from neuroscribe.service import admission, auth, registry
from neuroscribe.service.api_data import DATASETS_PATH, router as data_router
from neuroscribe.service.dataset_store import open_datasets
from neuroscribe.service.api_ops import call_queue, router as ops_router
from neuroscribe.service.logs import RequestLog
from neuroscribe.service.metrics import ApiMetrics
from neuroscribe.service.queue.base import IdempotencyConflict, JobNotFound, JobQueue, JobRecord
from neuroscribe.service.limits import BodyLimit
from neuroscribe.service.results import result_path
from neuroscribe.service.storage import open_store, sync
from neuroscribe.settings import Settings

__all__ = ["create_app", "run_server", "JOB_ID_PATTERN"]

log = logging.getLogger(__name__)

JOB_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
_MAX_IDEMPOTENCY_KEY = 200
_NOT_FOUND = {404: {"description": "No such job (job ids are 32 lowercase hex characters), or not yours."}}


# --------------------------------------------------------------------------- dependencies


def _queue(request: Request) -> JobQueue:
    return request.app.state.queue


def _artefacts_dir(request: Request) -> Path:
    return request.app.state.artefacts_dir


QueueDep = Annotated[JobQueue, Depends(_queue)]
ArtefactsDep = Annotated[Path, Depends(_artefacts_dir)]


def _job_id(job_id: str) -> str:
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise HTTPException(404, f"no job {job_id!r} (job ids are 32 lowercase hex characters)")
    return job_id


JobIdDep = Annotated[str, Depends(_job_id)]




# --------------------------------------------------------------------------- errors


def _clean_error(err: dict) -> dict:
    """A pydantic error as JSON: the job kind's tag dropped from ``loc``, no echo of the input."""
    loc = list(err.get("loc", ()))
    if len(loc) >= 2 and loc[0] == "body" and loc[1] in registry.kinds():
        loc = ["body", *loc[2:]]
    out = {"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")}
    if err.get("ctx"):
        out["ctx"] = {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
                      for k, v in err["ctx"].items()}
    return out


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": jsonable_encoder([_clean_error(e) for e in exc.errors()])}, status_code=422)


# --------------------------------------------------------------------------- artefacts

def _page_headers() -> dict[str, str]:
    """A result page is displayed, not downloaded: sandboxed (an opaque origin, so a script reaches
    neither the API's key nor its cookies), loading nothing but its own figures and styles, and
    running no script but the ones the page writers ship (by hash: the describe table's sort/filter)."""
    import base64
    import hashlib

    from neuroscribe.service.describe.unit_table import UNIT_SCRIPT

    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(x.encode()).digest()).decode()}'"
                      for x in (UNIT_SCRIPT,))
    return {"Content-Security-Policy": f"sandbox allow-scripts; default-src 'none'; script-src {hashes}; "
                                       "style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


_PAGE_HEADERS = _page_headers()


def _artefact_root(artefacts_dir: Path, job_id: str) -> Path:
    return (artefacts_dir / job_id).resolve()


def _safe_artefact(root: Path, rel: str) -> Path:
    """``root/rel`` if it is a file inside ``root`` (symlinks resolved); 400 / 404 otherwise."""
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/") or re.match(r"[A-Za-z]:", rel):
        raise HTTPException(400, "artefact paths are relative paths inside the job's folder")
    parts = rel.split("/")
    if any(p in ("..", ".") for p in parts):
        raise HTTPException(400, "artefact paths must not contain '.' or '..' segments")
    if any(p.startswith(".") for p in parts):  # temporary files, the sync marker: not artefacts
        raise HTTPException(404, f"no artefact {rel!r}")
    target = (root / rel).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, f"no artefact {rel!r}")
    return target


def _pull(request: Request, job_id: str) -> None:
    """With an object store (``NEUROSCRIBE_ARTEFACTS_URL``), fetch the job's committed files into the
    API's folder first (``storage.sync.pull``: only what changed); 503 when the store does not answer."""
    store = request.app.state.artefact_store
    if store is None:
        return
    try:
        sync.pull(store, job_id, request.app.state.artefacts_dir / job_id)
    except Exception as e:
        log.warning("artefact store error for job %s: %r", job_id, e)
        raise HTTPException(503, f"the artefact store is unavailable ({type(e).__name__}); retry later",
                            headers={"Retry-After": "5"}) from None


def _list_artefacts(root: Path) -> list[str]:
    """The job's files; hidden names (temporary files, the sync marker) are not artefacts."""
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.rglob("*")):
        try:
            real = p.resolve()
        except OSError:
            continue
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if real.is_relative_to(root) and real.is_file():
            out.append(p.relative_to(root).as_posix())
    return out


# --------------------------------------------------------------------------- the app


def create_app(queue: JobQueue, *, artefacts_dir: Path | str, api_key: str | None = None,
               keys: auth.KeyRing | None = None, rate_limiter: auth.RateLimiter | None = None,
               settings: Settings | None = None, atlas=None) -> FastAPI:
    """The API over ``queue``; artefacts served from ``artefacts_dir/<job id>/``; ``api_key``
    (when set, non-empty) required on every route but ``/healthz``. It accepts the jobs of every
    kind registered (``service.registry``) when it is created. ``atlas``: the neuron atlas's engine
    (``atlas.store.open_store``) for its routes and web UI (``atlas.api``); without it they answer 503."""
    app = FastAPI(title="neuroscribe", version=__version__,
                  description="Expert neurons and neuron descriptions as a service. See `neuroscribe.jobs`.")
    app.state.queue = queue
    app.state.artefacts_dir = Path(artefacts_dir).resolve()
    app.state.settings = settings if settings is not None else Settings()  # the policy and limits (admission)
    # artefacts in an object store: a job's committed files are fetched into artefacts_dir before they are served
    app.state.artefact_store = open_store(app.state.settings) if app.state.settings.artefacts_url else None
    app.state.datasets = open_datasets(app.state.settings, root=app.state.artefacts_dir)  # uploads (api_data)
    app.add_middleware(BodyLimit, max_bytes=app.state.settings.max_body_bytes,  # 413 before any parsing
                       paths={DATASETS_PATH: (app.state.settings.dataset_max_bytes, "NEUROSCRIBE_DATASET_MAX_BYTES")})
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.state.metrics = ApiMetrics(queue)
    app.state.atlas = atlas
    ring = keys if keys is not None else auth.KeyRing.build(api_key)
    if ring:
        app.add_middleware(auth.KeyAuth, ring=ring, limiter=rate_limiter or auth.RateLimiter(),
                           open_paths=frozenset({"/healthz"}), is_open=is_ui_path)
        _document_key(app)
    app.add_middleware(app.state.metrics.middleware)
    app.add_middleware(RequestLog)  # outermost: every line of a request carries its id
    app.include_router(ops_router)
    app.include_router(atlas_router)
    app.include_router(data_router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "The queue backend does not answer."}})
    def readyz(q: QueueDep) -> JSONResponse:
        """The queue backend answers (``ping``)."""
        try:
            ok = bool(q.ping())
        except Exception as e:
            log.warning("readiness: ping raised %r", e)
            ok = False
        if ok:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable", "detail": "the job queue does not answer"}, status_code=503)

    @app.post("/v1/jobs", status_code=201, response_model=JobRecord, tags=["jobs"],
              responses={200: {"model": JobRecord, "description": "A job submitted before under this Idempotency-Key."},
                         422: {"description": "Invalid job, one this server does not allow (its policy and limits), "
                                              "or a kind that cannot run yet."}, **admission.SUBMIT_RESPONSES})
    def submit(
        job: Annotated[Any, Depends(admission.submitted_job)],  # checked off the event loop; body: install()
        q: QueueDep,
        request: Request,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=_MAX_IDEMPOTENCY_KEY,
                                                      description="Resubmitting with the same key returns "
                                                                  "the first job (nothing new is queued).")] = None,
    ):
        """Validate and queue a job; it enters the first stage of its kind."""
        if job.kind not in registry.kinds():  # unregistered since the app was made
            raise HTTPException(422, [{"loc": ["body", "kind"], "type": "kind_not_runnable",
                                       "msg": f"job kind {job.kind!r} cannot run (registered kinds: "
                                              f"{', '.join(registry.kinds())})"}])
        if idempotency_key is not None and not idempotency_key.strip():
            raise HTTPException(422, [{"loc": ["header", "Idempotency-Key"], "type": "value_error",
                                       "msg": f"Idempotency-Key: {idempotency_key!r} is empty; send a key or "
                                              "no header"}])
        rec, created = call_queue(q.submit_new, job.model_dump(mode="json"), idempotency_key=idempotency_key,
                             owner=auth.submitter(request))
        log.info("job submitted" if created else "job resubmitted", extra={"job_id": rec.id, "kind": rec.kind})
        return JSONResponse(jsonable_encoder(rec), status_code=201 if created else 200)

    @app.get("/v1/jobs", response_model=list[JobRecord], tags=["jobs"])
    def list_jobs(q: QueueDep, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        """The most recent jobs first."""
        return call_queue(q.list, limit=limit, owner=auth.owner_filter(request))

    @app.get("/v1/jobs/{job_id}", response_model=JobRecord, tags=["jobs"], responses=_NOT_FOUND)
    def get_job(job_id: JobIdDep, q: QueueDep, request: Request):
        """Status, current stage and progress per stage."""
        return auth.visible(request, call_queue(q.get, job_id))

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobRecord, tags=["jobs"], responses=_NOT_FOUND)
    def cancel_job(job_id: JobIdDep, q: QueueDep, request: Request):
        """Cancel: a queued job never starts; a running one stops and publishes nothing."""
        auth.visible(request, call_queue(q.get, job_id))
        return call_queue(q.cancel, job_id)

    @app.get("/v1/jobs/{job_id}/result", tags=["jobs"],
             responses={**_NOT_FOUND, 200: {"model": AnyResult, "description": "The result (`neuroscribe.jobs`)."},
                        409: {"description": "The job has not succeeded (yet)."}})
    def get_result(job_id: JobIdDep, q: QueueDep, request: Request) -> Response:
        """The job's result, once it has succeeded."""
        rec = auth.visible(request, call_queue(q.get, job_id))
        text = call_queue(q.result, job_id) if rec.status == JobStatus.succeeded else None
        if rec.status == JobStatus.succeeded and text is None:
            _pull(request, job_id)
        stored = result_path(request.app.state.artefacts_dir, job_id)
        if rec.status == JobStatus.succeeded and text is None and stored.is_file():
            return FileResponse(stored, media_type="application/json")  # streamed from disk
        if text is None:
            where = f" (stage {rec.stage})" if rec.stage else ""
            why = f": {rec.error}" if rec.error and rec.status.is_final else ""
            raise HTTPException(409, f"job {job_id} is {rec.status.value}{where}{why}; no result"
                                     f"{' yet' if not rec.status.is_final else ''}")
        return Response(text, media_type="application/json")

    @app.get("/v1/jobs/{job_id}/artefacts", response_model=list[str], tags=["artefacts"], responses=_NOT_FOUND)
    def list_artefacts(job_id: JobIdDep, q: QueueDep, root: ArtefactsDep, request: Request):
        """Relative paths of the job's files (empty until a stage writes some)."""
        auth.visible(request, call_queue(q.get, job_id))
        _pull(request, job_id)
        return _list_artefacts(_artefact_root(root, job_id))

    @app.get("/v1/jobs/{job_id}/artefacts/{path:path}", tags=["artefacts"], response_class=FileResponse,
             responses={**_NOT_FOUND, 400: {"description": "A path leaving the job's folder."}})
    def get_artefact(job_id: JobIdDep, path: str, q: QueueDep, root: ArtefactsDep, request: Request):
        """One file of the job's folder."""
        auth.visible(request, call_queue(q.get, job_id))
        _pull(request, job_id)
        target = _safe_artefact(_artefact_root(root, job_id), path)
        if target.suffix.lower() in (".html", ".htm"):  # a job's page: shown, in a sandbox of its own origin
            return FileResponse(target, media_type="text/html", headers=_PAGE_HEADERS)
        return FileResponse(target, filename=target.name)

    admission.install(app)  # the kinds registered now; the submit route's body in the OpenAPI schema
    app.include_router(ui_router)  # last: its catch-all paths must not shadow the API's
    return app


def _document_key(app: FastAPI) -> None:
    """Declare the key in the OpenAPI schema (the middleware enforces it)."""
    base = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = base()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def run_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, **uvicorn_options: Any) -> None:
    """Serve ``app`` with uvicorn (blocking). Binds 127.0.0.1 unless told otherwise."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, **uvicorn_options)
