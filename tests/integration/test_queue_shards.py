"""Sharded stages (service/queue/shards.py), run against both queues: a split into shard messages that
any worker takes, each shard committed once, one reduce queued by the last commit, back-pressure,
cancellation, retries and dead letters per shard, progress summed over the shards."""

import json
import random
import threading
import time

import pytest

from neuroscribe.jobs import JobStatus
from neuroscribe.service.queue import InMemoryQueue, QueueError
from redis_server import delete_prefix, redis_url, unique_prefix

LEASE = 0.3
JOB = {"kind": "experts", "concepts": [{"name": "cat"}]}  # stages: generate, activate, analyse


@pytest.fixture(params=["memory", "redis"])
def queue(request):
    if request.param == "memory":
        q = InMemoryQueue(lease_s=LEASE, max_attempts=3, max_shards_in_flight=2)
        q.backoff_s = lambda attempt: 0.05
        yield q
        return
    import redis

    from neuroscribe.service.queue.redis_queue import RedisQueue

    client = redis.Redis.from_url(redis_url())
    prefix = unique_prefix()
    q = RedisQueue(client, prefix=prefix, lease_s=LEASE, max_attempts=3, max_shards_in_flight=2)
    q.backoff_s = lambda attempt: 0.05
    q.sweep_s = 0.02
    yield q
    delete_prefix(client, prefix)


def _to_activate(queue):
    rec = queue.submit(JOB)
    d = queue.claim("generate", "w", block_s=0.5)
    assert queue.complete(d, handoff={"sentences": 10})
    return rec.id


def _split(queue, n, handoff=None):
    job_id = _to_activate(queue)
    d = queue.claim("activate", "w", block_s=0.5)
    assert d.shard is None
    specs = [{"rows": [10 * i, 10 * (i + 1)]} for i in range(n)]
    assert queue.complete(d, handoff=handoff or {"plan": True}, shards=specs)
    return job_id, specs


def _drain(queue, job_id, worker="w", *, limit=200):
    """Claim activate messages and commit every shard (output = its spec's rows); returns the reduce."""
    for _ in range(limit):
        d = queue.claim("activate", worker, block_s=0.3)
        if d is None:
            continue
        assert d.job_id == job_id
        if d.shard["id"] == "reduce":
            return d
        assert queue.complete(d, handoff={"rows": d.shard["spec"]["rows"], "by": worker})
    raise AssertionError("no reduce came")


def test_split_commits_each_shard_once_and_queues_one_reduce(queue):
    job_id, specs = _split(queue, 5, handoff={"vocab": "v.json"})
    seen = []
    for _ in range(5):
        d = queue.claim("activate", "w", block_s=0.5)
        assert d is not None and d.shard["id"] != "reduce"
        assert d.payload["job"] == JOB and d.payload["handoff"] == {"vocab": "v.json"}
        assert d.shard["of"] == 5 and d.shard["spec"] == specs[d.shard["index"]]
        seen.append(d.shard["id"])
        assert queue.complete(d, handoff={"out": d.shard["id"]})
    assert sorted(seen) == ["0000", "0001", "0002", "0003", "0004"]
    r = queue.claim("activate", "w", block_s=0.5)
    assert r.shard["id"] == "reduce" and r.shard["of"] == 5
    assert r.shard["outputs"] == {sid: {"out": sid} for sid in seen}
    assert r.payload["handoff"] == {"vocab": "v.json"}
    assert queue.claim("activate", "w", block_s=0.1) is None  # exactly one reduce
    assert queue.complete(r, handoff={"exemplars": "merged"})
    d = queue.claim("analyse", "w", block_s=0.5)
    assert d.payload["handoff"] == {"exemplars": "merged"} and d.shard is None
    assert queue.complete(d, result={"ok": 1})
    assert queue.get(job_id).status == JobStatus.succeeded


def test_back_pressure_keeps_at_most_n_shards_of_a_job_in_the_stream(queue):
    job_id, _ = _split(queue, 5)
    held = [queue.claim("activate", f"w{i}", block_s=0.2) for i in range(3)]
    assert [d is not None for d in held] == [True, True, False]  # 2 in flight, 3 waiting
    other = queue.submit(JOB)  # a small job is not stuck behind the big one
    d = queue.claim("generate", "x", block_s=0.5)
    assert d.job_id == other.id and queue.complete(d, handoff={})
    small = queue.claim("activate", "x", block_s=0.5)
    assert small is not None and small.job_id == other.id and small.shard is None
    assert queue.renew(held[1])  # (kept leased, so that only waiting shards can be claimed below)
    assert queue.complete(held[0], handoff={})  # one commit lets one waiting shard in
    got = queue.claim("activate", "w3", block_s=0.2)
    assert got.job_id == job_id and got.shard["id"] not in {held[0].shard["id"], held[1].shard["id"]}
    assert queue.renew(held[1])
    assert queue.claim("activate", "w4", block_s=0.05) is None


