"""Issue 14, findings 5, 6 and 8, on both queue backends (memory and a real Redis): records carry
a summary and never the result; idempotency keys are checked against the job, scoped per owner
and expire; finished jobs are deleted and garbage-collected with every key they had, so Redis does
not grow per job; dead letters are listed, requeued and expire."""

import json
import time

import pytest

from neuroscribe.jobs import JobStatus
from neuroscribe.service import registry
from neuroscribe.service.queue import (
    IdempotencyConflict,
    InMemoryQueue,
    JobNotFinished,
    JobNotFound,
    Retention,
)
from redis_server import delete_prefix, redis_url, unique_prefix

JOB = {"kind": "experts", "concepts": [{"name": "cat"}]}
OTHER = {"kind": "experts", "concepts": [{"name": "dog"}]}
DESCRIBE = {"kind": "describe", "dataset": "amazon"}
STAGES = ("generate", "activate", "analyse")


def _make(backend, retention):
    if backend == "memory":
        return InMemoryQueue(lease_s=5.0, retention=retention), None
    import redis

    from neuroscribe.service.queue.redis_queue import RedisQueue

    client = redis.Redis.from_url(redis_url())
    return RedisQueue(client, prefix=unique_prefix(), lease_s=5.0, retention=retention), client


@pytest.fixture(params=["memory", "redis"])
def make(request):
    made = []

    def factory(**retention):
        q, client = _make(request.param, Retention(**retention))
        made.append((q, client))
        return q

    yield factory
    for q, client in made:
        if client is not None:
            delete_prefix(client, q.prefix)


def _finish(q, job_id, result):
    for stage in STAGES:
        d = q.claim(stage, "w", block_s=0.5)
        assert d is not None and d.job_id == job_id
        if stage == "analyse":
            assert q.complete(d, result=result, summary={"n": len(result.get("items", []))})
        else:
            assert q.complete(d, handoff={})


# ---------------------------------------------------------------- 5: records stay small
def test_records_carry_the_summary_and_the_result_is_fetched_on_its_own(make):
    q = make()
    big = {"items": ["x" * 1000] * 200}  # 200 kB of result
    rec = q.submit(JOB)
    assert q.result(rec.id) is None  # nothing before it succeeds
    _finish(q, rec.id, big)
    got = q.get(rec.id)
    assert got.summary == {"n": 200} and len(got.model_dump_json()) < 2000
    assert all(len(r.model_dump_json()) < 2000 for r in q.list(limit=10))
    assert json.loads(q.result(rec.id)) == big
    with pytest.raises(JobNotFound):
        q.result("0" * 32)


# ---------------------------------------------------------------- 6: idempotency
def test_an_idempotency_key_reused_for_another_body_or_kind_is_a_conflict(make):
    q = make()
    a, created = q.submit_new(JOB, idempotency_key="k")
    same, again = q.submit_new(dict(JOB), idempotency_key="k")
    assert created and not again and same.id == a.id
    for other in (OTHER, DESCRIBE):
        with pytest.raises(IdempotencyConflict) as e:
            q.submit_new(other, idempotency_key="k")
        assert e.value.job_id == a.id and "'k'" in str(e.value)


def test_idempotency_keys_belong_to_their_owner(make):
    q = make()
    alice = q.submit(JOB, idempotency_key="k", owner="alice")
    bob = q.submit(OTHER, idempotency_key="k", owner="bob")  # no conflict: another user's key
    assert alice.id != bob.id and (alice.owner, bob.owner) == ("alice", "bob")
    assert [r.id for r in q.list(owner="alice")] == [alice.id]
    assert {r.id for r in q.list()} == {alice.id, bob.id}


def test_idempotency_keys_expire(make):
    q = make(idempotency_ttl_s=0.001)
    a = q.submit(JOB, idempotency_key="k")
    time.sleep(0.05)  # 50 x the key's lifetime
    b, created = q.submit_new(OTHER, idempotency_key="k")  # neither the old job nor a conflict
    assert created and b.id != a.id


