"""The Redis queue's lifecycle and inspection: results, ``delete``, ``gc`` (retention), dead letters
(list, ``requeue``) and ``stats`` for the metrics. A mixin of ``RedisQueue`` (``redis_queue.py``),
which owns the keys (see ``scripts.py``) and the connection."""

from __future__ import annotations

import json
import time

from neuroscribe.jobs import JobStatus
from neuroscribe.service.queue.base import (
    DeadLetter,
    GcReport,
    JobNotFinished,
    JobNotFound,
    JobRecord,
    all_stages,
)

__all__ = ["RedisLifecycle", "GROUP", "decode"]

GROUP = "workers"
_FINAL = {s.value for s in JobStatus if s.is_final}
_BATCH = 500


def decode(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _entry_time(entry_id: str) -> float:
    return int(entry_id.split("-", 1)[0]) / 1000.0


class RedisLifecycle:
    """Needs ``self.r``, ``self.prefix``, ``self.retention``, ``self._scripts``, ``self._job``, ``self._shard_keys``,
    ``self._stream``, ``self._delayed``, ``self._dead``, ``self._group`` and ``self.get``."""

    def _result_key(self, job_id: str) -> str:
        return f"{self.prefix}:result:{job_id}"

    def _index(self) -> str:
        return f"{self.prefix}:jobs"

    def _owner_index(self, owner: str) -> str:
        return f"{self.prefix}:jobs:u:{owner}"

    # ---------------------------------------------------------------- results
    def result(self, job_id: str) -> str | None:
        pipe = self.r.pipeline(transaction=False)
        pipe.exists(self._job(job_id))
        pipe.get(self._result_key(job_id))
        exists, text = pipe.execute()
        if not exists:
            raise JobNotFound(job_id)
        return None if text is None else decode(text)

    # ---------------------------------------------------------------- lifecycle
    def _delete(self, job_id: str, cutoff: float | None) -> str:
        got = decode(self._scripts["DELETE"](
            keys=[self._job(job_id), self._result_key(job_id), self._index()],
            args=[job_id, f"{self.prefix}:jobs:u:", "" if cutoff is None else repr(cutoff)]))
        if got == "deleted":  # a split stage's outputs and waiting shards (a failed or cancelled job's)
            self.r.delete(*self._shard_keys(job_id))
        return got

    def delete(self, job_id: str) -> None:
        got = self._delete(job_id, None)
        if got == "":
            raise JobNotFound(job_id)
        if got != "deleted":
            raise JobNotFinished(job_id, got)

    def gc(self, now: float | None = None) -> GcReport:
        now = time.time() if now is None else now
        cutoff = now - self.retention.job_ttl_s
        report = GcReport()
        start = 0
        while True:  # finished jobs are never created after the cutoff: only ids created before it
            ids = [decode(x) for x in self.r.zrangebyscore(self._index(), "-inf", cutoff, start=start, num=_BATCH)]
            if not ids:
                break
            pipe = self.r.pipeline(transaction=False)
            for i in ids:
                pipe.hmget(self._job(i), "status", "updated_at")
            kept = 0
            for job_id, (status, updated) in zip(ids, pipe.execute()):
                if status is None:  # the record is gone (deleted by hand): prune the index
                    report.index_entries += int(self.r.zrem(self._index(), job_id))
                elif decode(status) in _FINAL and float(updated) < cutoff and self._delete(job_id, cutoff) == "deleted":
                    report.jobs.append(job_id)
                else:
                    kept += 1
            start += kept
        min_id = int((now - self.retention.dead_letter_ttl_s) * 1000)
        for stage in all_stages():
            report.dead_letters += int(self.r.xtrim(self._dead(stage), minid=min_id, approximate=False))
        return report

    # ---------------------------------------------------------------- dead letters
    def dead_letters(self, stage: str) -> list[DeadLetter]:
        out = []
        for entry_id, f in self.r.xrange(self._dead(stage)):
            f = {decode(k): decode(v) for k, v in f.items()}
            entry_id = decode(entry_id)
            out.append(DeadLetter(job_id=f.get("job") or None, stage=f.get("stage", stage), reason=f.get("reason", ""),
                                  raw=f, id=entry_id, at=_entry_time(entry_id)))
        return out

    def requeue(self, stage: str, entry_id: str) -> JobRecord:
        found = self.r.xrange(self._dead(stage), entry_id, entry_id) if entry_id else []
        if not found:
            raise JobNotFound(entry_id)
        f = {decode(k): decode(v) for k, v in found[0][1].items()}
        letter = DeadLetter(job_id=f.get("job") or None, stage=stage, reason=f.get("reason", ""), raw=f, id=entry_id)
        payload = letter.payload()
        if letter.job_id is None or payload is None:
            raise JobNotFound(letter.job_id or entry_id)
        self._group(stage)
        got = int(self._scripts["REQUEUE"](
            keys=[self._dead(stage), self._stream(stage), self._job(letter.job_id)],
            args=[entry_id, json.dumps(payload), repr(time.time()), stage, letter.job_id]))
        if got != 1:
            raise JobNotFound(letter.job_id if got == -1 else entry_id)
        return self.get(letter.job_id)

    # ---------------------------------------------------------------- metrics
    def stats(self) -> dict:
        stages = all_stages()
        for stage in stages:
            self._group(stage)
        pipe = self.r.pipeline(transaction=False)
        for stage in stages:
            pipe.xlen(self._stream(stage))
            pipe.xpending(self._stream(stage), GROUP)
            pipe.zcard(self._delayed(stage))
            pipe.xlen(self._dead(stage))
            pipe.xrange(self._stream(stage), count=1)
        got = pipe.execute()
        now = time.time()
        out = {}
        for i, stage in enumerate(stages):
            length, pending, delayed, dead, first = got[5 * i:5 * i + 5]
            pending = int(pending["pending"])
            oldest = now - _entry_time(decode(first[0][0])) if first else 0.0
            out[stage] = {"ready": max(0, int(length) - pending), "pending": pending, "delayed": int(delayed),
                          "dead": int(dead), "oldest_s": max(0.0, oldest)}
        jobs: dict[str, int] = {}
        start = 0
        while True:
            ids = self.r.zrange(self._index(), start, start + 4 * _BATCH - 1)
            if not ids:
                break
            pipe = self.r.pipeline(transaction=False)
            for i in ids:
                pipe.hget(self._job(decode(i)), "status")
            for status in pipe.execute():
                if status is not None:
                    jobs[decode(status)] = jobs.get(decode(status), 0) + 1
            start += len(ids)
        return {"stages": out, "jobs": jobs}
