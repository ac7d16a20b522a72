"""Benchmark (issue 17): the wire and Redis size of a big describe job, inline vs by reference.

A describe job over ``--sentences`` (default 100,000) distinct synthetic sentences (about 80 bytes
each, labels 1/0) is submitted to the real API app (in process, ``TestClient``) over the real
``RedisQueue`` on the local Redis, under a throwaway key prefix that is deleted afterwards:

  inline      the job carries its sentences (``"dataset": {"name", "texts", "labels", ...}``)
  reference   the dataset is uploaded once (``POST /v1/datasets``), then the job says
              ``"dataset": {"sha256": ...}``

For each it measures the request body of ``POST /v1/jobs`` (bytes), the time the API took to admit
it, the Redis footprint right after the submit (``MEMORY USAGE ... SAMPLES 0`` of every key under the
prefix: the first stage's stream, the job's hash, the indexes), and the bytes of the stage messages
as the job is handed from stage to stage (each stage's message read with ``XRANGE``, the stages
driven with ``claim``/``complete`` and a small hand-off, as the workers do). The upload itself is
measured once (its body and time), and so is what a worker does with the reference before each stage
(``dataset_store.resolve_dataset``: read, hash, validate). Prints both sides and the ratios; ``--json
FILE`` saves them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ADJ = ["sturdy", "flimsy", "bright", "dim", "loud", "quiet", "cheap", "pricey", "light", "heavy"]
NOUN = ["charger", "headset", "battery", "screen", "case", "cable", "speaker", "keyboard", "camera", "adapter"]
VERB = ["worked fine", "stopped working", "felt solid", "broke down", "held up well", "ran hot"]


def sentences(n: int) -> list[str]:
    """``n`` distinct sentences of about 80 bytes."""
    return [f"Review {i}: the {ADJ[i % 10]} {NOUN[(i // 10) % 10]} {VERB[(i // 100) % 6]} after "
            f"{1 + i % 30} days of daily use at my desk." for i in range(n)]


def _footprint(r, prefix: str) -> dict:
    keys = sorted(k.decode() for k in r.scan_iter(match=f"{prefix}:*", count=1000))
    sizes = {k.removeprefix(prefix + ":"): int(r.memory_usage(k, samples=0) or 0) for k in keys}
    stream = sum(v for k, v in sizes.items() if k.startswith("s:"))
    job = sum(v for k, v in sizes.items() if k.startswith("job:"))
    return {"total": sum(sizes.values()), "stage_stream": stream, "job_hash": job,
            "other": sum(sizes.values()) - stream - job, "keys": len(keys)}


def _stage_messages(queue, r, prefix: str, job_id: str, stages: tuple[str, ...]) -> list[int]:
    """The bytes of each stage's message (its ``data`` field), handing the job on stage by stage."""
    out = []
    for i, stage in enumerate(stages):
        entries = r.xrange(f"{prefix}:s:{stage}")
        out.append(sum(len(fields[b"data"]) for _id, fields in entries))
        if i == len(stages) - 1:
            break
        d = queue.claim(stage, "bench", block_s=0)
        assert d is not None and d.job_id == job_id, f"no delivery of {job_id} in {stage}"
        assert queue.complete(d, handoff={"stage": stage, "files": f"{job_id}/{stage}"})
    return out


def _clear(r, prefix: str) -> None:
    keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i:i + 500])


def _post(http, path: str, body: bytes):
    t0 = time.perf_counter()
    resp = http.post(path, content=body, headers={"content-type": "application/json"})
    return resp, time.perf_counter() - t0


