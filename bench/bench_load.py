"""Load run of the whole service (issue 14's reliability figures): 500 jobs from 20 concurrent HTTP
clients through `neuroscribe serve` and 2 workers per stage, on a real Redis under its own key
prefix. Always exits 0; prints the figures.

* The workers run the no-op handlers (``bench.noop_handlers``: every stage returns at once), so
  the time is the service's: HTTP, the queue, the workers and their executors, the commits. Jobs
  are experts jobs with the fake generator (three stages: generate, activate, analyse).
* Each client submits its share of the jobs (``Idempotency-Key`` set, as a careful client would),
  reading each job's status right after submitting it, then polls the status of its unfinished
  jobs every 0.25 s until all are final; every status call is timed (the API's status latency
  under load, while the other clients submit).
* End to end = the record's ``updated_at - created_at`` (submit to success, server clocks);
  throughput = jobs / (last success - first submit).
* Redis memory (``used_memory``) and the number of keys under the run's prefix: before the run,
  after it, and after the retention (``neuroscribe gc`` with ``NEUROSCRIBE_JOB_TTL=0``: every
  finished job is past its retention). Flat after retention = nothing kept per job.

    .venv/bin/python bench/bench_load.py [--jobs 500] [--clients 20] [--workers 2] [--redis URL]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests" / "support"))
STAGES = ("generate", "activate", "analyse")
JOB = {"kind": "experts", "concepts": [{"name": "cat"}, {"name": "dog"}], "generator": {"backend": "fake"}}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _neuroscribe() -> list[str]:
    exe = Path(sys.executable).parent / "neuroscribe"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "neuroscribe.service.cli"]


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as f:
        return subprocess.Popen([*_neuroscribe(), *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f)


def stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def client_run(url: str, key: str, n: int, status_ms: list[float], ids: list[str], errors: list[str]) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        mine = []
        for _ in range(n):
            r = http.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": uuid.uuid4().hex})
            if r.status_code != 201:
                errors.append(f"submit {r.status_code}: {r.text[:200]}")
                continue
            mine.append(r.json()["id"])
            t0 = time.perf_counter()  # a client follows its job: one status read per submit, under load
            http.get(f"/v1/jobs/{mine[-1]}")
            status_ms.append(1000 * (time.perf_counter() - t0))
        ids.extend(mine)
        waiting = set(mine)
        while waiting:
            for job_id in list(waiting):
                t0 = time.perf_counter()
                r = http.get(f"/v1/jobs/{job_id}")
                status_ms.append(1000 * (time.perf_counter() - t0))
                if r.status_code != 200:
                    errors.append(f"status {r.status_code}")
                    waiting.discard(job_id)
                elif r.json()["status"] in ("succeeded", "failed", "cancelled"):
                    waiting.discard(job_id)
            time.sleep(0.25)


def memory(r, prefix: str) -> tuple[int, int]:
    return int(r.info("memory")["used_memory"]), sum(1 for _ in r.scan_iter(match=f"{prefix}:*", count=1000))


def run(redis_url: str, n_jobs: int, n_clients: int, n_workers: int) -> None:
    import httpx
    import redis

    from redis_server import delete_prefix, free_port

    prefix = f"nsload-{uuid.uuid4().hex[:10]}"
    queue = f"{redis_url}?prefix={prefix}"
    r = redis.Redis.from_url(redis_url)
    key = uuid.uuid4().hex
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs = []
    with tempfile.TemporaryDirectory(prefix="nsload-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                   NEUROSCRIBE_QUEUE=queue, NEUROSCRIBE_ARTEFACTS=str(tmp / "artefacts"), NEUROSCRIBE_API_KEY=key,
                   NEUROSCRIBE_CACHE=str(tmp / "cache"), NEUROSCRIBE_GC_INTERVAL="0", NEUROSCRIBE_LOG_LEVEL="WARNING",
                   NEUROSCRIBE_RATE_LIMIT="0", HF_HUB_OFFLINE="1")
        mem_before = memory(r, prefix)
        try:
            procs.append(start(["serve", "--port", str(port)], env, tmp / "api.log"))
            for stage in STAGES:
                for i in range(n_workers):
                    procs.append(start(["worker", stage, "--handlers", "bench.noop_handlers:HANDLERS", "--lease", "10",
                                        "--consumer", f"{stage}-{i}"], env, tmp / f"{stage}-{i}.log"))
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/readyz", headers={"Authorization": f"Bearer {key}"}, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the API did not come up: " + (tmp / "api.log").read_text()[-2000:])
                time.sleep(0.2)
            time.sleep(3)  # the workers' executors start
            status_ms: list[float] = []
            ids: list[str] = []
            errors: list[str] = []
            share = [n_jobs // n_clients + (1 if i < n_jobs % n_clients else 0) for i in range(n_clients)]
            threads = [threading.Thread(target=client_run, args=(url, key, k, status_ms, ids, errors)) for k in share]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            pipe = r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(f"{prefix}:job:{job_id}", "status", "created_at", "updated_at")
            rows = [(s.decode(), float(c), float(u)) for s, c, u in pipe.execute()]
            mem_after = memory(r, prefix)
            gc = subprocess.run([*_neuroscribe(), "gc"], env=dict(env, NEUROSCRIBE_JOB_TTL="0"), cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
            mem_gc = memory(r, prefix)
        finally:
            stop(procs)
            delete_prefix(r, prefix)
    ok = [(c, u) for s, c, u in rows if s == "succeeded"]
    e2e = [u - c for c, u in ok]
    span = max(u for _, u in ok) - min(c for c, _ in ok)
    print(f"Redis {r.info('server')['redis_version']} at {redis_url}; {os.cpu_count()} CPUs; "
          f"{n_jobs} jobs from {n_clients} clients; {n_workers} workers per stage ({', '.join(STAGES)}), no-op handlers")
    print(f"  succeeded            {len(ok)} of {len(rows)} ({len(errors)} HTTP errors{': ' + errors[0] if errors else ''})")
    print(f"  throughput           {len(ok) / span:.2f} jobs/s")
    print(f"  end to end           p50 {pct(e2e, 0.5):.2f} s   p99 {pct(e2e, 0.99):.2f} s   (mean {statistics.mean(e2e):.2f} s)")
    print(f"  GET status latency   p50 {pct(status_ms, 0.5):.1f} ms   p99 {pct(status_ms, 0.99):.1f} ms   "
          f"({len(status_ms)} calls)")
    print(f"  Redis used_memory    before {mem_before[0] / 2**20:.2f} MiB, after the run {mem_after[0] / 2**20:.2f} MiB, "
          f"after retention {mem_gc[0] / 2**20:.2f} MiB")
    print(f"  keys under prefix    before {mem_before[1]}, after the run {mem_after[1]}, after retention {mem_gc[1]}")
    print(f"  gc                   {gc.stdout.strip() or gc.stderr.strip()[-300:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--redis", default=os.environ.get("NEUROSCRIBE_BENCH_REDIS"))
    args = ap.parse_args()
    if args.redis:
        url = args.redis
    else:
        from redis_server import redis_url

        url = redis_url()
    try:
        run(url, args.jobs, args.clients, args.workers)
    except Exception as e:  # a benchmark reports, it does not fail the build
        print(f"load run failed: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
