"""``JobQueue`` on Redis Streams: one stream per stage, one consumer group (``workers``) shared by
every worker of the stage, one message at a time per worker (``XREADGROUP COUNT 1``).

* Lease = the pending entry's idle time: ``renew`` resets it (``XCLAIM ... JUSTID``, only while the
  caller still owns the entry), and ``claim`` takes over entries idle longer than ``lease_s``
  (``XAUTOCLAIM``, on a timer of ``sweep_s`` = lease/4, at most 1 s, which also moves due retries
  into the stream): a dead worker's job is reclaimed within ``lease_s + sweep_s``. The common
  path of a job through a stage is three round trips: XREADGROUP, START, COMPLETE.
* Attempts = failures recorded on the message + deliveries counted by Redis; beyond
  ``max_attempts`` the message is dead-lettered (a poison message that kills every worker ends
  there too, instead of looping).
* ``complete`` / ``fail`` / discards are Lua scripts (``scripts.py``): atomic, and no-ops for a
  caller that lost its lease. Acknowledged entries are deleted (``XDEL``); nothing is ever trimmed
  by length, so no pending entry can be lost to trimming.
* Payloads are JSON strings; a message that is not valid JSON or lacks a field is dead-lettered
  with the reason, never retried.
"""

from __future__ import annotations

import json
import time