def _compact(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def run(n: int, redis_url: str) -> dict:
    import redis
    from fastapi.testclient import TestClient

    from neuroscribe.service import registry
    from neuroscribe.service.api import create_app
    from neuroscribe.service.dataset_store import resolve_dataset
    from neuroscribe.service.registry import parse_job
    from neuroscribe.service.queue.redis_queue import RedisQueue
    from neuroscribe.settings import Settings

    texts = sentences(n)
    dataset = {"name": "synthetic.txt", "texts": texts, "labels": ["1" if i % 2 else "0" for i in range(n)],
               "label_names": {"1": "positive", "0": "negative"}}
    base = {"kind": "describe", "generator": {"backend": "fake"}}
    stages = registry.kinds()["describe"].stages
    root = Path(tempfile.mkdtemp(prefix="neuroscribe-bench-ref-"))
    prefix = f"bench-ref-{uuid.uuid4().hex[:12]}"
    r = redis.Redis.from_url(redis_url)
    settings = Settings.build(artefacts=root / "artefacts", cache_dir=root / "cache", max_sentences=max(n, 50_000),
                              max_body_bytes=256 * 2**20, dataset_max_bytes=256 * 2**20, dataset_quota_bytes=0)
    out: dict = {"sentences": n, "mean_sentence_bytes": sum(len(t.encode()) for t in texts) / n}
    try:
        for side in ("inline", "reference"):
            queue = RedisQueue(r, prefix=prefix)  # a fresh one per side: the first side's keys are gone
            http = TestClient(create_app(queue, artefacts_dir=root / "artefacts", settings=settings))
            if side == "reference":
                body = _compact({"kind": "describe", "dataset": dataset})
                resp, took = _post(http, "/v1/datasets", body)
                assert resp.status_code == 201, resp.text
                out["upload"] = {"body_bytes": len(body), "seconds": round(took, 3), "stored_bytes": resp.json()["bytes"]}
                job = {**base, "dataset": {"sha256": resp.json()["sha256"]}}
            else:
                job = {**base, "dataset": dataset}
            body = _compact(job)
            resp, took = _post(http, "/v1/jobs", body)
            assert resp.status_code == 201, resp.text
            job_id = resp.json()["id"]
            redis_after = _footprint(r, prefix)
            messages = _stage_messages(queue, r, prefix, job_id, stages)
            out[side] = {"body_bytes": len(body), "admit_seconds": round(took, 3), "redis_after_submit": redis_after,
                         "stage_message_bytes": messages, "stage_messages_total": sum(messages)}
            if side == "reference":  # what each stage's executor does before its handler: read, hash, validate
                parsed = parse_job(job)
                t0 = time.perf_counter()
                resolve_dataset(parsed, settings)
                out[side]["resolve_seconds"] = round(time.perf_counter() - t0, 3)
            _clear(r, prefix)
    finally:
        _clear(r, prefix)
        shutil.rmtree(root, ignore_errors=True)
    out["ratio_body"] = out["inline"]["body_bytes"] / out["reference"]["body_bytes"]
    out["ratio_redis"] = out["inline"]["redis_after_submit"]["total"] / out["reference"]["redis_after_submit"]["total"]
    out["ratio_stage_messages"] = out["inline"]["stage_messages_total"] / out["reference"]["stage_messages_total"]
    return out


def _mib(n: float) -> str:
    return f"{n:,.0f} B ({n / 2**20:.2f} MiB)"


def report(res: dict) -> str:
    lines = [f"describe job over {res['sentences']:,} sentences (mean {res['mean_sentence_bytes']:.1f} bytes each)",
             f"upload once (reference): body {_mib(res['upload']['body_bytes'])}, stored {_mib(res['upload']['stored_bytes'])}, "
             f"{res['upload']['seconds']:.2f} s"]
    for side in ("inline", "reference"):
        s = res[side]
        red = s["redis_after_submit"]
        lines += [f"{side:9s}  POST /v1/jobs body {_mib(s['body_bytes'])}, admitted in {s['admit_seconds']:.2f} s",
                  f"{'':9s}  Redis after submit {_mib(red['total'])} (stage stream {red['stage_stream']:,}, job hash "
                  f"{red['job_hash']:,}, other {red['other']:,}; {red['keys']} keys)",
                  f"{'':9s}  stage messages {', '.join(f'{b:,}' for b in s['stage_message_bytes'])} = "
                  f"{_mib(s['stage_messages_total'])} through Redis over the job's {len(s['stage_message_bytes'])} stages"]
    lines.append(f"a worker resolving the reference (read, sha256, validate; once per stage): "
                 f"{res['reference']['resolve_seconds']:.2f} s")
    lines.append(f"ratio inline/reference: body {res['ratio_body']:,.0f}x, Redis after submit {res['ratio_redis']:,.0f}x, "
                 f"stage messages {res['ratio_stage_messages']:,.0f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=100_000)
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="A Redis to use (a throwaway prefix).")
    p.add_argument("--json", type=Path, default=None, help="Also save the numbers as JSON.")
    args = p.parse_args(argv)
    res = run(args.sentences, args.redis)
    print(report(res))
    if args.json is not None:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