# ---------------------------------------------------------------- 8: lifecycle
def test_delete_forgets_a_finished_job_and_refuses_a_running_one(make):
    q = make()
    rec = q.submit(JOB, idempotency_key="k")
    with pytest.raises(JobNotFinished, match="queued"):
        q.delete(rec.id)
    _finish(q, rec.id, {"items": [1]})
    q.delete(rec.id)
    with pytest.raises(JobNotFound):
        q.get(rec.id)
    assert q.list() == []
    again, created = q.submit_new(JOB, idempotency_key="k")  # the key went with the job
    assert created and again.id != rec.id
    with pytest.raises(JobNotFound):
        q.delete(rec.id)


def test_gc_removes_finished_jobs_past_their_ttl_and_keeps_the_rest(make):
    q = make(job_ttl_s=3600)
    old, running = q.submit(JOB), q.submit(OTHER)
    _finish(q, old.id, {"items": []})
    assert q.gc().jobs == []  # finished just now: kept
    report = q.gc(now=time.time() + 3601)
    assert report.jobs == [old.id]
    with pytest.raises(JobNotFound):
        q.get(old.id)
    assert q.get(running.id).status == JobStatus.queued  # unfinished jobs are never collected
    assert [r.id for r in q.list()] == [running.id]


def test_redis_memory_per_job_does_not_grow_after_retention(make):
    """N jobs through every stage (with results, idempotency keys, owners, one dead letter), then
    the gc at the end of their retention: nothing of any job is left, only the stage streams
    (empty) -- so Redis holds nothing per job, however many have run."""
    q = make(job_ttl_s=60, dead_letter_ttl_s=60, idempotency_ttl_s=3600)
    ids = []
    for i in range(30):
        rec = q.submit({"kind": "experts", "concepts": [{"name": f"c{i}"}]}, idempotency_key=f"k{i}",
                       owner=f"user{i % 3}")
        _finish(q, rec.id, {"items": list(range(50))})
        ids.append(rec.id)
    dead = q.submit(OTHER)
    d = q.claim("generate", "w", block_s=0.5)
    q.dead_letter(d, "poison")
    report = q.gc(now=time.time() + 61)
    assert sorted(report.jobs) == sorted([*ids, dead.id]) and report.dead_letters == 1
    assert q.list() == [] and q.dead_letters("generate") == []
    if isinstance(q, InMemoryQueue):
        assert not q._jobs and not q._results and not q._idem  # noqa: SLF001 - what it holds
        return
    left = {k.decode() for k in q.r.scan_iter(match=f"{q.prefix}:*")}
    streams = {f"{q.prefix}:s:{s}" for s in registry.stage_names()}
    dead_streams = {f"{q.prefix}:dead:{s}" for s in registry.stage_names()}
    assert left <= streams | dead_streams, sorted(left - streams - dead_streams)
    assert all(q.r.xlen(k) == 0 for k in left)


# ---------------------------------------------------------------- 9: dead letters
def test_dead_letters_are_listed_and_requeued_with_fresh_attempts(make):
    q = make()
    rec = q.submit(JOB)
    d = q.claim("generate", "w", block_s=0.5)
    q.fail(d, "boom", retry=False)
    [letter] = q.dead_letters("generate")
    assert letter.job_id == rec.id and letter.id and letter.at > 0 and "boom" in letter.reason
    assert q.stats()["stages"]["generate"]["dead"] == 1
    back = q.requeue("generate", letter.id)
    assert back.status == JobStatus.queued and back.stage == "generate" and back.attempts == 0 and not back.error
    assert q.dead_letters("generate") == []
    d = q.claim("generate", "w", block_s=0.5)
    assert d.job_id == rec.id and d.attempt == 1 and d.payload["job"] == JOB
    with pytest.raises(JobNotFound):
        q.requeue("generate", letter.id)  # once only


def test_stats_count_depth_running_and_jobs_by_status(make):
    q = make()
    a, b, c = q.submit(JOB), q.submit(JOB), q.submit(JOB)
    q.cancel(c.id)
    d = q.claim("generate", "w", block_s=0.5)
    s = q.stats()
    gen = s["stages"]["generate"]
    assert gen["pending"] == 1 and gen["ready"] >= 1 and gen["oldest_s"] >= 0
    assert s["jobs"] == {"running": 1, "queued": 1, "cancelled": 1}
    assert d.job_id in (a.id, b.id)
