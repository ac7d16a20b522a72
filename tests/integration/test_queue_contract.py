"""The JobQueue contract, run against both implementations: in-memory and Redis Streams (a real
Redis: the local one, or a redis-server started for the tests; each test has its own key prefix)."""

import json
import threading
import time

import pytest

from neuroscribe.jobs import JobStatus
from neuroscribe.service.queue import InMemoryQueue, JobNotFound, QueueError
from redis_server import delete_prefix, redis_url, unique_prefix

LEASE = 0.3
JOB = {"kind": "experts", "concepts": [{"name": "cat"}]}


@pytest.fixture(params=["memory", "redis"])
def queue(request):
    if request.param == "memory":
        yield InMemoryQueue(lease_s=LEASE, max_attempts=3)
        return
    import redis

    from neuroscribe.service.queue.redis_queue import RedisQueue

    client = redis.Redis.from_url(redis_url())
    prefix = unique_prefix()
    q = RedisQueue(client, prefix=prefix, lease_s=LEASE, max_attempts=3)
    q.backoff_s = lambda attempt: 0.05  # fast retries in tests
    yield q
    delete_prefix(client, prefix)


def _fast(queue):
    if isinstance(queue, InMemoryQueue):
        queue.backoff_s = lambda attempt: 0.05
    return queue


def _through(queue, job_id, result=None):
    """Drive a job through its three stages by hand; returns the deliveries."""
    seen = []
    for stage, handoff in (("generate", {"sentences": "s.jsonl"}), ("activate", {"responses": "r/"}),
                           ("analyse", None)):
        d = queue.claim(stage, "w", block_s=0.5)
        assert d is not None and d.job_id == job_id and d.stage == stage
        seen.append(d)
        kw = {"handoff": handoff} if handoff is not None else {"result": result or {"ok": True}}
        assert queue.complete(d, **kw)
    return seen


def test_submit_then_three_stages_hand_off_and_succeed(queue):
    rec = queue.submit(JOB)
    assert rec.status == JobStatus.queued and rec.stage == "generate" and rec.kind == "experts"
    ds = _through(queue, rec.id, result={"answer": 42})
    assert ds[0].payload == {"job": JOB, "handoff": None}
    assert ds[1].payload["handoff"] == {"sentences": "s.jsonl"} and ds[1].payload["job"] == JOB
    assert ds[2].payload["handoff"] == {"responses": "r/"}
    done = queue.get(rec.id)
    assert done.status == JobStatus.succeeded and done.stage is None
    assert json.loads(queue.result(rec.id)) == {"answer": 42}  # the result: beside the record, not in it
    assert "result" not in done.model_dump()
    assert all(queue.pending(s) == 0 for s in ("generate", "activate", "analyse"))


def test_unknown_job_and_kind(queue):
    with pytest.raises(JobNotFound):
        queue.get("0" * 32)
    with pytest.raises(JobNotFound):
        queue.cancel("0" * 32)
    with pytest.raises(QueueError, match="nothing"):
        queue.submit({"kind": "nothing"})


def test_one_message_at_a_time_and_status_running_with_progress(queue):
    a, b = queue.submit(JOB), queue.submit(JOB)
    d1 = queue.claim("generate", "w1", block_s=0.2)
    d2 = queue.claim("generate", "w2", block_s=0.2)
    assert {d1.job_id, d2.job_id} == {a.id, b.id}
    assert queue.claim("generate", "w3", block_s=0.1) is None
    assert queue.pending("generate") == 2
    queue.progress(d1, 3, 10, "writing sentences")
    rec = queue.get(d1.job_id)
    assert rec.status == JobStatus.running and rec.attempts == 1
    assert rec.progress["generate"].done == 3 and rec.progress["generate"].total == 10


def test_idempotency_key_gives_one_job(queue):
    a, created_a = queue.submit_new(JOB, idempotency_key="abc")
    b, created_b = queue.submit_new(JOB, idempotency_key="abc")
    assert created_a and not created_b
    c = queue.submit(JOB, idempotency_key="other")
    assert a.id == b.id != c.id
    assert queue.claim("generate", "w", block_s=0.2) is not None
    assert queue.claim("generate", "w", block_s=0.2) is not None
    assert queue.claim("generate", "w", block_s=0.1) is None  # two jobs, not three


def test_expired_lease_is_reclaimed_and_only_the_new_holder_commits(queue):
    rec = queue.submit(JOB)
    first = queue.claim("generate", "dead-worker", block_s=0.2)
    time.sleep(LEASE * 1.5)
    second = queue.claim("generate", "live-worker", block_s=0.2)
    assert second is not None and second.job_id == rec.id and second.attempt == 2
    assert not queue.renew(first)
    assert not queue.complete(first, handoff={"from": "dead"})  # nothing written
    assert queue.complete(second, handoff={"from": "live"})
    d = queue.claim("activate", "w", block_s=0.2)
    assert d.payload["handoff"] == {"from": "live"}
    assert queue.claim("activate", "w", block_s=0.1) is None  # exactly one hand-off


def test_renewed_lease_is_not_reclaimed(queue):
    queue.submit(JOB)
    d = queue.claim("generate", "w1", block_s=0.2)
    for _ in range(5):  # 5 leases long, renewed
        time.sleep(LEASE / 3)
        assert queue.renew(d)
        time.sleep(LEASE / 3)
        assert queue.renew(d)
        assert queue.claim("generate", "w2", block_s=0.01) is None
    assert queue.complete(d, handoff={})


