"""Reliability of the service against a real Redis, with workers as real processes
(`neuroscribe worker STAGE --handlers service_handlers:HANDLERS`) and short leases. Each test counts
executions (``executions.log``) and commits (the tokens handed from stage to stage)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from neuroscribe.jobs import JobStatus
from redis_server import delete_prefix, free_port, redis_url, start_redis, unique_prefix

LEASE = 0.6
SUPPORT = Path(__file__).resolve().parents[1] / "support"  # the handlers modules the workers import
NEUROSCRIBE = str(Path(sys.executable).parent / "neuroscribe")


def job(command: str) -> dict:
    return {"kind": "experts", "concepts": [{"name": command}], "sentences": [
        {"text": "a cat", "concept": command, "label": 1}, {"text": "a bus", "concept": command, "label": 0}]}


class Service:
    """Workers (one process each) on one queue prefix; a queue handle for the test."""

    def __init__(self, url: str, root: Path):
        import redis

        from neuroscribe.service.queue.redis_queue import RedisQueue

        self.prefix = unique_prefix()
        self.url = url
        self.queue_url = f"{url}?prefix={self.prefix}"
        self.root = root
        self.client = redis.Redis.from_url(url)
        self.q = RedisQueue(self.client, prefix=self.prefix, lease_s=LEASE, max_attempts=4)
        self.procs: list[subprocess.Popen] = []

    def worker(self, stage: str, *extra: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")])}
        p = subprocess.Popen([NEUROSCRIBE, "worker", stage, "--queue", self.queue_url, "--artefacts", str(self.root),
                              "--cache-dir", str(self.root / "cache"), "--handlers", "service_handlers:HANDLERS",
                              "--lease", str(LEASE), "--max-attempts", "4", "--grace", "2", *extra],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def all_stages(self):
        return [self.worker(s) for s in ("generate", "activate", "analyse")]

    def executions(self) -> list[dict]:
        log = self.root / "executions.log"
        return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

    def wait_final(self, ids, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recs = {i: self.q.get(i) for i in ids}
            if all(r.status.is_final for r in recs.values()):
                return recs
            time.sleep(0.1)
        pending = {i: (r.status.value, r.stage) for i, r in recs.items() if not r.status.is_final}
        raise AssertionError(f"jobs not final after {timeout} s: {pending}")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            if p.stderr:
                p.stderr.close()
        delete_prefix(self.client, self.prefix)


@pytest.fixture
def service(tmp_path):
    s = Service(redis_url(), tmp_path / "artefacts")
    yield s
    s.close()


def _committed_once(service, ids):
    """Every job succeeded, and each stage handed exactly one token on (one commit per stage)."""
    recs = service.wait_final(ids)
    assert {r.status for r in recs.values()} == {JobStatus.succeeded}, [r.error for r in recs.values() if r.error]
    ex = service.executions()
    for i in ids:
        got_activate = {json.dumps(e["got"]) for e in ex if e["job"] == i and e["stage"] == "activate"}
        got_analyse = {json.dumps(e["got"]) for e in ex if e["job"] == i and e["stage"] == "analyse"}
        assert len(got_activate) == 1 and len(got_analyse) == 1, f"job {i} was handed on twice"
        assert len(json.loads(service.q.result(i))["tokens"]) == 3
    for stage in ("generate", "activate", "analyse"):
        assert service.q.pending(stage) == 0
    return recs, ex


def _wait_for(what: str, pred, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return got


def _mid_run(service, workers):
    """(worker, job id): a generate worker of ``workers`` whose job's handler began under 0.25 s ago (of
    its 0.5 s), on a delivery before the last one allowed (``--max-attempts 4``): killed now, that job
    is interrupted mid-run and still has a delivery left, so it must complete."""
    names = {f"generate-{socket.gethostname()}-{w.pid}": w for w in workers if w.poll() is None}
    began = {(e["job"], e["attempt"]): e["t"] for e in service.executions() if e["stage"] == "generate"}
    stream = service.q._stream("generate")
    for p in service.client.xpending_range(stream, "workers", "-", "+", 100):
        w = names.get(p["consumer"].decode())
        if w is None or p["times_delivered"] >= 4:
            continue
        (_, fields), = service.client.xrange(stream, p["message_id"], p["message_id"])
        t = began.get((fields[b"job"].decode(), p["times_delivered"]))
        if t is not None and time.time() - t < 0.25:
            return w, fields[b"job"].decode()
    return None


def test_kill_9_workers_mid_job_every_job_completes_once(service):
    # Kills follow evidence, not a clock: on a loaded machine a worker killed a fixed time after it
    # started may not have begun a job yet (it claims only once its executor is ready: the tests of
    # the ready handshake below cover that), and a clock cannot tell whether a kill hit a job.
    ids = [service.q.submit(job("sleep 0.5")).id for _ in range(40)]
    service.worker("generate")  # never killed: a ready worker is always there to take a killed job over
    gens = [service.worker("generate"), service.worker("generate")]
    service.worker("activate")
    service.worker("analyse")
    killed = []
    while len(killed) < 5:
        victim, jid = _wait_for("a worker mid-way through a job", lambda: _mid_run(service, gens))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed.append(jid)
        gens[gens.index(victim)] = service.worker("generate")  # a replacement comes up
    recs, ex = _committed_once(service, ids)
    # a killed job was taken over within 2 leases of its last sign of life
    starts = {}
    for e in ex:
        if e["stage"] == "generate":
            starts.setdefault(e["job"], []).append(e["t"])
    rerun = {j: sorted(t) for j, t in starts.items() if len(t) > 1}
    assert set(killed) <= rerun.keys(), "a kill did not interrupt its job mid-run"
    for j, ts in rerun.items():
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        assert max(gaps) <= 0.5 + 2 * LEASE + 1.0, f"job {j} waited {max(gaps):.2f} s to be reclaimed"


def test_long_job_and_gil_holding_job_run_exactly_once(service):
    ids = [service.q.submit(job(f"sleep {5 * LEASE}")).id, service.q.submit(job("gil 2")).id]  # 5 and >3 leases
    service.worker("generate")
    service.worker("generate")
    service.worker("activate")
    service.worker("analyse")
    _, ex = _committed_once(service, ids)
    runs = Counter(e["job"] for e in ex if e["stage"] == "generate")
    assert runs == Counter({ids[0]: 1, ids[1]: 1})
    assert service.q.get(ids[0]).progress["generate"].done == service.q.get(ids[0]).progress["generate"].total


def test_poisonous_payloads_are_dead_lettered_user_errors_fail_and_the_worker_lives_on(service):
    """Garbage on the stream is dead-lettered (an operator must look); a job that is not valid, or
    whose handler says a field of it is wrong, fails at once with the reason and is no dead letter."""
    bad = []
    for i in range(100):
        if i % 3 == 0:
            bad.append(service.q.submit({"kind": "experts", "concepts": [{"name": "x"}], "tau": 5}).id)  # invalid
        elif i % 3 == 1:
            bad.append(service.q.submit(job("invalid")).id)  # the handler says it can never succeed
        else:
            service.q.ensure_groups()
            service.client.xadd(service.q._stream("generate"), {"job": "nope", "data": "{not json"})
    w = service.worker("generate")
    service.worker("activate")
    service.worker("analyse")
    good = service.q.submit(job("noop")).id
    recs = service.wait_final(bad + [good], timeout=90)
    assert recs[good].status == JobStatus.succeeded
    assert all(recs[i].status == JobStatus.failed and "invalid job at generate" in recs[i].error for i in bad)
    errors = Counter(recs[i].error.split(": ")[1] for i in bad)
    assert errors["not a valid job"] == 34 and errors["concepts"] == 33
    dead = service.q.dead_letters("generate")
    assert len(dead) == 33 and all(d.reason.startswith("malformed message") for d in dead)
    assert w.poll() is None, "the worker died"
    assert service.q.pending("generate") == 0


def test_crash_between_write_and_handoff_gives_one_message_and_an_intact_artefact(service):
    jid = service.q.submit(job("kill-worker-after-write")).id
    first = service.worker("generate")
    first.wait(30)  # killed by its own job after the write
    service.worker("generate")
    service.worker("activate")
    service.worker("analyse")
    _, ex = _committed_once(service, [jid])
    assert [e["attempt"] for e in ex if e["stage"] == "generate"] == [1, 2]
    assert sum(1 for e in ex if e["stage"] == "activate") == 1
    assert (service.root / jid / "artefact.txt").read_text() == f"artefact of {jid}\n"


def test_duplicate_delivery_and_same_idempotency_key_give_one_job_one_result(service):
    a = service.q.submit(job("noop"), idempotency_key="same")
    b = service.q.submit(job("noop"), idempotency_key="same")
    assert a.id == b.id
    # the same message delivered twice (replayed into the stream)
    fields = service.client.xrange(service.q._stream("generate"))[0][1]
    service.client.xadd(service.q._stream("generate"), fields)
    service.all_stages()
    _, ex = _committed_once(service, [a.id])
    assert sum(1 for e in ex if e["stage"] == "analyse") == 1


def test_cancel_queued_never_starts_and_running_stops_within_10s_publishing_nothing(service):
    queued = service.q.submit(job("noop")).id
    assert service.q.cancel(queued).status == JobStatus.cancelled
    running = service.q.submit(job("sleep 30")).id
    service.all_stages()
    deadline = time.monotonic() + 20
    while service.q.get(running).status != JobStatus.running and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    t0 = time.monotonic()
    service.q.cancel(running)
    while service.q.pending("generate") and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert time.monotonic() - t0 < 10
    assert service.q.get(running).status == JobStatus.cancelled
    ex = service.executions()
    assert not [e for e in ex if e["job"] == queued]
    assert not [e for e in ex if e["stage"] != "generate"]  # nothing published downstream
    assert service.q.claim("activate", "probe", block_s=0.1) is None


def test_fifty_worker_restarts_do_not_grow_the_consumer_list(service):
    # Each batch of workers is killed 1.5 s after it starts: on a loaded 2-core machine a worker may
    # claim a job and die before its executor finishes it, and the same job can be caught by several
    # batches in a row. The test is about the consumer list, so attempts are not the limit here
    # (dead-lettering after max attempts has its own tests); the jobs must still all succeed.
    def worker(stage):
        return service.worker(stage, "--max-attempts", "100")

    ids = []
    for batch in range(10):
        ws = [worker("generate") for _ in range(5)]
        ids += [service.q.submit(job("noop")).id for _ in range(5)]
        time.sleep(1.5)
        for w in ws:
            w.send_signal(signal.SIGTERM if batch % 2 else signal.SIGKILL)
        for w in ws:
            w.wait(20)
    worker("generate")
    worker("activate")
    worker("analyse")
    service.wait_final(ids, timeout=90)
    time.sleep(2 * LEASE + 1)
    worker("generate")  # prunes idle, empty consumers at start
    deadline = time.monotonic() + 30
    names = [c["name"] for c in service.q.consumers("generate")]
    while len(names) > 2 and time.monotonic() < deadline:  # until the new worker has started and pruned
        time.sleep(0.2)
        names = [c["name"] for c in service.q.consumers("generate")]
    assert len(names) <= 2, names  # the worker that finished the jobs, and the new one
    failed = [(i, service.q.get(i).error) for i in ids if service.q.get(i).status != JobStatus.succeeded]
    assert not failed, failed
    assert service.q.pending("generate") == 0


def _get(url: str) -> int:
    import httpx

    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return 0


def test_redis_restart_mid_run_workers_reconnect_api_503_then_every_job_completes_once(tmp_path):
    port = free_port()
    server = start_redis(port, appendonly=True, workdir=str(tmp_path))
    s = Service(f"redis://127.0.0.1:{port}/0", tmp_path / "artefacts")
    api_port = free_port()
    api = subprocess.Popen([NEUROSCRIBE, "serve", "--queue", s.queue_url, "--artefacts", str(s.root),
                            "--port", str(api_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 60
        while _get(f"{base}/readyz") != 200:
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.2)
        ids = [s.q.submit(job("sleep 0.3")).id for _ in range(6)]
        workers = s.all_stages()
        time.sleep(1.5)
        server.kill()
        server.wait()
        assert _get(f"{base}/readyz") == 503
        assert _get(f"{base}/v1/jobs/{ids[0]}") == 503  # not a 500, not a hang
        assert _get(f"{base}/healthz") == 200
        time.sleep(1)
        server = start_redis(port, appendonly=True, workdir=str(tmp_path))
        _committed_once(s, ids)
        assert _get(f"{base}/readyz") == 200 and _get(f"{base}/v1/jobs/{ids[0]}") == 200  # recovered
        assert all(w.poll() is None for w in workers), "a worker exited instead of reconnecting"
    finally:
        api.kill()
        api.wait(10)
        s.close()
        server.kill()


def test_sigterm_finishes_a_short_job_and_releases_a_long_one(service):
    short = service.q.submit(job("sleep 0.5")).id
    w = service.worker("generate")  # --grace 2
    deadline = time.monotonic() + 30
    while service.q.get(short).status != JobStatus.running and time.monotonic() < deadline:
        time.sleep(0.05)
    w.send_signal(signal.SIGTERM)
    assert w.wait(20) == 0
    assert service.q.get(short).stage == "activate"  # finished within the grace period, committed
    long = service.q.submit(job("sleep 30")).id
    w = service.worker("generate")
    while service.q.get(long).status != JobStatus.running and time.monotonic() < deadline + 30:
        time.sleep(0.05)
    t0 = time.monotonic()
    w.send_signal(signal.SIGTERM)
    assert w.wait(20) == 0 and time.monotonic() - t0 < 10
    assert service.q.get(long).status == JobStatus.queued and service.q.pending("generate") == 1
    d = service.q.claim("generate", "next", block_s=1)  # released: claimable at once, not after a lease
    assert d is not None and d.job_id == long


# ---------------------------------------------------------------- ready before claim
# A delivery counts towards max_attempts whether or not it ran, so a worker claims only once its
# executor has imported its handlers and said "ready" (slow_ready_handlers: the test says when).

SLOW = ("--handlers", "slow_ready_handlers:HANDLERS")


def _loading(folder: Path, *, besides: set[int] = frozenset()) -> int | None:
    pids = {int(p.name.split(".")[1]) for p in folder.glob("loading.*")} - set(besides)
    return pids.pop() if pids else None


def _unclaimed(service, jid: str) -> None:
    rec = service.q.get(jid)
    assert (rec.status, rec.attempts) == (JobStatus.queued, 0), "claimed before the executor was ready"
    assert service.q.pending("generate") == 0


@pytest.fixture
def gate(tmp_path, monkeypatch):
    folder = tmp_path / "ready-gate"
    folder.mkdir()
    monkeypatch.setenv("NEUROSCRIBE_TEST_READY_DIR", str(folder))
    return folder


def test_a_worker_claims_nothing_until_its_executor_is_ready(service, gate):
    jid = service.q.submit(job("noop")).id
    w = service.worker("generate", *SLOW)
    pid = _wait_for("the executor to start", lambda: _loading(gate))
    time.sleep(1.5)  # a worker that did not wait would have claimed by now
    _unclaimed(service, jid)
    assert w.poll() is None
    (gate / f"go.{pid}").touch()
    service.worker("activate")
    service.worker("analyse")
    _, ex = _committed_once(service, [jid])
    assert [e["attempt"] for e in ex if e["stage"] == "generate"] == [1]  # one delivery, and it ran


def test_after_a_kill_the_worker_claims_again_only_once_a_fresh_executor_is_ready(service, gate):
    long = service.q.submit(job("sleep 30")).id
    service.worker("generate", *SLOW)
    first = _wait_for("the executor to start", lambda: _loading(gate))
    (gate / f"go.{first}").touch()
    _wait_for("the long job to run", lambda: service.q.get(long).status == JobStatus.running)
    nxt = service.q.submit(job("noop")).id
    service.q.cancel(long)  # the worker kills its executor to stop the job, then starts a fresh one
    second = _wait_for("a fresh executor", lambda: _loading(gate, besides={first}))
    time.sleep(1.5)
    _unclaimed(service, nxt)
    (gate / f"go.{second}").touch()
    service.worker("activate")
    service.worker("analyse")
    _committed_once(service, [nxt])
    assert service.q.get(long).status == JobStatus.cancelled


@pytest.mark.parametrize("handlers, code, says", [
    ("slow_ready_handlers:HANDLERS", 1, "these handlers are broken on purpose"),  # raises in the executor
    ("no_such_handlers_module:HANDLERS", 2, "handlers: cannot load"),
])
def test_an_executor_that_cannot_load_its_handlers_stops_the_worker_before_any_claim(
        service, monkeypatch, handlers, code, says):
    monkeypatch.setenv("NEUROSCRIBE_TEST_READY_FAIL", "1")
    jid = service.q.submit(job("noop")).id
    w = service.worker("generate", "--handlers", handlers)
    assert w.wait(60) == code
    assert says in w.stderr.read().decode()
    _unclaimed(service, jid)


def _mid_shard(service, workers):
    """(worker, shard id): an activate worker of ``workers`` holding a shard whose handler began under
    0.5 s ago (of its 1 s) on a delivery before the last one allowed."""
    names = {f"activate-{socket.gethostname()}-{w.pid}": w for w in workers if w.poll() is None}
    began = {(e["shard"], e["attempt"]): e["t"] for e in service.executions()
             if e["stage"] == "activate" and e["shard"] not in (None, "reduce")}
    stream = service.q._stream("activate")
    service.q.pending("activate")  # (makes the group if no worker has yet)
    for p in service.client.xpending_range(stream, "workers", "-", "+", 100):
        w = names.get(p["consumer"].decode())
        if w is None or p["times_delivered"] >= 4:
            continue
        (_, fields), = service.client.xrange(stream, p["message_id"], p["message_id"])
        sid = (json.loads(fields[b"data"]).get("shard") or {}).get("id")  # (the split's delivery has none)
        t = began.get((sid, p["times_delivered"]))
        if t is not None and time.time() - t < 0.5:
            return w, sid
    return None


def test_kill_9_of_a_worker_holding_a_shard_reruns_that_shard_and_the_reduce_runs_once(service):
    jid = service.q.submit(job("shard 6 1")).id
    service.worker("generate")
    service.worker("analyse")
    acts = [service.worker("activate"), service.worker("activate")]
    victim, sid = _wait_for("a worker mid-way through a shard", lambda: _mid_shard(service, acts))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    acts[acts.index(victim)] = service.worker("activate")
    recs = service.wait_final([jid], timeout=90)
    assert recs[jid].status == JobStatus.succeeded, recs[jid].error
    ex = [e for e in service.executions() if e["job"] == jid and e["stage"] == "activate"]
    runs = Counter(e["shard"] for e in ex)
    assert runs[sid] >= 2, f"the killed shard {sid} did not run again: {runs}"
    assert runs["reduce"] == 1 and runs[None] == 1  # one split, one reduce
    reduce = next(e for e in ex if e["shard"] == "reduce")
    assert reduce["outputs"] == [f"{i:04d}" for i in range(6)]
    tokens = json.loads(service.q.result(jid))["tokens"]
    assert len(tokens) == 1 + 6 + 1 + 1 and len(set(tokens)) == len(tokens)  # each shard committed once
    assert service.q.get(jid).progress["activate"].message.startswith("6 of 6 shards committed")
