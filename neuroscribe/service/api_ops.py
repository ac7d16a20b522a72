"""The API's operations routes (included by ``service.api.create_app``):

=============================================  ================================================
``DELETE /v1/jobs/{id}``                       forget a finished job: records, result, files (204);
                                               409 while it is queued or running (cancel it first)
``GET  /v1/dead-letters?stage=S``              dead letters (every stage, or S), oldest first (admin)
``POST /v1/dead-letters/{stage}/{id}/requeue`` put one back into its stage, attempts reset (admin)
``GET  /metrics``                              Prometheus metrics (``service.metrics``)
=============================================  ================================================
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Callable, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel

from neuroscribe.service import auth, registry
from neuroscribe.service.metrics import CONTENT_TYPE_LATEST
from neuroscribe.service.queue.base import IdempotencyConflict, JobNotFinished, JobNotFound, JobQueue, JobRecord
from neuroscribe.service.retention import remove_job
from neuroscribe.service.storage import sync

__all__ = ["router", "DeadLetterOut", "call_queue"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")

router = APIRouter()


class DeadLetterOut(BaseModel):
    id: str
    stage: str
    job_id: str | None
    reason: str
    at: float


def call_queue(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Call the queue: ``JobNotFound`` -> 404; ``JobNotFinished`` and ``IdempotencyConflict`` -> 409;
    anything else the backend raises (unreachable or broken) -> 503, no traceback."""
    try:
        return fn(*args, **kwargs)
    except JobNotFound as e:
        raise HTTPException(404, f"no job {e.job_id!r}") from None
    except (JobNotFinished, IdempotencyConflict) as e:
        raise HTTPException(409, str(e)) from None
    except Exception as e:
        log.warning("job queue error in %s: %r", getattr(fn, "__name__", fn), e)
        raise HTTPException(503, f"the job queue is unavailable ({type(e).__name__}); retry later",
                            headers={"Retry-After": "5"}) from None


def _queue(request: Request) -> JobQueue:
    return request.app.state.queue


QueueDep = Annotated[JobQueue, Depends(_queue)]


def _stage(stage: str) -> str:
    if stage not in registry.stage_names():
        raise HTTPException(404, f"stage: no stage {stage!r} (stages: {', '.join(registry.stage_names())})")
    return stage


@router.delete("/v1/jobs/{job_id}", status_code=204, tags=["jobs"],
               responses={404: {"description": "No such job (or not the caller's)."},
                          409: {"description": "The job is queued or running: cancel it first."}})
def delete_job(job_id: str, request: Request, q: QueueDep) -> Response:
    """Forget a finished job: its record, result, idempotency key and files."""
    if not _JOB_ID.fullmatch(job_id):
        raise HTTPException(404, f"no job {job_id!r} (job ids are 32 lowercase hex characters)")
    auth.visible(request, call_queue(q.get, job_id))
    call_queue(remove_job, q, request.app.state.artefacts_dir, job_id)
    store = getattr(request.app.state, "artefact_store", None)
    if store is not None:  # an object store: the job's objects too (the record is gone: a failure is logged)
        try:
            sync.forget(store, job_id)
        except Exception as e:
            log.warning("artefact store: could not delete job %s's objects: %r", job_id, e)
    log.info("job deleted", extra={"job_id": job_id})
    return Response(status_code=204)


@router.get("/v1/dead-letters", response_model=list[DeadLetterOut], tags=["operations"],
            responses={403: {"description": "Not an admin."}, 404: {"description": "No such stage."}})
def list_dead_letters(request: Request, q: QueueDep, stage: Annotated[str | None, Query()] = None):
    """Dead letters, oldest first: every stage, or ``stage``'s."""
    auth.require_admin(request)
    stages = [_stage(stage)] if stage is not None else registry.stage_names()
    return [DeadLetterOut(id=d.id, stage=s, job_id=d.job_id, reason=d.reason, at=d.at)
            for s in stages for d in call_queue(q.dead_letters, s)]


@router.post("/v1/dead-letters/{stage}/{entry_id}/requeue", response_model=JobRecord, tags=["operations"],
             responses={403: {"description": "Not an admin."},
                        404: {"description": "No such stage or dead letter, or its job is gone."}})
def requeue_dead_letter(stage: str, entry_id: str, request: Request, q: QueueDep):
    """Put a dead letter back into its stage (its job queued again, attempts reset)."""
    auth.require_admin(request)
    _stage(stage)
    if not _ENTRY_ID.fullmatch(entry_id):
        raise HTTPException(404, f"no dead letter {entry_id!r} (ids look like 1700000000000-0)")
    rec = call_queue(q.requeue, stage, entry_id)
    log.info("dead letter requeued", extra={"job_id": rec.id, "stage": stage})
    return rec


@router.get("/metrics", tags=["operations"], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}})
def metrics(request: Request) -> Response:
    """Prometheus metrics: queue depth and lag per stage, dead letters, jobs by status, HTTP latency."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
