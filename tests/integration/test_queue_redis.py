"""Redis-specific behaviour of the queue: raw malformed messages, the consumer list across worker
restarts, and a Redis restart (append-only file on) in the middle of a run."""

import json
import time

import pytest

from neuroscribe.jobs import JobStatus
from neuroscribe.service.queue.redis_queue import GROUP, RedisQueue
from redis_server import delete_prefix, free_port, redis_url, start_redis, unique_prefix

JOB = {"kind": "experts", "concepts": [{"name": "cat"}]}


@pytest.fixture
def rq():
    import redis

    client = redis.Redis.from_url(redis_url())
    prefix = unique_prefix()
    q = RedisQueue(client, prefix=prefix, lease_s=0.3, max_attempts=3)
    yield q
    delete_prefix(client, prefix)


def test_hundred_malformed_messages_are_dead_lettered_and_later_jobs_complete(rq):
    rq.ensure_groups()
    stream = rq._stream("generate")
    poison = [{"data": "{}"}, {"job": "x"}, {"job": "x", "data": "not json"}, {"job": "x", "data": "[1, 2]"},
              {"job": "", "data": "{}"}, {"job": "x", "data": "{}", "failures": "many"}]
    for i in range(100):
        rq.r.xadd(stream, poison[i % len(poison)])
    good = rq.submit(JOB)
    got = None
    for _ in range(200):
        d = rq.claim("generate", "w", block_s=0.05)
        if d is not None:
            got = d
            break
    assert got is not None and got.job_id == good.id
    assert rq.complete(got, handoff={})
    dead = rq.dead_letters("generate")
    assert len(dead) == 100 and all(x.reason.startswith("malformed message") for x in dead)
    rq.r.xadd(stream, {"job": "f" * 32, "data": "{}", "failures": "0"})  # well formed, no such job
    assert rq.claim("generate", "w", block_s=0.1) is None
    assert "no job" in rq.dead_letters("generate")[-1].reason
    assert rq.pending("generate") == 0 and rq.r.xlen(stream) == 0


def test_fifty_worker_restarts_do_not_grow_the_consumer_list(rq):
    for i in range(50):
        rq.submit(JOB)
        name = f"worker-{i}"
        d = rq.claim("generate", name, block_s=0.2)
        assert rq.complete(d, handoff={})
        if i % 2:
            assert rq.leave("generate", name)  # graceful exit
        # an abrupt exit leaves the consumer behind; the next worker prunes idle empty ones
        rq.prune_consumers("generate", keep=name, min_idle_s=0)
    names = [c["name"] for c in rq.consumers("generate")]
    assert len(names) <= 1
    assert rq.pending("generate") == 0


def test_pruning_never_drops_a_consumer_that_holds_a_job(rq):
    rec = rq.submit(JOB)
    rq.claim("generate", "busy", block_s=0.2)
    assert rq.prune_consumers("generate", min_idle_s=0) == 0
    assert [c["name"] for c in rq.consumers("generate")] == ["busy"]
    time.sleep(0.4)  # the busy worker died: its job is reclaimed, then it can go
    d = rq.claim("generate", "next", block_s=0.2)
    assert d.job_id == rec.id
    assert rq.prune_consumers("generate", keep="next", min_idle_s=0) == 1


def test_redis_restart_with_aof_keeps_jobs_and_the_client_reconnects(tmp_path):
    import redis

    port = free_port()
    server = start_redis(port, appendonly=True, workdir=str(tmp_path))
    try:
        q = RedisQueue(redis.Redis.from_url(f"redis://127.0.0.1:{port}/0"), prefix="restart", lease_s=5)
        ids = [q.submit(JOB).id for _ in range(5)]
        d = q.claim("generate", "w", block_s=0.2)
        server.kill()
        server.wait()
        with pytest.raises(redis.ConnectionError):
            q.get(ids[0])
        assert not _ping(q)
        server = start_redis(port, appendonly=True, workdir=str(tmp_path))
        assert q.ping()  # the same client object reconnects
        assert {q.get(i).status for i in ids} == {JobStatus.queued, JobStatus.running}
        assert q.complete(d, handoff={})  # the lease survived in the AOF
        done = {d.job_id}
        while len(done) < 5:
            nxt = q.claim("generate", "w", block_s=0.2)
            assert nxt is not None
            assert q.complete(nxt, handoff={})
            done.add(nxt.job_id)
        assert done == set(ids)
    finally:
        server.kill()


def _ping(q) -> bool:
    try:
        return q.ping()
    except Exception:  # noqa: BLE001
        return False


def test_group_is_shared_and_named(rq):
    rq.submit(JOB)
    groups = rq.r.xinfo_groups(rq._stream("generate"))
    assert [g["name"].decode() for g in groups] == [GROUP]


def test_a_replayed_message_of_a_finished_stage_is_dropped(rq):
    rec = rq.submit(JOB)
    d = rq.claim("generate", "w", block_s=0.2)
    raw = {"job": rec.id, "data": json.dumps(d.payload), "failures": "0"}
    assert rq.complete(d, handoff={"once": True})
    rq.r.xadd(rq._stream("generate"), raw)  # delivered again after the stage was committed
    assert rq.claim("generate", "w", block_s=0.1) is None
    assert rq.claim("activate", "w", block_s=0.1).payload["handoff"] == {"once": True}
    assert rq.claim("activate", "w", block_s=0.05) is None
    assert rq.pending("generate") == 0
