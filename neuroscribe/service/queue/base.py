"""The job queue interface: jobs flow through per-stage queues to long-lived workers.

A job is submitted once (optionally under an idempotency key) and enters the first stage of its
kind (``stages_of``, read from ``service.registry``). A worker of a stage ``claim``s one delivery at a time under its consumer name;
the delivery is leased: the worker ``renew``s it while the job runs, and a delivery whose lease
ran out is handed to another worker (a dead worker's job is reclaimed, never lost). ``complete``
is atomic: it records the stage's hand-off (or the final result), enqueues the next stage and
acknowledges the delivery, all or nothing, and only while the caller still holds the lease, so a
job is committed exactly once. ``fail`` retries with backoff up to ``max_attempts`` deliveries,
then moves the job to the dead-letter list with the reason; ``dead_letter`` does so at once
(malformed payloads). ``cancel`` stops a queued job before it starts; a running job sees
``renew`` return ``False`` and must stop without publishing (``complete`` refuses it anyway).

Records stay small: a record carries a result *summary* (a few numbers, ``summary``), never the
result, which ``result(job_id)`` returns as JSON text (``None`` when the worker kept it in the
job's folder instead, see ``service.results``). Idempotency keys are scoped to the job's owner,
checked against a hash of the job (``IdempotencyConflict`` on a mismatch) and expire after
``Retention.idempotency_ttl_s``. ``delete`` forgets a finished job; ``gc`` forgets the jobs that
ended more than ``Retention.job_ttl_s`` ago, prunes the job index and drops dead letters older than
``Retention.dead_letter_ttl_s``; ``requeue`` puts a dead letter back into its stage.

A stage may be split into shards that any worker of the stage takes, merged by one reduce step
(``complete(..., shards=[...])``; the contract is in ``shards.py``).

Everything on the wire is JSON (``dict`` payloads), never pickle. Implementations: ``memory``
(one process, for the embedded mode and tests) and ``redis`` (Redis Streams); one contract test
suite (``tests/test_queue_contract.py``) runs against both.
"""

from __future__ import annotations

import abc
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from neuroscribe.errors import NeuroscribeError
from neuroscribe.jobs import JobStatus

__all__ = ["stages_of", "all_stages", "first_stage", "next_stage", "StageProgress", "JobRecord", "Delivery", "DeadLetter",
           "JobQueue", "QueueError", "JobNotFound", "new_job_id", "IdempotencyConflict", "JobNotFinished", "Retention",
           "job_hash", "idempotency_scope", "GcReport"]

def stages_of(kind: str) -> tuple[str, ...]:
    """The stages ``kind`` goes through, in order (from ``service.registry``)."""
    from neuroscribe.service import registry

    try:
        return registry.stages()[kind]
    except KeyError:
        raise QueueError(f"job kind {kind!r} has no stages (runnable kinds: {', '.join(registry.stages())})") from None


def all_stages() -> list[str]:
    from neuroscribe.service import registry

    return registry.stage_names()


def first_stage(kind: str) -> str:
    return stages_of(kind)[0]


def next_stage(kind: str, stage: str) -> str | None:
    stages = stages_of(kind)
    i = stages.index(stage)
    return stages[i + 1] if i + 1 < len(stages) else None


def new_job_id() -> str:
    return uuid.uuid4().hex


class QueueError(NeuroscribeError):
    """The queue cannot do what was asked (unknown kind, backend unreachable...)."""


class JobNotFound(QueueError):
    def __init__(self, job_id: str):
        self.job_id = job_id
        super().__init__(f"no job {job_id!r}")


class IdempotencyConflict(QueueError):
    """The idempotency key was used before for another job (a different body, or another kind)."""

    def __init__(self, key: str, job_id: str):
        self.key, self.job_id = key, job_id
        super().__init__(f"Idempotency-Key {key!r} was used for another job ({job_id}) with a different body")


class JobNotFinished(QueueError):
    """``delete`` of a job that is still queued or running (cancel it first)."""

    def __init__(self, job_id: str, status: str):
        self.job_id, self.status = job_id, status
        super().__init__(f"job {job_id} is {status}: cancel it and wait until it has stopped before deleting it")