def test_a_shard_commits_once_even_when_run_twice(queue):
    job_id, _ = _split(queue, 2)
    d = queue.claim("activate", "slow", block_s=0.5)
    time.sleep(LEASE + 0.1)  # its lease runs out: another worker takes the same shard over
    again = None
    for _ in range(20):
        again = queue.claim("activate", "fast", block_s=0.2)
        if again is not None and again.shard["id"] == d.shard["id"]:
            break
    assert again is not None and again.shard["id"] == d.shard["id"] and again.attempt == 2
    assert queue.complete(again, handoff={"by": "fast"})
    assert not queue.complete(d, handoff={"by": "slow"})  # the lost lease publishes nothing
    r = _drain(queue, job_id)
    assert r.shard["outputs"][d.shard["id"]] == {"by": "fast"}


def test_any_worker_takes_any_shard_concurrently_and_the_reduce_runs_once(queue):
    job_id, specs = _split(queue, 12)
    reduces, lock = [], threading.Lock()

    def work(name):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            d = queue.claim("activate", name, block_s=0.1)
            if d is None:
                if queue.get(job_id).stage != "activate":
                    return
                continue
            time.sleep(random.random() * 0.02)
            if d.shard["id"] == "reduce":
                with lock:
                    reduces.append(d)
                assert queue.complete(d, handoff={"n": len(d.shard["outputs"])})
            else:
                queue.complete(d, handoff={"rows": d.shard["spec"]["rows"], "by": name})

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reduces) == 1
    outs = reduces[0].shard["outputs"]
    assert sorted(v["rows"][0] for v in outs.values()) == [s["rows"][0] for s in specs]
    assert queue.get(job_id).stage == "analyse"


def test_a_failing_shard_is_retried_alone_then_dead_letters_the_job(queue):
    job_id, _ = _split(queue, 3)
    failed = None
    for attempt in range(1, 4):
        for _ in range(50):
            d = queue.claim("activate", "w", block_s=0.1)
            if d is not None and (failed is None or d.shard["id"] == failed):
                break
            if d is not None:
                assert queue.complete(d, handoff={})  # the healthy shards commit
        failed = d.shard["id"]
        assert d.attempt == attempt
        queue.fail(d, "boom")
    rec = queue.get(job_id)
    assert rec.status == JobStatus.failed and "boom" in rec.error
    letters = queue.dead_letters("activate")
    assert len(letters) == 1 and letters[0].payload()["shard"]["id"] == failed
    for _ in range(5):  # nothing of the job runs any more
        assert queue.claim("activate", "w", block_s=0.05) is None


def test_cancel_stops_the_shards(queue):
    job_id, _ = _split(queue, 4)
    running = queue.claim("activate", "w", block_s=0.5)
    queue.cancel(job_id)
    assert not queue.renew(running)
    assert not queue.complete(running, handoff={})
    for _ in range(5):
        assert queue.claim("activate", "w", block_s=0.05) is None
    assert queue.get(job_id).status == JobStatus.cancelled


def test_progress_sums_the_shards(queue):
    job_id, _ = _split(queue, 3)
    a = queue.claim("activate", "a", block_s=0.5)
    b = queue.claim("activate", "b", block_s=0.5)
    queue.progress(a, 4, 10)
    queue.progress(b, 6, 10)
    p = queue.get(job_id).progress["activate"]
    assert p.done == 10 and p.total is None and p.message == "0 of 3 shards committed"  # one shard not started
    assert queue.complete(a, handoff={})
    c = queue.claim("activate", "c", block_s=0.5)
    queue.progress(c, 1, 10)
    p = queue.get(job_id).progress["activate"]
    assert (p.done, p.total, p.message) == (11, 30, "1 of 3 shards committed")


def test_only_an_ordinary_delivery_splits(queue):
    _split(queue, 2)
    d = queue.claim("activate", "w", block_s=0.5)
    with pytest.raises(QueueError, match="cannot split"):
        queue.complete(d, handoff={}, shards=[{}])
    job_id = _to_activate(queue)
    e = next(x for x in (queue.claim("activate", "w", block_s=0.5) for _ in range(5))
             if x is not None and x.job_id == job_id)
    with pytest.raises(QueueError, match="shards"):
        queue.complete(e, handoff={}, shards=[])
    with pytest.raises(QueueError, match=r"shards\[0\]"):
        queue.complete(e, handoff={}, shards=["rows 0-10"])


def test_redis_leaves_no_shard_keys_after_the_job(request):
    import redis

    from neuroscribe.service.queue.redis_queue import RedisQueue

    client = redis.Redis.from_url(redis_url())
    prefix = unique_prefix()
    try:
        q = RedisQueue(client, prefix=prefix, lease_s=LEASE, max_attempts=3, max_shards_in_flight=2)
        job_id, _ = _split(q, 3)
        assert client.exists(f"{prefix}:shwait:{job_id}:activate")  # one shard waits its turn
        r = _drain(q, job_id)
        assert q.complete(r, handoff={})
        assert list(client.scan_iter(f"{prefix}:sh*")) == []
        cancelled, _ = _split(q, 3)
        q.cancel(cancelled)
        q.delete(cancelled)
        assert list(client.scan_iter(f"{prefix}:sh*")) == []
        assert json.loads(client.hget(f"{prefix}:job:{job_id}", "shards:activate")) == 3
    finally:
        delete_prefix(client, prefix)
