"""Job queues between the API and the stage workers (see ``base`` for the contract).

``make_queue(url)``: ``memory://`` (one process) or ``redis://HOST:PORT/DB`` (Redis Streams; key
prefix from ``?prefix=NAME``, default ``neuroscribe``).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from neuroscribe.service.queue.base import (
    DeadLetter,
    Delivery,
    JobNotFound,
    JobQueue,
    JobRecord,
    QueueError,
    GcReport,
    IdempotencyConflict,
    JobNotFinished,
    Retention,
    StageProgress,
    all_stages,
    first_stage,
    next_stage,
    stages_of,
)
from neuroscribe.service.queue.memory import InMemoryQueue

__all__ = ["stages_of", "all_stages", "DeadLetter", "Delivery", "JobNotFound", "JobQueue", "JobRecord", "QueueError",
           "StageProgress", "first_stage", "next_stage", "InMemoryQueue", "make_queue", "GcReport", "IdempotencyConflict",
           "JobNotFinished", "Retention"]


def make_queue(url: str, *, lease_s: float = 30.0, max_attempts: int = 3, retention: Retention | None = None,
               max_shards_in_flight: int = 4) -> JobQueue:
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return InMemoryQueue(lease_s=lease_s, max_attempts=max_attempts, retention=retention,
                             max_shards_in_flight=max_shards_in_flight)
    if parts.scheme in ("redis", "rediss", "unix"):
        from neuroscribe.service.queue.redis_queue import RedisQueue

        prefix = parse_qs(parts.query).get("prefix", ["neuroscribe"])[0]
        base_url = url.split("?", 1)[0]
        return RedisQueue.from_url(base_url, prefix=prefix, lease_s=lease_s, max_attempts=max_attempts,
                                   retention=retention, max_shards_in_flight=max_shards_in_flight)
    raise QueueError(f"queue URL {url!r}: expected memory:// or redis://HOST:PORT/DB")