def test_failures_retry_with_backoff_then_dead_letter(queue):
    _fast(queue)
    rec = queue.submit(JOB)
    attempts = []
    for _ in range(3):
        d = None
        for _ in range(40):
            d = queue.claim("generate", "w", block_s=0.05)
            if d:
                break
        assert d is not None
        attempts.append(d.attempt)
        queue.fail(d, f"boom {d.attempt}")
    assert attempts == [1, 2, 3]
    time.sleep(0.1)
    assert queue.claim("generate", "w", block_s=0.1) is None
    final = queue.get(rec.id)
    assert final.status == JobStatus.failed and "boom 3" in final.error
    dead = queue.dead_letters("generate")
    assert [x.job_id for x in dead] == [rec.id] and "boom 3" in dead[0].reason


def test_a_user_error_fails_the_job_at_once_and_is_no_dead_letter(queue):
    """A job whose own field is wrong (the worker's InvalidInput) is the user's to fix, not the
    operator's: failed with the reason on its first attempt, never retried, never dead-lettered."""
    _fast(queue)
    rec = queue.submit(JOB)
    d = queue.claim("generate", "w", block_s=0.2)
    queue.fail(d, "model.layers: layer 99 out of range (6 layers)", retry=False, user_error=True)
    time.sleep(0.1)
    assert queue.claim("generate", "w", block_s=0.1) is None
    final = queue.get(rec.id)
    assert final.status == JobStatus.failed and "layer 99" in final.error and "invalid job" in final.error
    assert queue.dead_letters("generate") == [] and queue.pending("generate") == 0


def test_non_retryable_failure_and_dead_letter_keep_later_jobs_flowing(queue):
    bad, good = queue.submit(JOB), queue.submit(JOB)
    d = queue.claim("generate", "w", block_s=0.2)
    assert d.job_id == bad.id
    queue.dead_letter(d, "payload is not a valid job: tau: must be <= 1")
    d = queue.claim("generate", "w", block_s=0.2)
    assert d.job_id == good.id and queue.complete(d, handoff={})
    assert queue.get(bad.id).status == JobStatus.failed
    assert "tau" in queue.dead_letters("generate")[0].reason
    assert queue.pending("generate") == 0


def test_cancel_queued_job_never_starts(queue):
    rec = queue.submit(JOB)
    assert queue.cancel(rec.id).status == JobStatus.cancelled
    assert queue.claim("generate", "w", block_s=0.1) is None
    assert queue.get(rec.id).status == JobStatus.cancelled
    assert queue.pending("generate") == 0


def test_cancel_running_job_stops_at_renew_and_publishes_nothing(queue):
    rec = queue.submit(JOB)
    d = queue.claim("generate", "w", block_s=0.2)
    assert queue.cancel(rec.id).cancel_requested
    assert not queue.renew(d)
    assert not queue.complete(d, handoff={"x": 1})
    assert queue.claim("activate", "w", block_s=0.1) is None
    assert queue.get(rec.id).status == JobStatus.cancelled


def test_a_message_that_keeps_killing_workers_is_dead_lettered(queue):
    rec = queue.submit(JOB)
    for i in range(3):  # three workers take it and die
        d = queue.claim("generate", f"w{i}", block_s=0.2)
        assert d is not None and d.attempt == i + 1
        time.sleep(LEASE * 1.2)
    assert queue.claim("generate", "w9", block_s=0.1) is None
    assert queue.get(rec.id).status == JobStatus.failed
    assert "delivered 3 times" in queue.dead_letters("generate")[0].reason


def test_concurrent_workers_complete_every_job_once(queue):
    ids = {queue.submit(JOB).id for _ in range(30)}
    done: list[str] = []
    lock = threading.Lock()

    def worker(name):
        while True:
            d = queue.claim("generate", name, block_s=0.2)
            if d is None:
                return
            if queue.complete(d, handoff={}):
                with lock:
                    done.append(d.job_id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(done) == sorted(ids)


def test_payloads_are_json(queue):
    rec = queue.submit({**JOB, "note": "ünïcode ✓"})
    d = queue.claim("generate", "w", block_s=0.2)
    assert json.loads(json.dumps(d.payload)) == d.payload and d.payload["job"]["note"] == "ünïcode ✓"
    assert queue.get(rec.id).id == rec.id


def test_released_delivery_is_claimable_at_once(queue):
    rec = queue.submit(JOB)
    d = queue.claim("generate", "stopping-worker", block_s=0.2)
    queue.release(d)
    assert queue.get(rec.id).status == JobStatus.queued
    again = queue.claim("generate", "other", block_s=0.05)
    assert again is not None and again.job_id == rec.id and again.attempt == 2
    assert not queue.complete(d, handoff={}) and queue.complete(again, handoff={})


def test_a_duplicate_delivery_of_a_committed_stage_publishes_nothing(queue):
    rec = queue.submit(JOB)
    a = queue.claim("generate", "w1", block_s=0.2)
    # the same stage delivered twice at once (e.g. a message duplicated by an operator's replay)
    twin = type(a)(job_id=a.job_id, stage=a.stage, attempt=a.attempt, payload=a.payload,
                   delivery_id=a.delivery_id, consumer=a.consumer)
    assert queue.complete(a, handoff={"n": 1})
    assert not queue.complete(twin, handoff={"n": 2})
    d = queue.claim("activate", "w", block_s=0.2)
    assert d.payload["handoff"] == {"n": 1}
    assert queue.claim("activate", "w", block_s=0.05) is None
    assert queue.get(rec.id).stage == "activate"
