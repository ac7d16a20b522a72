"""``JobQueue`` in one process (a lock, dicts and deques): the embedded mode and unit tests.

Same contract as the Redis implementation, leases included (on ``time.monotonic``), so the
contract suite runs against both. Payloads are stored as JSON text, so that what a worker gets is
exactly what would have crossed the wire.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass

from neuroscribe.jobs import JobStatus
from neuroscribe.service.queue.base import (
    DeadLetter,
    Delivery,
    GcReport,
    IdempotencyConflict,
    JobNotFinished,
    JobNotFound,
    JobQueue,
    JobRecord,
    QueueError,
    Retention,
    StageProgress,
    first_stage,
    idempotency_scope,
    job_hash,
    new_job_id,
    next_stage,
)
from neuroscribe.service.queue.shards import (REDUCE, check_shards, merged_progress, progress_key, reduce_payload,
                                              shard_id, shard_payloads)

__all__ = ["InMemoryQueue"]


@dataclass
class _Msg:
    id: str
    job_id: str
    stage: str
    data: str  # JSON of {"job": ..., "handoff": ...}
    deliveries: int = 0
    consumer: str | None = None
    lease_until: float = 0.0
    due: float = 0.0  # not deliverable before (retry backoff)
    born: float = 0.0  # when it entered the stage (time.monotonic), for the lag


class InMemoryQueue(JobQueue):
    def __init__(self, *, lease_s: float = 30.0, max_attempts: int = 3, retention: Retention | None = None,
                 max_shards_in_flight: int = 4):
        self.max_shards_in_flight = max(1, int(max_shards_in_flight))
        self._shards: dict[str, dict[str, dict]] = {}  # job -> stage -> total, out, wait, job, handoff
        self.lease_s = float(lease_s)
        self.max_attempts = int(max_attempts)
        self.retention = retention or Retention()
        self._lock = threading.Condition()
        self._jobs: dict[str, JobRecord] = {}
        self._idem: dict[str, tuple[str, str, float]] = {}  # scoped key -> (job id, job hash, expires at)
        self._results: dict[str, str] = {}
        self._ready: dict[str, deque[_Msg]] = {}
        self._leased: dict[str, _Msg] = {}  # message id -> message
        self._dead: dict[str, list[DeadLetter]] = {}
        self._ids = itertools.count(1)

    # ---------------------------------------------------------------- client side
    def submit_new(self, job: dict, *, idempotency_key: str | None = None,
                   owner: str | None = None) -> tuple[JobRecord, bool]:
        kind = job.get("kind")
        stage = first_stage(kind)
        data = json.dumps({"job": job, "handoff": None})
        digest = job_hash(job)
        scope = idempotency_scope(owner, idempotency_key) if idempotency_key is not None else None
        with self._lock:
            seen = self._idem.get(scope) if scope is not None else None
            if seen is not None and seen[2] > time.time() and seen[0] in self._jobs:
                if seen[1] != digest:
                    raise IdempotencyConflict(idempotency_key, seen[0])
                return self._jobs[seen[0]].model_copy(deep=True), False
            job_id = new_job_id()
            rec = JobRecord(id=job_id, kind=kind, status=JobStatus.queued, stage=stage, idempotency_key=idempotency_key,
                            owner=owner)
            self._jobs[job_id] = rec
            if scope is not None:
                self._idem[scope] = (job_id, digest, time.time() + self.retention.idempotency_ttl_s)
            self._enqueue(job_id, stage, data)
            return rec.model_copy(deep=True), True

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            if job_id not in self._jobs:
                raise JobNotFound(job_id)
            return self._view(self._jobs[job_id])

    def list(self, *, limit: int = 100, owner: str | None = None) -> list[JobRecord]:
        with self._lock:
            recs = [r for r in self._jobs.values() if owner is None or r.owner == owner]
            recs = sorted(recs, key=lambda r: r.created_at, reverse=True)[:limit]
            return [self._view(r) for r in recs]

    def result(self, job_id: str) -> str | None:
        with self._lock:
            if job_id not in self._jobs:
                raise JobNotFound(job_id)
            return self._results.get(job_id)

    def delete(self, job_id: str) -> None:
        with self._lock:
            rec = self._jobs.get(job_id)
            if rec is None:
                raise JobNotFound(job_id)
            if not rec.status.is_final:
                raise JobNotFinished(job_id, rec.status.value)
            self._forget(job_id)

    def gc(self, now: float | None = None) -> GcReport:
        now = time.time() if now is None else now
        report = GcReport()
        with self._lock:
            for job_id, rec in list(self._jobs.items()):
                if rec.status.is_final and rec.updated_at < now - self.retention.job_ttl_s:
                    self._forget(job_id)
                    report.jobs.append(job_id)
            for scope, (_, _, until) in list(self._idem.items()):
                if until <= now:
                    del self._idem[scope]
            for stage, letters in self._dead.items():
                keep = [d for d in letters if d.at >= now - self.retention.dead_letter_ttl_s]
                report.dead_letters += len(letters) - len(keep)
                self._dead[stage] = keep
        return report

    def requeue(self, stage: str, entry_id: str) -> JobRecord:
        with self._lock:
            letters = self._dead.get(stage, [])
            d = next((x for x in letters if x.id == entry_id), None)
            rec = self._jobs.get(d.job_id) if d is not None and d.job_id else None
            payload = d.payload() if d is not None else None
            if d is None or rec is None or payload is None:
                raise JobNotFound(d.job_id if d is not None and d.job_id else entry_id)
            letters.remove(d)
            rec.status, rec.stage, rec.attempts, rec.error = JobStatus.queued, stage, 0, None
            rec.cancel_requested, rec.updated_at = False, time.time()
            self._enqueue(rec.id, stage, json.dumps(payload))
            return rec.model_copy(deep=True)

    def stats(self) -> dict:
        now = time.monotonic()
        with self._lock:
            stages = {}
            for stage in set(self._ready) | set(self._dead) | {m.stage for m in self._leased.values()}:
                ready = self._ready.get(stage, deque())
                waiting = [m for m in ready] + [m for m in self._leased.values() if m.stage == stage]
                stages[stage] = {"ready": sum(1 for m in ready if m.due <= now),
                                 "pending": sum(1 for m in self._leased.values() if m.stage == stage),
                                 "delayed": sum(1 for m in ready if m.due > now),
                                 "dead": len(self._dead.get(stage, [])),
                                 "oldest_s": max((now - m.born for m in waiting), default=0.0)}
            jobs: dict[str, int] = {}
            for rec in self._jobs.values():
                jobs[rec.status.value] = jobs.get(rec.status.value, 0) + 1
        return {"stages": stages, "jobs": jobs}

    def cancel(self, job_id: str) -> JobRecord:
        with self._lock:
            rec = self._jobs.get(job_id)
            if rec is None:
                raise JobNotFound(job_id)
            if rec.status.is_final:
                return rec.model_copy(deep=True)
            rec.cancel_requested = True
            if rec.status == JobStatus.queued:
                self._finish(rec, JobStatus.cancelled, error="cancelled before it started")
            rec.updated_at = time.time()
            return rec.model_copy(deep=True)

    def ping(self) -> bool:
        return True

    # ---------------------------------------------------------------- worker side
    def claim(self, stage: str, consumer: str, *, block_s: float = 1.0) -> Delivery | None:
        deadline = time.monotonic() + max(0.0, block_s)
        with self._lock:
            while True:
                msg = self._next(stage)
                if msg is not None:
                    return self._deliver(msg, consumer)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(min(left, 0.05))

    def _next(self, stage: str) -> _Msg | None:
        now = time.monotonic()
        for m in list(self._leased.values()):  # reclaim expired leases first
            if m.stage == stage and m.lease_until <= now:
                del self._leased[m.id]
                return m
        ready = self._ready.get(stage, deque())
        for _ in range(len(ready)):
            m = ready.popleft()
            if m.due <= now:
                return m
            ready.append(m)
        return None

    def _deliver(self, msg: _Msg, consumer: str) -> Delivery | None:
        rec = self._jobs.get(msg.job_id)
        if rec is not None and rec.stage != msg.stage and not rec.status.is_final:
            return None  # a duplicate of a stage already committed: dropped
        if rec is None or rec.cancel_requested or rec.status.is_final:
            if rec is not None and not rec.status.is_final:
                self._finish(rec, JobStatus.cancelled, error="cancelled before it started")
            return None  # dropped: a cancelled job never starts
        payload = json.loads(msg.data)
        sid, st = shard_id(payload), self._shards.get(msg.job_id, {}).get(msg.stage)
        if sid and (st is None or sid in st["out"]):
            return None  # a duplicate of a committed shard (or of a reduce whose split is gone): dropped
        if sid == REDUCE:
            payload["shard"]["outputs"] = dict(st["out"])
        msg.deliveries += 1
        if msg.deliveries > self.max_attempts:  # it killed every worker that took it
            self._to_dead(msg, f"delivered {msg.deliveries - 1} times without completing (workers died)")
            return None
        msg.consumer = consumer
        msg.lease_until = time.monotonic() + self.lease_s
        self._leased[msg.id] = msg
        rec.status, rec.stage, rec.attempts, rec.updated_at = JobStatus.running, msg.stage, msg.deliveries, time.time()
        return Delivery(job_id=msg.job_id, stage=msg.stage, attempt=msg.deliveries, payload=payload,
                        delivery_id=msg.id, consumer=consumer)

    def _held(self, d: Delivery) -> _Msg | None:
        """The message while ``d``'s consumer still holds it (an expired lease not yet reclaimed by
        another worker still counts, as in Redis)."""
        m = self._leased.get(d.delivery_id)
        if m is None or m.consumer != d.consumer:
            return None
        return m

    def renew(self, delivery: Delivery) -> bool:
        with self._lock:
            m = self._held(delivery)
            if m is None:
                return False
            if self._jobs[m.job_id].cancel_requested:
                return False
            m.lease_until = time.monotonic() + self.lease_s
            return True

    def progress(self, delivery: Delivery, done: int, total: int | None = None, message: str | None = None) -> None:
        with self._lock:
            if self._held(delivery) is None:
                return
            rec = self._jobs[delivery.job_id]
            rec.progress[progress_key(delivery.stage, delivery.payload)] = StageProgress(done=done, total=total,
                                                                                         message=message)
            rec.updated_at = time.time()

    def complete(self, delivery: Delivery, *, handoff: dict | None = None, result: dict | None = None,
                 summary: dict | None = None, shards: list[dict] | None = None) -> bool:
        sid = shard_id(delivery.payload)
        if shards is not None:
            shards = check_shards(shards)
            if sid:
                raise QueueError(f"shards: a shard ({sid}) cannot split its stage again")
        with self._lock:
            m = self._held(delivery)
            if m is None:
                return False
            del self._leased[m.id]
            rec = self._jobs[m.job_id]
            if rec.cancel_requested:
                self._finish(rec, JobStatus.cancelled, error="cancelled while running")
                return False
            if rec.stage != m.stage:  # another delivery of this stage committed first
                return False
            if shards is not None:
                return self._split(rec, m, handoff, shards)
            if sid and sid != REDUCE:
                return self._commit_shard(rec, m, sid, handoff)
            nxt = next_stage(rec.kind, m.stage)
            if nxt is None:
                if result is not None:
                    self._results[m.job_id] = json.dumps(result)
                rec.summary = summary
                self._finish(rec, JobStatus.succeeded)
            else:
                job = json.loads(m.data)["job"]
                rec.status, rec.stage, rec.attempts, rec.updated_at = JobStatus.queued, nxt, 0, time.time()
                self._enqueue(m.job_id, nxt, json.dumps({"job": job, "handoff": handoff}))
            return True

    def release(self, delivery: Delivery) -> None:
        with self._lock:
            m = self._held(delivery)
            if m is not None:
                m.lease_until = 0.0  # expired: the next claim of the stage takes it
                self._jobs[m.job_id].status = JobStatus.queued
                self._lock.notify_all()

    def fail(self, delivery: Delivery, reason: str, *, retry: bool = True, user_error: bool = False) -> None:
        with self._lock:
            m = self._held(delivery)
            if m is None:
                return
            del self._leased[m.id]
            rec = self._jobs[m.job_id]
            if rec.cancel_requested:
                self._finish(rec, JobStatus.cancelled, error="cancelled while running")
            elif user_error:
                self._finish(rec, JobStatus.failed, error=f"invalid job at {m.stage}: {reason}")
            elif retry and m.deliveries < self.max_attempts:
                m.consumer, m.due = None, time.monotonic() + self.backoff_s(m.deliveries)
                rec.status, rec.error, rec.updated_at = JobStatus.queued, reason, time.time()
                self._ready.setdefault(m.stage, deque()).append(m)
                self._lock.notify_all()
            else:
                self._to_dead(m, reason)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._lock:
            m = self._leased.pop(delivery.delivery_id, None)
            if m is not None:
                self._to_dead(m, reason)

    def dead_letters(self, stage: str) -> list[DeadLetter]:
        with self._lock:
            return list(self._dead.get(stage, []))

    def pending(self, stage: str) -> int:
        with self._lock:
            return sum(1 for m in self._leased.values() if m.stage == stage)

    # ---------------------------------------------------------------- internals (lock held)
    def _enqueue(self, job_id: str, stage: str, data: str) -> None:
        self._ready.setdefault(stage, deque()).append(_Msg(f"{next(self._ids)}-0", job_id, stage, data,
                                                           born=time.monotonic()))
        self._lock.notify_all()

    def _view(self, rec: JobRecord) -> JobRecord:
        out = rec.model_copy(deep=True)
        split = {stage: (len(st["out"]), st["total"]) for stage, st in self._shards.get(rec.id, {}).items()}
        if split:
            out.progress = merged_progress(out.progress, split)
        return out

    def _split(self, rec: JobRecord, m: _Msg, handoff, shards: list[dict]) -> bool:
        job = json.loads(m.data)["job"]
        bodies = shard_payloads(job, handoff, shards)
        k = self.max_shards_in_flight
        self._shards.setdefault(m.job_id, {})[m.stage] = {"total": len(bodies), "out": {}, "wait": deque(bodies[k:]),
                                                          "job": job, "handoff": handoff}
        for body in bodies[:k]:
            self._enqueue(m.job_id, m.stage, body)
        rec.status, rec.attempts, rec.updated_at = JobStatus.queued, 0, time.time()
        return True

    def _commit_shard(self, rec: JobRecord, m: _Msg, sid: str, output) -> bool:
        st = self._shards.get(m.job_id, {}).get(m.stage)
        if st is None or sid in st["out"]:
            return False  # committed before
        st["out"][sid] = output
        if st["wait"]:
            self._enqueue(m.job_id, m.stage, st["wait"].popleft())
        if len(st["out"]) == st["total"]:
            self._enqueue(m.job_id, m.stage, reduce_payload(st["job"], st["handoff"], st["total"]))
            rec.status = JobStatus.queued
        rec.updated_at = time.time()
        return True

    def _forget(self, job_id: str) -> None:
        self._shards.pop(job_id, None)
        del self._jobs[job_id]
        self._results.pop(job_id, None)
        for scope, (jid, _, _) in list(self._idem.items()):
            if jid == job_id:
                del self._idem[scope]

    def _finish(self, rec: JobRecord, status: JobStatus, error: str | None = None) -> None:
        rec.status, rec.stage, rec.updated_at = status, None, time.time()
        if error is not None:
            rec.error = error

    def _to_dead(self, m: _Msg, reason: str) -> None:
        self._dead.setdefault(m.stage, []).append(
            DeadLetter(job_id=m.job_id, stage=m.stage, reason=reason, raw={"job": m.job_id, "data": m.data},
                       id=f"{next(self._ids)}-0", at=time.time()))
        rec = self._jobs.get(m.job_id)
        if rec is not None and not rec.status.is_final:
            self._finish(rec, JobStatus.failed, error=f"dead-lettered at {m.stage}: {reason}")