from neuroscribe.jobs import JobStatus
from neuroscribe.service.queue.base import (
    all_stages,
    Delivery,
    IdempotencyConflict,
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
from neuroscribe.service.queue import scripts
from neuroscribe.service.queue.shards import (REDUCE, check_shards, merged_progress, progress_key, reduce_payload,
                                              shard_id, shard_payloads)
from neuroscribe.service.queue.redis_ops import GROUP, RedisLifecycle, decode as _s

__all__ = ["RedisQueue", "GROUP"]


class RedisQueue(RedisLifecycle, JobQueue):
    def __init__(self, client, *, prefix: str = "neuroscribe", lease_s: float = 30.0, max_attempts: int = 3,
                 retention: Retention | None = None, max_shards_in_flight: int = 4):
        self.max_shards_in_flight = max(1, int(max_shards_in_flight))
        self.r = client
        self.prefix = prefix
        self.lease_s = float(lease_s)
        self.max_attempts = int(max_attempts)
        self.retention = retention or Retention()
        self._scripts = {name: client.register_script(getattr(scripts, name))
                         for name in ("SUBMIT", "RENEW", "RELEASE", "COMPLETE", "FAIL", "PROMOTE", "DISCARD", "CANCEL",
                                      "START", "DELETE", "REQUEUE", "SPLIT", "SHARD_DONE")}
        self._groups: set[str] = set()
        # expired leases and due retries are looked for at most every sweep_s (and whenever a claim
        # finds one): a dead worker's job is taken over within lease_s + sweep_s of its last renewal
        self.sweep_s = min(1.0, self.lease_s / 4)
        self._sweep_at: dict[str, float] = {}

    @classmethod
    def from_url(cls, url: str, **kw) -> "RedisQueue":
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=10),
                   **kw)

    # ---------------------------------------------------------------- keys
    def _job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _stream(self, stage: str) -> str:
        return f"{self.prefix}:s:{stage}"

    def _delayed(self, stage: str) -> str:
        return f"{self.prefix}:delayed:{stage}"

    def _dead(self, stage: str) -> str:
        return f"{self.prefix}:dead:{stage}"

    def _shout(self, job_id: str, stage: str) -> str:
        return f"{self.prefix}:shout:{job_id}:{stage}"

    def _shwait(self, job_id: str, stage: str) -> str:
        return f"{self.prefix}:shwait:{job_id}:{stage}"

    def _shred(self, job_id: str, stage: str) -> str:
        return f"{self.prefix}:shred:{job_id}:{stage}"

    def _shard_keys(self, job_id: str, stages=None) -> list[str]:
        return [k for stage in (stages or all_stages())
                for k in (self._shout(job_id, stage), self._shwait(job_id, stage), self._shred(job_id, stage))]

    def _group(self, stage: str) -> None:
        if stage in self._groups:
            return
        import redis

        try:
            self.r.xgroup_create(self._stream(stage), GROUP, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._groups.add(stage)

    def ensure_groups(self) -> None:
        for stage in all_stages():
            self._group(stage)

    # ---------------------------------------------------------------- client side
    def submit_new(self, job: dict, *, idempotency_key: str | None = None,
                   owner: str | None = None) -> tuple[JobRecord, bool]:
        kind = job.get("kind")
        stage = first_stage(kind)
        self._group(stage)
        job_id = new_job_id()
        idem = (f"{self.prefix}:idem:{idempotency_scope(owner, idempotency_key)}"
                if idempotency_key is not None else "")
        got = _s(self._scripts["SUBMIT"](
            keys=[self._job(job_id), self._index(), idem, self._stream(stage),
                  self._owner_index(owner) if owner else ""],
            args=[job_id, kind, stage, json.dumps({"job": job, "handoff": None}), repr(time.time()),
                  idempotency_key or "", job_hash(job), max(1, int(self.retention.idempotency_ttl_s * 1000)),
                  owner or "", f"{self.prefix}:job:"]))
        if got.startswith("conflict:"):
            raise IdempotencyConflict(idempotency_key, got.removeprefix("conflict:"))
        return self.get(got), got == job_id

    def get(self, job_id: str) -> JobRecord:
        h = self.r.hgetall(self._job(job_id))
        if not h:
            raise JobNotFound(job_id)
        return self._record(h)

    @staticmethod
    def _record(h: dict) -> JobRecord:
        h = {_s(k): _s(v) for k, v in h.items()}
        progress = {k.removeprefix("progress:"): StageProgress.model_validate_json(v)
                    for k, v in h.items() if k.startswith("progress:")}
        split = {k.removeprefix("shards:"): (int(h.get("shards_done:" + k.removeprefix("shards:"), 0)), int(v))
                 for k, v in h.items() if k.startswith("shards:")}
        if split:
            progress = merged_progress(progress, split)
        return JobRecord(
            id=h["id"], kind=h["kind"], status=JobStatus(h["status"]), stage=h.get("stage") or None,
            attempts=int(h.get("attempts", 0)), progress=progress, error=h.get("error") or None,
            summary=json.loads(h["summary"]) if h.get("summary") else None, owner=h.get("owner") or None,
            idempotency_key=h.get("idem") or None, cancel_requested=h.get("cancel") == "1",
            created_at=float(h["created_at"]), updated_at=float(h["updated_at"]))

    def list(self, *, limit: int = 100, owner: str | None = None) -> list[JobRecord]:
        index = self._owner_index(owner) if owner is not None else self._index()
        ids = [_s(x) for x in self.r.zrevrange(index, 0, max(0, limit - 1))]
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(self._job(i))
        return [self._record(h) for h in pipe.execute() if h]

    def cancel(self, job_id: str) -> JobRecord:
        if not _s(self._scripts["CANCEL"](keys=[self._job(job_id)], args=[repr(time.time())])):
            raise JobNotFound(job_id)
        return self.get(job_id)

    def ping(self) -> bool:
        return bool(self.r.ping())

    # ---------------------------------------------------------------- worker side
    def claim(self, stage: str, consumer: str, *, block_s: float = 1.0) -> Delivery | None:
        self._group(stage)
        stream = self._stream(stage)
        entries = []
        now = time.monotonic()
        if now >= self._sweep_at.get(stage, 0.0):  # on a timer, not on every claim: 2 round trips saved
            self._sweep_at[stage] = now + self.sweep_s
            self._scripts["PROMOTE"](keys=[self._delayed(stage), stream], args=[int(time.time() * 1000), 100])
            lease_ms = int(self.lease_s * 1000)
            _, claimed, _ = self.r.xautoclaim(stream, GROUP, consumer, min_idle_time=lease_ms, start_id="0-0",
                                              count=1)
            entries = [e for e in claimed if e and e[1] is not None]
            if entries:
                self._sweep_at[stage] = now  # there may be more expired leases: look again next claim
        if not entries:
            got = self.r.xreadgroup(GROUP, consumer, {stream: ">"}, count=1, block=max(1, int(block_s * 1000)))
            entries = [e for _, es in got or [] for e in es]
        if not entries:
            return None
        msg_id, fields = entries[0]
        return self._deliver(stage, consumer, _s(msg_id), {_s(k): _s(v) for k, v in (fields or {}).items()})

    def _deliver(self, stage: str, consumer: str, msg_id: str, fields: dict) -> Delivery | None:
        job_id = fields.get("job", "")
        try:
            payload = json.loads(fields["data"])
            failures = int(fields.get("failures", 0))
            if not isinstance(payload, dict) or not job_id:
                raise ValueError("data must be a JSON object and job an id")
        except (KeyError, ValueError) as e:
            self._discard(stage, msg_id, job_id, f"malformed message: {type(e).__name__}: {e}", fields, dead=True)
            return None
        sid = shard_id(payload)
        code, attempt = (int(x) for x in self._scripts["START"](
            keys=[self._stream(stage), self._job(job_id), self._shout(job_id, stage)],
            args=[GROUP, msg_id, stage, failures, self.max_attempts, repr(time.time()), sid]))
        if code == -1:
            self._discard(stage, msg_id, job_id, f"no job {job_id!r} (its record is gone)", fields, dead=True)
            return None
        if code == -2:
            self._discard(stage, msg_id, job_id, f"delivered {attempt - 1} times without completing "
                                                 f"(workers died or the job failed)", fields, dead=True)
            return None
        if code == 0:
            self._discard(stage, msg_id, job_id, "cancelled", fields, dead=False)
            return None
        if sid == REDUCE:  # every shard's output, read once all committed (none can change now)
            payload["shard"]["outputs"] = {_s(k): json.loads(v)
                                           for k, v in self.r.hgetall(self._shout(job_id, stage)).items()}
        return Delivery(job_id=job_id, stage=stage, attempt=attempt, payload=payload, delivery_id=msg_id,
                        consumer=consumer)

    def _discard(self, stage, msg_id, job_id, reason, fields, *, dead: bool) -> None:
        self._scripts["DISCARD"](
            keys=[self._stream(stage), self._job(job_id) if job_id else "", self._dead(stage)],
            args=[GROUP, msg_id, stage, reason, json.dumps(fields), repr(time.time()), "dead" if dead else "drop"])

    def renew(self, delivery: Delivery) -> bool:
        got = self._scripts["RENEW"](keys=[self._stream(delivery.stage), self._job(delivery.job_id)],
                                     args=[GROUP, delivery.delivery_id, delivery.consumer, repr(time.time())])
        return int(got) == 1

    def progress(self, delivery: Delivery, done: int, total: int | None = None, message: str | None = None) -> None:
        value = StageProgress(done=done, total=total, message=message).model_dump_json()
        self.r.hset(self._job(delivery.job_id), mapping={f"progress:{progress_key(delivery.stage, delivery.payload)}": value,
                                                         "updated_at": repr(time.time())})

    def complete(self, delivery: Delivery, *, handoff: dict | None = None, result: dict | None = None,
                 summary: dict | None = None, shards: list[dict] | None = None) -> bool:
        sid = shard_id(delivery.payload)
        if shards is not None or (sid and sid != REDUCE):
            return self._complete_split(delivery, sid, handoff, shards)
        ok = self._complete(delivery, handoff, result, summary)
        if ok and sid == REDUCE:
            self.r.delete(*self._shard_keys(delivery.job_id, [delivery.stage]))
        return ok

    def _complete_split(self, d: Delivery, sid: str, handoff, shards) -> bool:
        """Split an ordinary delivery into shards, or commit a shard (``shards.py``)."""
        keys = [self._stream(d.stage), self._job(d.job_id), *self._shard_keys(d.job_id, [d.stage])]
        head = [GROUP, d.delivery_id, d.consumer, repr(time.time()), d.stage]
        if shards is not None:
            shards = check_shards(shards)
            if sid:
                raise QueueError(f"shards: a shard ({sid}) cannot split its stage again")
            bodies = shard_payloads(d.payload["job"], handoff, shards)
            reduce = reduce_payload(d.payload["job"], handoff, len(bodies))
            got = self._scripts["SPLIT"](keys=keys, args=head + [self.max_shards_in_flight, len(bodies), reduce,
                                                                 *bodies])
        else:  # the reduce's body was kept at the split: a shard's commit sends its output only
            got = self._scripts["SHARD_DONE"](keys=keys, args=head + [sid, json.dumps(handoff)])
        return int(got) == 1

    def _complete(self, delivery: Delivery, handoff, result, summary) -> bool:
        nxt = next_stage(delivery.payload["job"]["kind"], delivery.stage)
        if nxt is not None:
            self._group(nxt)
        data = json.dumps({"job": delivery.payload["job"], "handoff": handoff}) if nxt else ""
        got = self._scripts["COMPLETE"](
            keys=[self._stream(delivery.stage), self._job(delivery.job_id), self._stream(nxt or delivery.stage),
                  self._result_key(delivery.job_id)],
            args=[GROUP, delivery.delivery_id, delivery.consumer, repr(time.time()), nxt or "", data,
                  json.dumps(result) if nxt is None and result is not None else "", delivery.stage,
                  json.dumps(summary) if nxt is None and summary is not None else ""])
        return int(got) == 1

    def release(self, delivery: Delivery) -> None:
        self._sweep_at[delivery.stage] = 0.0  # other processes see it at their next sweep
        self._scripts["RELEASE"](keys=[self._stream(delivery.stage), self._job(delivery.job_id)],
                                 args=[GROUP, delivery.delivery_id, delivery.consumer, int(self.lease_s * 1000) + 1,
                                       repr(time.time())])

    def fail(self, delivery: Delivery, reason: str, *, retry: bool = True, user_error: bool = False) -> None:
        failures_before = delivery.attempt  # this delivery counts as a failure now
        member = ""
        due = 0
        if retry and not user_error and delivery.attempt < self.max_attempts:
            member = json.dumps({"job": delivery.job_id, "data": json.dumps(delivery.payload),
                                 "failures": failures_before, "at": time.time()})
            due = int((time.time() + self.backoff_s(delivery.attempt)) * 1000)
        self._scripts["FAIL"](
            keys=[self._stream(delivery.stage), self._job(delivery.job_id), self._delayed(delivery.stage),
                  self._dead(delivery.stage)],
            args=[GROUP, delivery.delivery_id, delivery.consumer, repr(time.time()), reason, member, due,
                  delivery.stage, json.dumps(delivery.payload), "1" if user_error else ""])

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._discard(delivery.stage, delivery.delivery_id, delivery.job_id, reason,
                      {"job": delivery.job_id, "data": json.dumps(delivery.payload)}, dead=True)

    def pending(self, stage: str) -> int:
        self._group(stage)
        return int(self.r.xpending(self._stream(stage), GROUP)["pending"])

    # ---------------------------------------------------------------- consumers
    def consumers(self, stage: str) -> list[dict]:
        self._group(stage)
        return [{_s(k): (_s(v) if isinstance(v, bytes) else v) for k, v in c.items()}
                for c in self.r.xinfo_consumers(self._stream(stage), GROUP)]

    def prune_consumers(self, stage: str, *, keep: str | None = None, min_idle_s: float | None = None) -> int:
        """Delete consumers of ``stage`` that hold no pending entry and were idle for ``min_idle_s``
        (default: two leases), so that restarting workers does not grow the consumer list."""
        idle_ms = int((2 * self.lease_s if min_idle_s is None else min_idle_s) * 1000)
        gone = 0
        for c in self.consumers(stage):
            if c["name"] != keep and int(c["pending"]) == 0 and int(c["idle"]) >= idle_ms:
                gone += int(self.r.xgroup_delconsumer(self._stream(stage), GROUP, c["name"]) == 0)
        return gone

    def leave(self, stage: str, consumer: str) -> bool:
        """Remove ``consumer`` from the group if it holds nothing (a worker's graceful exit)."""
        for c in self.consumers(stage):
            if c["name"] == consumer and int(c["pending"]) == 0:
                self.r.xgroup_delconsumer(self._stream(stage), GROUP, consumer)
                return True
        return False
