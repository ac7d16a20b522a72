"""Benchmark (issue 17): one describe job's activate stage sharded across activate workers.

A describe job over ``--sentences`` (default 20,000) distinct sentences (the packaged Amazon reviews,
each numbered: "... Review 1234.") on the packaged MiniLM (every layer, mlp_post, mean pooling), the
descriptors and vocabulary made once (fake generator) and copied in by ``sharded_handlers.py``, then
the real activate stage on the Redis queue with real worker processes (``neuroscribe worker
activate``):

  unsharded   one activate worker, ``NEUROSCRIBE_SHARD_ROWS=0`` (today's stage): the baseline
  1, 2, 4     that many activate workers, shards of ``--shard-rows`` sentences (default 2,048, one window:
              10 shards)

Each run is timed from the job entering the activate stage to it leaving it (the record's stage,
polled every 20 ms), and its ``stage/exemplars`` files are compared array by array with the
unsharded run's (identical required). Each worker gets ``cores // workers`` torch threads (at least
one), so the runs share this machine's cores alike. Prints the times, the ratios against the
unsharded run and the identity check; ``--json FILE`` saves them. Always exits 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NEUROSCRIBE = str(Path(sys.executable).parent / "neuroscribe")


def sentences(n: int) -> list[str]:
    from neuroscribe.service.describe.dataset import load_dataset_spec

    base = load_dataset_spec(Path("amazon"))
    return [f"{base.texts[i % len(base.texts)]} Review {i}." for i in range(n)], \
        [base.labels[i % len(base.texts)] for i in range(n)]


def make_job(n: int):
    from neuroscribe.jobs import DescribeJob

    texts, labels = sentences(n)
    return DescribeJob.model_validate({
        "kind": "describe", "dataset": {"name": f"amazon-numbered-{n}", "texts": texts, "labels": labels,
                                        "label_names": {"1": "positive", "0": "negative"}},
        "model": {"name": "minilm", "site": "mlp_post", "pooling": "mean", "batch_size": 64, "max_length": 64},
        "generator": {"backend": "fake", "model": "fake"}, "explain_units": 0, "token_evidence": False})


def prepare(job, folder: Path) -> None:
    """The descriptors and vocabulary of ``job`` (fake generator, MiniLM clustering), once."""
    from neuroscribe.service import runtime
    from neuroscribe.settings import Settings
    from neuroscribe.workers.describe.stages import descriptors_stage, vocabulary_stage
    from neuroscribe.workers.describe.vocabulary import minilm_embedder

    t0 = time.perf_counter()
    d = descriptors_stage(job, runtime.generator_for(job.generator, Settings.from_env()), progress=False)
    v = vocabulary_stage(job, d, embed=minilm_embedder())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "descriptors.json").write_text(json.dumps(d.to_json()))
    (folder / "vocabulary.json").write_text(json.dumps(v.to_json()))
    print(f"prepared descriptors and vocabulary of {len(job.dataset.texts):,} sentences in "
          f"{time.perf_counter() - t0:.1f} s")


def run(job, prepared: Path, root: Path, workers: int, shard_rows: int, redis_url: str) -> tuple[float, Path]:
    import redis

    from neuroscribe.service.queue.redis_queue import RedisQueue

    prefix = f"bench-shards-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    q = RedisQueue(client, prefix=prefix, lease_s=60)
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "BENCH_PREPARED": str(prepared), "NEUROSCRIBE_SHARD_ROWS": str(shard_rows), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "NEUROSCRIBE_AUTO_INDEX": "0",
           "NEUROSCRIBE_LOG_LEVEL": "WARNING"}

    def worker(stage):
        return subprocess.Popen([NEUROSCRIBE, "worker", stage, "--queue", f"{redis_url}?prefix={prefix}",
                                 "--artefacts", str(root), "--handlers", "bench.sharded_handlers:HANDLERS",
                                 "--lease", "60"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    procs = [worker("generate"), worker("cluster")] + [worker("activate") for _ in range(workers)]
    try:
        rec = q.submit(job.model_dump(mode="json"))
        t_in = t_out = None
        deadline = time.monotonic() + 3600
        while t_out is None:
            r = q.get(rec.id)
            if r.status.is_final:
                raise RuntimeError(f"the job ended at {r.stage}: {r.status.value} {r.error}")
            if t_in is None and r.stage == "activate":
                t_in = time.perf_counter()
            if r.stage == "analyse":
                t_out = time.perf_counter()
            if time.monotonic() > deadline:
                raise RuntimeError("the activate stage did not finish within an hour")
            time.sleep(0.02)
        q.cancel(rec.id)
        return t_out - t_in, root / rec.id / "stage" / "exemplars"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def same_files(a: Path, b: Path) -> tuple[bool, list[str]]:
    """Every file of the two exemplars folders equal (npz arrays by value, the rest byte for byte;
    the provenance's environment, which names the process, is left out)."""
    diff = []
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False, [f"files differ: {names} vs {sorted(p.name for p in b.iterdir())}"]
    for name in names:
        if name.endswith(".npz"):
            x, y = np.load(a / name), np.load(b / name)
            if sorted(x.files) != sorted(y.files):
                diff.append(f"{name}: arrays {x.files} vs {y.files}")
            diff += [f"{name}:{k}" for k in x.files if not np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind == "f")]
        elif name.endswith(".json"):
            x, y = json.loads((a / name).read_text()), json.loads((b / name).read_text())
            for obj in (x, y):
                if isinstance(obj, dict) and isinstance(obj.get("info"), dict):
                    obj["info"].pop("environment", None)
            if x != y:
                diff.append(name)
        elif (a / name).read_bytes() != (b / name).read_bytes():
            diff.append(name)
    return not diff, diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=20_000)
    ap.add_argument("--shard-rows", type=int, default=2_048)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    job = make_job(args.sentences)
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        tmp = Path(tmp)
        prepare(job, tmp / "prepared")
        base_t, base_dir = run(job, tmp / "prepared", tmp / "unsharded", 1, 0, args.redis)
        n_shards = -(-args.sentences // args.shard_rows)
        print(f"activate stage, {args.sentences:,} sentences, MiniLM (6 x 1,536 units), cores {os.cpu_count()}")
        print(f"  unsharded, 1 worker:        {base_t:8.1f} s   (baseline)")
        rows = [{"workers": 1, "shards": 0, "seconds": base_t}]
        for w in (int(x) for x in args.workers.split(",")):
            t, d = run(job, tmp / "prepared", tmp / f"w{w}", w, args.shard_rows, args.redis)
            ok, diff = same_files(base_dir, d)
            rows.append({"workers": w, "shards": n_shards, "seconds": t, "identical": ok, "differing": diff})
            print(f"  {n_shards} shards, {w} worker(s):    {t:8.1f} s   unsharded/this {base_t / t:5.2f}x   "
                  f"identical exemplars and statistics: {ok}{'' if ok else ' ' + ', '.join(diff[:5])}")
            shutil.rmtree(tmp / f"w{w}", ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"sentences": args.sentences, "shard_rows": args.shard_rows,
                                         "cores": os.cpu_count(), "runs": rows}, indent=2) + "\n")
    return 0 if all(r.get("identical", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
