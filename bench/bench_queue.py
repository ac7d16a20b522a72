"""Benchmark: 2,000 no-op jobs through one stage of the Redis queue, 2 workers, against a bare
redis-py XADD / XREADGROUP / XACK loop on the same server, in the same run. Always exits 0.

What is measured, and why that way:

* **The service path.** 2 real workers (``neuroscribe worker generate --handlers
  bench.noop_handlers:HANDLERS --lease 5``), each a supervisor process plus its executor process,
  exactly as deployed. The handler returns at once, so the time is the queue's and the worker's:
  claim (promote due retries, ``XAUTOCLAIM``, ``XREADGROUP COUNT 1``, ``XPENDING``, start script),
  the JSON round trip to the executor (which validates the job), lease renewal, and the atomic
  commit (Lua: hand-off into the next stream, job hash, ``XACK`` + ``XDEL``). Jobs are submitted
  with ``JobQueue.submit`` (the API's path minus HTTP).
* **One stage.** Experts jobs have three stages; only ``generate`` is served here. A job counts as
  complete when its ``generate`` stage is committed: its hand-off lands in the ``activate`` stream
  (polled with ``XLEN``) and the commit stamps the job hash's ``updated_at`` (nothing serves
  ``activate``, so it is not touched again). Submit-to-complete latency = ``updated_at -
  created_at`` of each job hash (both ``time.time()`` on this machine).
* **The bare loop.** The same payload (the job's JSON) ``XADD``-ed by this process; 2 consumer
  processes each ``XREADGROUP COUNT 1`` then ``XACK``; latency = ack time - the time written in
  the message.
* **Two loads.** *Burst*: all 2,000 submitted as fast as one client can (throughput = jobs / (last
  completion - first submit); latency here is mostly waiting in the queue). *Paced*: 200 jobs at
  a fixed rate well below both throughputs (latency = the path's own overhead).
* Rounds alternate bare / service so that load from other processes hits both alike; medians
  are reported (the ratio: the median of the rounds' ratios). Target: service throughput >= 0.3 x
  the bare loop's. Both sides share the machine's CPUs with Redis and the submitting process, as
  a one-machine deployment would.

Redis: ``--redis URL`` (default ``$NEUROSCRIBE_BENCH_REDIS`` or 127.0.0.1:6379, else a
``redis-server`` started on a free port by ``tests/redis_server.py``). Every key lives under a
fresh ``nsbench-*`` prefix and is deleted at the end; the workers are stopped (SIGTERM, then kill).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `bench.noop_handlers` for the workers' executors (and PYTHONPATH below)
sys.path.insert(1, str(ROOT / "tests" / "support"))  # redis_server: start a Redis when none answers

N_JOBS, N_WORKERS, N_PACED, PACED_RATE, ROUNDS, LEASE_S, TARGET = 2_000, 2, 200, 100.0, 3, 5.0, 0.3
JOB = {"kind": "experts", "concepts": [{"name": "cat"}, {"name": "dog"}]}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summary(n: int, t0: float, latencies: list[float], ends: list[float]) -> dict:
    return {"jobs_s": n / (max(ends) - t0), "p50_ms": 1e3 * pct(latencies, 0.5), "p99_ms": 1e3 * pct(latencies, 0.99)}


# ---------------------------------------------------------------- the bare loop
def _bare_consumer(url: str, stream: str, name: str, out) -> None:
    import redis

    r = redis.Redis.from_url(url)
    got = []
    while True:
        resp = r.xreadgroup("bare", name, {stream: ">"}, count=1, block=1000)
        if not resp:
            continue
        msg_id, fields = resp[0][1][0]
        r.xack(stream, "bare", msg_id)
        if fields.get(b"stop"):
            break
        got.append((float(fields[b"t"]), time.time()))
    out.put(got)


def bare_round(url: str, prefix: str, payload: str, n: int, rate: float | None) -> dict:
    import redis

    r = redis.Redis.from_url(url)
    stream = f"{prefix}:bare:{uuid.uuid4().hex[:6]}"
    r.xgroup_create(stream, "bare", id="0", mkstream=True)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_bare_consumer, args=(url, stream, f"c{i}", out), daemon=True)
             for i in range(N_WORKERS)]
    for p in procs:
        p.start()
    for _ in range(2 * N_WORKERS):  # warm up: both consumers connected and blocked in XREADGROUP
        last = r.xadd(stream, {"t": repr(time.time()), "data": payload})
    while int(r.xpending(stream, "bare")["pending"]) or r.xinfo_groups(stream)[0]["last-delivered-id"] != last:
        time.sleep(0.01)
    time.sleep(0.2)
    t0 = time.time()
    for i in range(n):
        if rate:
            time.sleep(max(0.0, t0 + i / rate - time.time()))
        r.xadd(stream, {"t": repr(time.time()), "data": payload})
    for _ in procs:
        r.xadd(stream, {"stop": "1"})
    pairs = [x for _ in procs for x in out.get(timeout=120)]
    for p in procs:
        p.join(10)
    pairs = [(t, a) for t, a in pairs if t >= t0]
    assert len(pairs) == n, f"bare loop: {len(pairs)} of {n} messages acknowledged"
    return summary(n, t0, [a - t for t, a in pairs], [a for _, a in pairs])


# ---------------------------------------------------------------- the service path
def _neuroscribe() -> list[str]:
    exe = Path(sys.executable).parent / "neuroscribe"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "neuroscribe.service.cli"]


def start_workers(queue_url: str, tmp: Path) -> list[tuple[subprocess.Popen, Path]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               NEUROSCRIBE_CACHE=str(tmp / "cache"))
    workers = []
    for i in range(N_WORKERS):
        log = tmp / f"worker-{i}.log"
        with open(log, "w") as f:
            p = subprocess.Popen([*_neuroscribe(), "worker", "generate", "--handlers", "bench.noop_handlers:HANDLERS",
                                  "--queue", queue_url, "--lease", str(LEASE_S), "--artefacts", str(tmp / "artefacts"),
                                  "--cache-dir", str(tmp / "cache"), "--consumer", f"bench-{i}"],
                                 env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f)
        workers.append((p, log))
    return workers


def stop_workers(workers) -> None:
    for p, _ in workers:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p, _ in workers:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _wait_committed(r, stream: str, count: int, workers, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while r.xlen(stream) < count:
        dead = [str(log) for p, log in workers if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"{r.xlen(stream)} of {count} committed; dead workers: {dead}; "
                               + "\n".join(log.read_text()[-1500:] for _, log in workers))
        time.sleep(0.01)


def warm_up(q, workers, stream: str) -> None:
    """Until every worker has committed a job (its executor process is spawned at its first job)."""
    for _ in range(200):
        q.submit(JOB)
        _wait_committed(q.r, stream, q.r.xlen(stream) + 1, workers)
        if all(log.read_text().count("committed") for _, log in workers):
            return
    raise RuntimeError("a worker committed nothing during the warm-up")


def service_round(q, workers, stream: str, n: int, rate: float | None) -> dict:
    before = q.r.xlen(stream)
    time.sleep(0.2)
    ids = []
    t0 = time.time()
    for i in range(n):
        if rate:
            time.sleep(max(0.0, t0 + i / rate - time.time()))
        ids.append(q.submit(JOB).id)
    _wait_committed(q.r, stream, before + n, workers)
    pipe = q.r.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(q._job(job_id), "created_at", "updated_at", "stage")
    rows = [(float(c), float(u), s.decode()) for c, u, s in pipe.execute()]
    assert all(s == "activate" for _, _, s in rows), "a job is not past its generate stage"
    return summary(n, t0, [u - c for c, u, _ in rows], [u for _, u, _ in rows])


# ---------------------------------------------------------------- main
def median_round(rounds: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def line(name: str, s: dict) -> str:
    return f"  {name:<34} {s['jobs_s']:9.0f} jobs/s   p50 {s['p50_ms']:7.2f} ms   p99 {s['p99_ms']:8.2f} ms"


def run(url: str) -> None:
    import redis

    from neuroscribe.jobs import parse_job
    from neuroscribe.service.queue import make_queue

    job = parse_job(JOB).model_dump(mode="json")  # what the API would enqueue: the full job
    payload = json.dumps({"job": job, "handoff": None})
    prefix = f"nsbench-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(url)
    q = make_queue(f"{url}?prefix={prefix}", lease_s=LEASE_S)
    stream = q._stream("activate")
    info = client.info("server")
    print(f"Redis {info['redis_version']} at {url}; {N_WORKERS} workers / consumers, {os.cpu_count()} CPUs; "
          f"{ROUNDS} rounds, median reported")
    workers = []
    with tempfile.TemporaryDirectory(prefix="nsbench-") as tmp:
        try:
            workers = start_workers(f"{url}?prefix={prefix}", Path(tmp))
            warm_up(q, workers, stream)
            res: dict[str, list[dict]] = {"bare burst": [], "service burst": [], "bare paced": [], "service paced": []}
            for _ in range(ROUNDS):
                res["bare burst"].append(bare_round(url, prefix, payload, N_JOBS, None))
                res["service burst"].append(service_round(q, workers, stream, N_JOBS, None))
            res["bare paced"].append(bare_round(url, prefix, payload, N_PACED, PACED_RATE))
            res["service paced"].append(service_round(q, workers, stream, N_PACED, PACED_RATE))
        finally:
            stop_workers(workers)
            from redis_server import delete_prefix

            delete_prefix(client, prefix)
    m = {k: median_round(v) for k, v in res.items()}
    print(f"burst: {N_JOBS} jobs submitted at once (latency includes the wait in the queue)")
    print(line("bare XADD/XREADGROUP/XACK", m["bare burst"]))
    print(line("neuroscribe queue + 2 workers", m["service burst"]))
    ratios = [s["jobs_s"] / b["jobs_s"] for b, s in zip(res["bare burst"], res["service burst"])]
    for i, (b, s) in enumerate(zip(res["bare burst"], res["service burst"]), 1):
        print(f"    round {i}: bare {b['jobs_s']:.0f} jobs/s, service {s['jobs_s']:.0f} jobs/s, "
              f"ratio {ratios[i - 1]:.2f}")
    print(f"paced: {N_PACED} jobs at {PACED_RATE:g} jobs/s (latency = the path's own overhead)")
    print(line("bare XADD/XREADGROUP/XACK", m["bare paced"]))
    print(line("neuroscribe queue + 2 workers", m["service paced"]))
    ratio = statistics.median(ratios)
    print(f"throughput ratio service / bare (median of the rounds): {ratio:.2f} (target >= {TARGET}): {'met' if ratio >= TARGET else 'NOT met'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redis", default=os.environ.get("NEUROSCRIBE_BENCH_REDIS"),
                    help="Redis URL (default: 127.0.0.1:6379, else a redis-server started for the run)")
    args = ap.parse_args()
    try:
        if args.redis:
            url = args.redis
        else:
            from redis_server import redis_url

            url = redis_url()
        run(url)
    except Exception as e:  # noqa: BLE001 - a benchmark reports, it never fails the build
        print(f"bench_queue: could not run: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
