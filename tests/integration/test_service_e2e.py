"""The service end to end, as it is deployed but without Docker: `neuroscribe serve` and one
`neuroscribe worker` per stage as local processes on a real Redis. An experts job submitted by the
Python client and one submitted by the CLI both give the embedded run's result on the same sentences."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.experts.cli import build_experts_job
from neuroscribe.settings import Settings
from neuroscribe.service.client import Client
from neuroscribe.service.experts.embedded import run_experts_job
from redis_server import delete_prefix, free_port, redis_url, unique_prefix
from test_cli import SENTENCES, _write_sentences
from tiny_models import make_tiny_model

NEUROSCRIBE = str(Path(sys.executable).parent / "neuroscribe")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    import redis

    root = tmp_path_factory.mktemp("service")
    prefix = unique_prefix()
    queue = f"{redis_url()}?prefix={prefix}"
    port = free_port()
    env = {**os.environ, "NEUROSCRIBE_QUEUE": queue, "NEUROSCRIBE_ARTEFACTS": str(root / "artefacts"),
           "NEUROSCRIBE_CACHE": str(root / "cache"), "HF_HUB_OFFLINE": "1",
           # the server's policy: the tiny models these tests make (under pytest's temporary folder)
           "NEUROSCRIBE_MODELS": f"minilm,{tmp_path_factory.getbasetemp()}/*"}
    env.pop("NEUROSCRIBE_API_KEY", None)
    procs = [subprocess.Popen([NEUROSCRIBE, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([NEUROSCRIBE, "worker", stage, "--lease", "5"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for stage in ("generate", "cluster", "activate", "analyse", "explain")]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "neuroscribe serve did not come up"
        time.sleep(0.2)
    yield {"url": url, "env": env, "root": root}
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    delete_prefix(redis.Redis.from_url(redis_url()), prefix)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    return make_tiny_model("bert", d / "bert"), _write_sentences(d / "s.jsonl", SENTENCES)


def _job(model, sentences):
    return build_experts_job(models=(str(model),), revisions=(), concepts=("cat:animal", "bus"),
                             sentences_file=sentences, generator="fake", temperature=None, max_new_tokens=None,
                             gen_batch_size=4, trust_remote_code=False, site="mlp_post", pooling="max", layers=(),
                             batch_size=4, max_length=32, device="cpu", tau=0.8, n_pos=4, n_neg=4, top_n=5,
                             max_rounds=1, seed=0)


def _comparable(result: ExpertsResult) -> dict:
    d = result.model_dump(mode="json")
    d["provenance"].pop("created_at")
    return d


def test_client_job_through_the_queues_equals_the_embedded_run(deployment, inputs, tmp_path):
    model, sentences = inputs
    job = _job(model, sentences)
    embedded = run_experts_job(job, tmp_path / "embedded", progress=False, settings=Settings.build(cache_dir=tmp_path / "cache"),
                               log=lambda _m: None)
    with Client(deployment["url"]) as c:
        rec = c.submit(job, idempotency_key="e2e-client")
        assert c.submit(job, idempotency_key="e2e-client").id == rec.id
        done = c.wait(rec.id, timeout=180, progress=False)
        assert done.status.value == "succeeded" and set(done.progress) == {"generate", "activate", "analyse"}
        served = c.result(rec.id)
        files = c.artefacts(rec.id)
    assert _comparable(served) == _comparable(embedded)
    assert {"result/experts.json", "result/report.html", "result/ap.csv", "result/sentences.jsonl"} <= set(files)
    assert (tmp_path / "embedded" / "ap.csv").read_text() == (
        deployment["root"] / "artefacts" / rec.id / "result" / "ap.csv").read_text()


def test_cli_submit_wait_and_result_equal_the_embedded_run(deployment, inputs, tmp_path):
    model, sentences = inputs
    env = {**deployment["env"], "NEUROSCRIBE_URL": deployment["url"]}
    args = ["--model", str(model), "--sentences", str(sentences), "--concept", "cat:animal", "--concept", "bus",
            "--tau", "0.8", "--n-pos", "4", "--n-neg", "4", "--top-n", "5", "--rounds", "1", "--batch-size", "4",
            "--max-length", "32", "--device", "cpu"]
    sub = subprocess.run([NEUROSCRIBE, "submit", "experts", *args], env=env, capture_output=True, text=True,
                         timeout=60)
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip().splitlines()[-1]
    waited = subprocess.run([NEUROSCRIBE, "wait", job_id, "--timeout", "180"], env=env, capture_output=True,
                            text=True, timeout=200)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "succeeded"
    status = subprocess.run([NEUROSCRIBE, "status", job_id], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(status.stdout)["id"] == job_id
    out = tmp_path / "fetched"
    got = subprocess.run([NEUROSCRIBE, "result", job_id, "--out", str(out)], env=env, capture_output=True,
                         text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    emb = tmp_path / "embedded"
    run = subprocess.run([NEUROSCRIBE, "experts", *args, "--quiet", "--cache-dir", str(tmp_path / "c"), "--out",
                          str(emb)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    a = _comparable(ExpertsResult.model_validate_json((out / "experts.json").read_text()))
    b = _comparable(ExpertsResult.model_validate_json((emb / "experts.json").read_text()))
    assert a == b
    assert (out / "report.html").is_file()


def test_bad_job_over_http_is_a_422_naming_the_field_and_nothing_is_queued(deployment):
    r = httpx.post(f"{deployment['url']}/v1/jobs", json={"kind": "experts", "concepts": [{"name": "cat"}], "tau": 3})
    assert r.status_code == 422 and "tau" in json.dumps(r.json())
    before = httpx.get(f"{deployment['url']}/v1/jobs").json()
    assert all(j.get("kind") == "experts" for j in before)


def test_describe_job_through_the_queues_equals_the_embedded_run(deployment, inputs, tmp_path):
    """generate -> cluster -> activate -> analyse -> explain, each stage in its own worker process."""
    from neuroscribe.service.describe.cli import build_describe_job
    from neuroscribe.service.describe.embedded import run_describe_job

    model, _ = inputs
    data = tmp_path / "reviews.tsv"
    rows = [("the phone works great and the battery is good", 1), ("the screen broke after a week", 0),
            ("great sound quality for the price", 1), ("the case is poor and the battery is bad", 0)] * 5
    data.write_text("text\tlabel\n" + "".join(f"{t} number {i}\t{lab}\n" for i, (t, lab) in enumerate(rows)))
    job = build_describe_job(model=str(model), revision=None, dataset=data, text_col="text", label_col="label",
                             label_names=("1=positive", "0=negative"), label_word_match=True, layers=(), site="mlp_post", pooling="cls",
                             top_percent=20.0, threshold=50.0, fdr=None, fdr_family="tested", min_cluster_size=2,
                             min_samples=None, cluster_selection="leaf", reduce_to=None, consistency=True, ks=(),
                             generator="fake",
                             gen_batch_size=8, batch_size=8, max_length=32, device="cpu", seed=0,
                             trust_remote_code=False, min_valid=2)  # k = 4 exemplars: the default 5 describes none
    embedded = run_describe_job(job, tmp_path / "embedded", progress=False, settings=Settings.build(cache_dir=tmp_path / "cache"),
                                log=lambda _m: None)
    with Client(deployment["url"]) as c:
        rec = c.submit(job)
        done = c.wait(rec.id, timeout=240, progress=False)
        assert done.status.value == "succeeded", done.error
        assert set(done.progress) == {"generate", "cluster", "activate", "analyse", "explain"}
        served = c.result(rec.id)
        files = c.artefacts(rec.id)
    assert _comparable(served) == _comparable(embedded)
    assert served.n_described > 0 and served.evaluation is not None
    assert {"result/descriptions.json", "result/descriptions.html", "result/units.csv",
            "result/vocabulary.json"} <= set(files)


def test_rank_job_through_the_queues_equals_the_embedded_run(deployment, inputs, tmp_path):
    """activate -> analyse: the served rankings, probing, interventions and agreement equal the embedded ones."""
    from neuroscribe.service.rank.cli import build_rank_job
    from neuroscribe.service.rank.embedded import run_rank_job

    model, _ = inputs
    data = tmp_path / "labels.tsv"
    rows = [(f"the {'cat' if i % 2 else 'bus'} is {'good' if i % 3 else 'bad'} number {i}", i % 2) for i in range(20)]
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows))
    job = build_rank_job(model=str(model), revision=None, dataset=data, text_col="text", label_col="label",
                         word_col=None, layer=None, ks=(3,), methods="linear,probeless,random", site="mlp_post",
                         pooling="mean", rank_fraction=0.5, same_examples=False, probe="logreg", seeds=2, interventions=True, modes="zero,translate",
                         beta=8.0, n_random=2, max_examples=200, continuations=(), label_texts=(), batch_size=8,
                         max_length=32, device="cpu", seed=0, trust_remote_code=False)
    embedded = run_rank_job(job, tmp_path / "embedded", progress=False, log=lambda _m: None)
    with Client(deployment["url"]) as c:
        rec = c.submit(job)
        done = c.wait(rec.id, timeout=240, progress=False)
        assert done.status.value == "succeeded", done.error
        assert set(done.progress) == {"activate", "analyse"}
        served = c.result(rec.id)
        files = c.artefacts(rec.id)
    assert _comparable(served) == _comparable(embedded)
    assert served.intervention_measure == "logodds" and len(served.interventions) == 3 * 2
    assert {"result/rankings.json", "result/rankings.html", "result/probing.csv"} <= set(files)
