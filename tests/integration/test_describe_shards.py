"""A describe job whose activate stage is split into shards of sentences (NEUROSCRIBE_SHARD_ROWS), taken
by two activate worker processes, merged by one reduce: the same result as the embedded run, and the
same exemplar files as an unsharded service run."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuroscribe.jobs import DescribeResult
from neuroscribe.settings import Settings
from redis_server import delete_prefix, redis_url, unique_prefix
from tiny_models import make_tiny_model

NEUROSCRIBE = str(Path(sys.executable).parent / "neuroscribe")
WINDOW = 8


def _job(model: Path, data: Path):
    from neuroscribe.service.describe.cli import build_describe_job

    return build_describe_job(model=str(model), revision=None, dataset=data, text_col="text", label_col="label",
                              label_names=("1=positive", "0=negative"), label_word_match=True, layers=(),
                              site="mlp_post", pooling="max", top_percent=20.0, threshold=50.0, fdr=None,
                              fdr_family="tested", min_cluster_size=2, min_samples=None, cluster_selection="leaf",
                              reduce_to=None, consistency=True, ks=(), generator="fake", gen_batch_size=8,
                              batch_size=3, max_length=32, device="cpu", seed=0, trust_remote_code=False,
                              min_valid=2)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("shard-inputs")
    rows = [("the phone works great and the battery is good", 1), ("the screen broke after a week", 0),
            ("great sound quality for the price", 1), ("the case is poor and the battery is bad", 0)] * 7
    data = d / "reviews.tsv"
    text = "text\tlabel\n" + "".join(f"{t} number {i}\t{lab}\n" for i, (t, lab) in enumerate(rows))
    data.write_text(text + "the phone works great and the battery is good number 3\t1\n")  # a repeated sentence
    return make_tiny_model("bert", d / "bert"), data


def _serve(root: Path, shard_rows: int, activate_workers: int, job) -> tuple[dict, Path]:
    """Run ``job`` on real worker processes (one per stage, ``activate_workers`` activate ones)."""
    import redis

    from neuroscribe.service.queue.redis_queue import RedisQueue

    prefix = unique_prefix()
    client = redis.Redis.from_url(redis_url())
    q = RedisQueue(client, prefix=prefix, lease_s=5)
    env = {**os.environ, "NEUROSCRIBE_QUEUE": f"{redis_url()}?prefix={prefix}", "NEUROSCRIBE_ARTEFACTS": str(root),
           "NEUROSCRIBE_CACHE": str(root / "cache"), "HF_HUB_OFFLINE": "1", "NEUROSCRIBE_SHARD_ROWS": str(shard_rows),
           "NEUROSCRIBE_SHARDS_IN_FLIGHT": "2", "NEUROSCRIBE_EXEMPLAR_WINDOW": str(WINDOW),
           "NEUROSCRIBE_MODELS": f"minilm,{job.model.name}", "NEUROSCRIBE_AUTO_INDEX": "0"}
    stages = ["generate", "cluster", *["activate"] * activate_workers, "analyse", "explain"]
    procs = [subprocess.Popen([NEUROSCRIBE, "worker", s, "--lease", "5"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for s in stages]
    try:
        rec = q.submit(job.model_dump(mode="json"))
        deadline = time.monotonic() + 240
        while not (got := q.get(rec.id)).status.is_final:
            assert time.monotonic() < deadline, f"not final: {got.stage} {got.progress}"
            time.sleep(0.1)
        assert got.status.value == "succeeded", got.error
        return got.model_dump(mode="json"), root / rec.id
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        delete_prefix(client, prefix)


def _result(folder: Path) -> dict:
    d = DescribeResult.model_validate_json((folder / "result" / "descriptions.json").read_text()).model_dump(mode="json")
    d["provenance"].pop("created_at")
    return d


def _arrays(folder: Path) -> dict:
    out = {}
    for f in sorted((folder / "stage" / "exemplars").glob("*.npz")):
        with np.load(f) as z:
            out.update({f"{f.name}:{k}": z[k] for k in z.files})
    return out


def test_sharded_activate_equals_the_unsharded_and_the_embedded_run(inputs, tmp_path):
    from neuroscribe.service.describe.embedded import run_describe_job

    model, data = inputs
    job = _job(model, data)
    embedded = run_describe_job(job, tmp_path / "embedded", progress=False, log=lambda _m: None,
                                settings=Settings.build(cache_dir=tmp_path / "cache", exemplar_window=WINDOW))
    rec, sharded = _serve(tmp_path / "sharded", 8, 2, job)  # 29 sentences: 4 shards of 8, 2 in flight
    assert rec["progress"]["activate"]["message"].startswith("4 of 4 shards committed")
    _, whole = _serve(tmp_path / "whole", 0, 1, job)
    served = _result(sharded)
    emb = embedded.model_dump(mode="json")
    emb["provenance"].pop("created_at")
    assert served == emb
    assert served["n_described"] > 0
    a, b = _arrays(sharded), _arrays(whole)
    assert a.keys() == b.keys() and a
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k
    assert not (sharded / "stage" / "shards").exists() or not any((sharded / "stage" / "shards").rglob("*.npz"))
    info = json.loads((sharded / "stage" / "exemplars" / "exemplars.json").read_text())
    assert info["k"] == json.loads((whole / "stage" / "exemplars" / "exemplars.json").read_text())["k"]