@dataclass(frozen=True)
class Retention:
    """How long the queue remembers things (seconds): finished jobs (with their results),
    idempotency keys, dead letters. ``gc`` applies the first and the last; keys expire by themselves."""

    job_ttl_s: float = 7 * 86400.0
    idempotency_ttl_s: float = 86400.0
    dead_letter_ttl_s: float = 14 * 86400.0


@dataclass
class GcReport:
    """What ``gc`` removed: the jobs (ids), stale index entries and dead letters."""

    jobs: list[str] = field(default_factory=list)
    index_entries: int = 0
    dead_letters: int = 0


def job_hash(job: dict) -> str:
    """The hash an idempotency key is checked against: the job's canonical JSON (SHA-256)."""
    return hashlib.sha256(json.dumps(job, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def idempotency_scope(owner: str | None, key: str) -> str:
    """The stored name of ``owner``'s key (keys of different users never meet)."""
    return hashlib.sha256(f"{owner or ''}\n{key}".encode()).hexdigest()[:40]


class StageProgress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    done: int = 0
    total: int | None = None
    message: str | None = None


class JobRecord(BaseModel):
    """What the queue knows of a job: served by the API as its status."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: str
    status: JobStatus
    stage: str | None = Field(None, description="The stage the job is in (None once final).")
    attempts: int = Field(0, description="Deliveries of the current stage so far.")
    progress: dict[str, StageProgress] = Field(default_factory=dict, description="Per stage.")
    error: str | None = None
    summary: dict | None = Field(None, description="A few numbers of the result once succeeded; the result "
                                                   "itself: GET /v1/jobs/{id}/result.")
    owner: str | None = Field(None, description="The user who submitted it (None without per-user keys).")
    idempotency_key: str | None = None
    cancel_requested: bool = False
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


@dataclass(frozen=True)
class Delivery:
    """One leased message of a stage, as a worker receives it."""

    job_id: str
    stage: str
    attempt: int  # 1 for the first delivery of this stage
    payload: dict = field(repr=False)  # the job (``job``) and earlier stages' hand-off (``handoff``)
    delivery_id: str  # the backend's message id
    consumer: str

    @property
    def shard(self) -> dict | None:
        """None for an ordinary delivery; ``{"id", "index", "of", "spec"}`` for a shard; ``{"id":
        "reduce", "of", "outputs"}`` for the reduce of a split stage (``shards.py``)."""
        s = self.payload.get("shard")
        return s if isinstance(s, dict) else None


@dataclass(frozen=True)
class DeadLetter:
    job_id: str | None
    stage: str
    reason: str
    raw: dict  # the message as it was (for inspection)
    id: str = ""  # the entry's id in the stage's dead-letter list (``requeue`` takes it)
    at: float = 0.0  # when it was dead-lettered (time.time())

    def payload(self) -> dict | None:
        """The message's payload (``{"job": ..., "handoff": ...}``) when it can be recovered."""
        data = self.raw.get("data")
        for _ in range(2):  # the payload, or the fields of a raw message holding it
            try:
                data = json.loads(data) if isinstance(data, str) else data
            except ValueError:
                return None
            if isinstance(data, dict) and isinstance(data.get("job"), dict):
                return data
            data = data.get("data") if isinstance(data, dict) else None
        return None


class JobQueue(abc.ABC):
    """See the module docstring. ``lease_s``: how long a delivery stays leased without a renewal."""

    lease_s: float
    max_attempts: int
    retention: Retention
    max_shards_in_flight: int = 4  # of one job in a stage's stream at a time (shards.py)

    # ---------------------------------------------------------------- client side
    def submit(self, job: dict, *, idempotency_key: str | None = None, owner: str | None = None) -> JobRecord:
        """Enqueue ``job`` (the JSON of a ``jobs.py`` job) into its first stage. With an
        ``idempotency_key`` that ``owner`` used before for the same job, return that job instead
        (nothing is enqueued); for another job, ``IdempotencyConflict``."""
        return self.submit_new(job, idempotency_key=idempotency_key, owner=owner)[0]

    @abc.abstractmethod
    def submit_new(self, job: dict, *, idempotency_key: str | None = None,
                   owner: str | None = None) -> tuple[JobRecord, bool]:
        """``submit``, also saying whether a job was created (False: the key's earlier job)."""

    @abc.abstractmethod
    def result(self, job_id: str) -> str | None:
        """The result as JSON text (None: not succeeded, or kept in the job's folder)."""

    @abc.abstractmethod
    def delete(self, job_id: str) -> None:
        """Forget a finished job (record, result, index entries, idempotency key);
        ``JobNotFinished`` while it is queued or running."""

    @abc.abstractmethod
    def gc(self, now: float | None = None) -> GcReport:
        """Apply the retention at ``now`` (default: the time): see the module docstring."""

    @abc.abstractmethod
    def requeue(self, stage: str, entry_id: str) -> JobRecord:
        """Put dead letter ``entry_id`` of ``stage`` back into the stage, attempts reset;
        ``JobNotFound`` when no such entry or its job is gone."""

    @abc.abstractmethod
    def stats(self) -> dict:
        """For the metrics: ``{"stages": {stage: {"ready", "pending", "delayed", "dead",
        "oldest_s"}}, "jobs": {status: count}}`` (oldest_s: age of the oldest unfinished message)."""

    @abc.abstractmethod
    def get(self, job_id: str) -> JobRecord:
        """The job's record; ``JobNotFound`` otherwise."""

    @abc.abstractmethod
    def list(self, *, limit: int = 100, owner: str | None = None) -> list[JobRecord]:
        """The most recent jobs first (``owner``'s only, when given)."""

    @abc.abstractmethod
    def cancel(self, job_id: str) -> JobRecord:
        """Cancel: a queued job is final at once; a running one is marked and stops at its next renew."""

    @abc.abstractmethod
    def ping(self) -> bool:
        """Whether the backend answers."""

    # ---------------------------------------------------------------- worker side
    @abc.abstractmethod
    def claim(self, stage: str, consumer: str, *, block_s: float = 1.0) -> Delivery | None:
        """The next delivery of ``stage`` for ``consumer`` (reclaiming expired leases first), or None."""

    @abc.abstractmethod
    def renew(self, delivery: Delivery) -> bool:
        """Extend the lease. False when the lease was lost or the job was cancelled: stop the job."""

    @abc.abstractmethod
    def progress(self, delivery: Delivery, done: int, total: int | None = None, message: str | None = None) -> None:
        """Record the stage's progress (shown by ``get``)."""

    @abc.abstractmethod
    def complete(self, delivery: Delivery, *, handoff: dict | None = None, result: dict | None = None,
                 summary: dict | None = None, shards: list[dict] | None = None) -> bool:
        """Atomically: hand ``handoff`` to the next stage (or record ``result`` and ``summary`` when
        this is the last stage; ``result`` None: it is in the job's folder) and acknowledge. False, with nothing written, when the lease was lost; a cancelled
        job is acknowledged and publishes nothing (also False). ``shards`` (an ordinary delivery only):
        split the stage instead of handing on; a shard's delivery records ``handoff`` as its output
        and the last one queues the reduce (``shards.py``). False for a shard committed before."""

    @abc.abstractmethod
    def release(self, delivery: Delivery) -> None:
        """Give the delivery back unfinished (a worker shutting down): claimable again at once."""

    @abc.abstractmethod
    def fail(self, delivery: Delivery, reason: str, *, retry: bool = True, user_error: bool = False) -> None:
        """Retry later with backoff while attempts remain (and ``retry``), else dead-letter the job.
        ``user_error``: the job itself is wrong (a field the user gave): it fails at once, with the
        reason, and is not dead-lettered (dead letters are for what an operator must look at)."""

    @abc.abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Dead-letter at once (a malformed or poisonous payload)."""

    @abc.abstractmethod
    def dead_letters(self, stage: str) -> list[DeadLetter]:
        """The dead-letter list of ``stage``."""

    @abc.abstractmethod
    def pending(self, stage: str) -> int:
        """Deliveries of ``stage`` handed out and not yet acknowledged."""

    def backoff_s(self, attempt: int) -> float:
        """Delay before the retry after ``attempt`` failed deliveries: 0.5 s doubling, at most 60 s."""
        return min(60.0, 0.5 * 2 ** (attempt - 1))
