"""Sharded stages: one job's stage split into shard messages that any worker of the stage may take.

The contract (both queues, tested by ``tests/integration/test_queue_shards.py``):

1. **Split.** A stage's ordinary delivery may answer ``complete(d, handoff=H, shards=[spec, ...])``
   instead of handing on: in one atomic step the delivery is acknowledged and one message per spec is
   made, with fixed shard ids ``"0000"``, ``"0001"``, ... (the spec's index), each carrying the job,
   ``H`` and ``{"id", "index", "of", "spec"}`` as its ``shard``. At most ``max_shards_in_flight`` of
   one job's shards sit in the stage's stream at a time; the rest wait in the job's own list and
   enter the stream as earlier ones commit, so one big job never fills the stream ahead of small ones.
2. **Shards.** Any worker of the stage takes any shard. A shard commits once: ``complete(d,
   handoff=OUT)`` records ``OUT`` under the shard's id only while the caller holds the lease and only
   if no delivery of that shard committed before (a duplicate is dropped when claimed, and refused
   when committed). Renewal, cancellation, retries with backoff and dead letters work per shard as
   for any delivery; a shard that is dead-lettered fails the job (the other shards are then dropped).
3. **Reduce.** The commit of the last shard queues one reduce message (``shard = {"id": "reduce",
   "of": N}``) in the same atomic step (a count kept with the outputs), so the reduce is queued exactly
   once. Its delivery carries every shard's output (``shard["outputs"]``: id -> OUT, added when it is
   claimed); it commits like an ordinary delivery (hand-off to the next stage, or the result).
4. **Progress** of a sharded stage sums its shards' ``done`` and ``total`` and says how many shards
   committed.

Shard outputs live in the queue (a hash per job and stage): keep them small (counts, file names);
shard results belong in the job's artefacts.
"""

from __future__ import annotations

import json

from neuroscribe.service.queue.base import QueueError, StageProgress

__all__ = ["REDUCE", "MAX_SHARDS", "DEFAULT_IN_FLIGHT", "shard_of", "shard_id", "shard_ids", "check_shards",
           "shard_payloads", "reduce_payload", "progress_key", "merged_progress"]

REDUCE = "reduce"
MAX_SHARDS = 10_000
DEFAULT_IN_FLIGHT = 4  # shards of one job in a stage's stream at a time


def shard_of(payload: dict) -> dict | None:
    """The ``shard`` of a delivery's payload (None: an ordinary delivery)."""
    s = payload.get("shard") if isinstance(payload, dict) else None
    return s if isinstance(s, dict) else None


def shard_id(payload: dict) -> str:
    """The shard's id ('' for an ordinary delivery, ``REDUCE`` for the reduce)."""
    s = shard_of(payload)
    return str(s.get("id", "")) if s else ""


def shard_ids(n: int) -> list[str]:
    return [f"{i:04d}" for i in range(n)]


def check_shards(shards) -> list[dict]:
    """The specs of a split, checked: 1 to ``MAX_SHARDS`` JSON objects."""
    if not isinstance(shards, list) or not 1 <= len(shards) <= MAX_SHARDS:
        n = len(shards) if isinstance(shards, list) else type(shards).__name__
        raise QueueError(f"shards: expected a list of 1 to {MAX_SHARDS} specs, got {n}")
    for i, s in enumerate(shards):
        if not isinstance(s, dict):
            raise QueueError(f"shards[{i}]: expected an object, got {type(s).__name__}")
    json.dumps(shards)  # JSON only on the wire
    return shards


def shard_payloads(job: dict, handoff, shards: list[dict]) -> list[str]:
    """One message body per shard (JSON text), in shard order."""
    n = len(shards)
    return [json.dumps({"job": job, "handoff": handoff, "shard": {"id": sid, "index": i, "of": n, "spec": spec}})
            for i, (sid, spec) in enumerate(zip(shard_ids(n), shards))]


def reduce_payload(job: dict, handoff, n: int) -> str:
    """The reduce message's body (its ``outputs`` are added when it is claimed)."""
    return json.dumps({"job": job, "handoff": handoff, "shard": {"id": REDUCE, "of": n}})


def progress_key(stage: str, payload: dict) -> str:
    """Where a delivery's progress is kept: the stage, or ``stage#shard`` for a shard."""
    sid = shard_id(payload)
    return f"{stage}#{sid}" if sid and sid != REDUCE else stage


def merged_progress(progress: dict[str, StageProgress], shards: dict[str, tuple[int, int]]) -> dict[str, StageProgress]:
    """Per-shard progress (``stage#id``) summed into its stage's; ``shards``: stage -> (committed, total)."""
    out = {k: v for k, v in progress.items() if "#" not in k}
    parts: dict[str, list[StageProgress]] = {}
    for k, v in progress.items():
        if "#" in k:
            parts.setdefault(k.split("#", 1)[0], []).append(v)
    for stage, (done, total) in shards.items():
        got = parts.get(stage, [])
        totals = [p.total for p in got]
        known = len(got) == total and all(t is not None for t in totals)
        msg = f"{done} of {total} shards committed"
        if stage in out and out[stage].message and done >= total:  # the reduce's own progress
            msg = f"{msg}; reduce: {out[stage].message}"
        out[stage] = StageProgress(done=sum(p.done for p in got), total=sum(totals) if known else None, message=msg)
    return out
