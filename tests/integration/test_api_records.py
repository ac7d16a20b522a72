"""Issue 14, findings 5, 6 and 8 through the API, the client and the CLI: records stay small (a
summary; the result from /result only, a large one streamed from the job's folder), Idempotency-Key
refused empty and checked against the body, DELETE and `neuroscribe gc` forget a job's records and
files."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from neuroscribe.service import client as client_mod
from neuroscribe.service import registry
from neuroscribe.service.api import create_app
from neuroscribe.service.cli import build_cli
from neuroscribe.service.client import Client, Conflict
from neuroscribe.service.queue import InMemoryQueue
from neuroscribe.settings import Settings
from redis_server import delete_prefix, redis_url, unique_prefix

JOB = {"kind": "experts", "concepts": [{"name": "cat"}], "generator": {"backend": "fake"}}
OTHER = {"kind": "experts", "concepts": [{"name": "dog"}], "generator": {"backend": "fake"}}


def _big_result(n_concepts: int = 300) -> dict:
    unit = {"layer": 1, "unit": 3, "ap": 0.97}
    concepts = [{"concept": f"c{i}", "category": None, "n_pos": 20, "n_neg": 20, "experts": [unit] * 40,
                 "counts_per_layer": {"0": 0, "1": 40}, "top": [unit] * 40} for i in range(n_concepts)]
    return {"kind": "experts", "schema_version": 1, "tau": 0.9, "layers": [0, 1], "units_per_layer": 8,
            "concepts": concepts, "drops": {}, "provenance": {"model": "tiny"}, "warnings": []}


def _drive(q, job_id: str, result: dict) -> None:
    stages = registry.stages()["experts"]
    for stage in stages:
        d = q.claim(stage, "w", block_s=0)
        last = stage == stages[-1]
        assert q.complete(d, handoff=None if last else {}, result=result if last else None,
                          summary={"n_concepts": len(result["concepts"])} if last else None)


@pytest.fixture
def queue():
    return InMemoryQueue()


@pytest.fixture
def artefacts(tmp_path):
    (tmp_path / "artefacts").mkdir()
    return tmp_path / "artefacts"


@pytest.fixture
def http(queue, artefacts):
    return TestClient(create_app(queue, artefacts_dir=artefacts))


@pytest.fixture
def cli_over(monkeypatch, http):
    """`neuroscribe ...` whose client commands talk to the in-process app."""
    monkeypatch.setattr(client_mod, "Client", lambda url, api_key=None, **kw: Client(url, api_key=api_key, http=http))

    def run(*args):
        return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)

    return run


# ---------------------------------------------------------------- 5: records stay small
def test_status_and_list_carry_a_summary_and_the_result_comes_from_result_only(http, queue):
    result = _big_result()
    ids = [http.post("/v1/jobs", json=JOB).json()["id"] for _ in range(3)]
    for job_id in ids:
        _drive(queue, job_id, result)
    size = len(json.dumps(result))
    assert size > 500_000
    status = http.get(f"/v1/jobs/{ids[0]}")
    assert status.json()["summary"] == {"n_concepts": 300} and "result" not in status.json()
    assert len(status.content) < 2_000
    listed = http.get("/v1/jobs", params={"limit": 1000})
    assert len(listed.json()) == 3 and len(listed.content) < 6_000
    served = http.get(f"/v1/jobs/{ids[0]}/result")
    assert served.status_code == 200 and served.json() == result


def test_the_worker_summarizes_and_keeps_a_large_result_in_the_jobs_folder(tmp_path):
    import toy_kind

    from neuroscribe.service.worker import Worker

    registry.register(toy_kind.KIND, replace=True)
    try:
        q = InMemoryQueue(lease_s=5.0)
        art = tmp_path / "artefacts"
        http = TestClient(create_app(q, artefacts_dir=art))
        job_id = http.post("/v1/jobs", json={"kind": "toy", "words": ["neuron"] * 50}).json()["id"]
        settings = Settings.build(artefacts=art, cache_dir=tmp_path / "cache", result_inline_bytes=100)
        for stage in toy_kind.KIND.stages:
            assert Worker(q, stage, settings=settings, handlers="toy_kind:HANDLERS").run(max_jobs=1) == 0
        rec = http.get(f"/v1/jobs/{job_id}").json()
        assert rec["status"] == "succeeded" and rec["summary"]["n_letters"] == 300
        assert rec["summary"]["n_shouted"] == 50 and rec["summary"]["bytes"] > 100
        assert q.result(job_id) is None and (art / job_id / "result.json").is_file()  # not in the queue
        served = http.get(f"/v1/jobs/{job_id}/result")
        assert served.status_code == 200 and served.json()["shouted"] == ["NEURON"] * 50
    finally:
        registry.unregister("toy")


def test_cli_status_prints_the_summary_not_the_result(cli_over, http, queue):
    job_id = http.post("/v1/jobs", json=JOB).json()["id"]
    _drive(queue, job_id, _big_result())
    out = cli_over("status", job_id)
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["status"] == "succeeded" and shown["summary"] == {"n_concepts": 300}
    assert len(out.output) < 2_000 and "c299" not in out.output


# ---------------------------------------------------------------- 6: idempotency
@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_idempotency_key_is_refused_naming_the_header(http, queue, key):
    r = http.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": key})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"] and repr(key) in r.text
    assert queue.list() == []


def test_an_idempotency_key_reused_with_another_body_or_kind_is_409(http, queue):
    first = http.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "run-1"})
    again = http.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "run-1"})
    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    describe = {"kind": "describe", "dataset": {"name": "r.txt", "texts": ["Good phone.", "Bad case.", "Nice."],
                                                "labels": ["1", "0", "1"]}}
    for body in (OTHER, describe):
        r = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "run-1"})
        assert r.status_code == 409 and "run-1" in r.json()["detail"] and first.json()["id"] in r.json()["detail"]
    with pytest.raises(Conflict):
        Client("http://testserver", http=http).submit(OTHER, idempotency_key="run-1")
    assert len(queue.list()) == 1


# ---------------------------------------------------------------- 8: lifecycle
def test_delete_removes_the_record_the_result_and_the_files(http, queue, artefacts, cli_over):
    job_id = http.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "k"}).json()["id"]
    assert http.delete(f"/v1/jobs/{job_id}").status_code == 409  # queued: cancel it first
    _drive(queue, job_id, _big_result(2))
    (artefacts / job_id / "result").mkdir(parents=True)
    (artefacts / job_id / "result" / "experts.json").write_text("{}")
    assert http.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert http.get(f"/v1/jobs/{job_id}").status_code == 404
    assert http.get(f"/v1/jobs/{job_id}/result").status_code == 404
    assert not (artefacts / job_id).exists()
    assert http.delete(f"/v1/jobs/{job_id}").status_code == 404
    other = http.post("/v1/jobs", json=OTHER, headers={"Idempotency-Key": "k"})
    assert other.status_code == 201  # the key was forgotten with its job
    queue.cancel(other.json()["id"])
    out = cli_over("delete", other.json()["id"])
    assert out.exit_code == 0 and http.get(f"/v1/jobs/{other.json()['id']}").status_code == 404


def test_gc_command_forgets_finished_jobs_and_their_folders(tmp_path, monkeypatch):
    import redis

    from neuroscribe.service.queue import make_queue

    prefix = unique_prefix()
    url = f"{redis_url()}?prefix={prefix}"
    art = tmp_path / "artefacts"
    try:
        q = make_queue(url)
        done, running = q.submit(JOB, idempotency_key="k"), q.submit(OTHER)
        _drive(q, done.id, _big_result(2))
        q.submit(OTHER)  # queued behind: kept
        for job_id in (done.id, running.id, "f" * 32):  # the last: an orphan folder, no job
            (art / job_id).mkdir(parents=True)
            (art / job_id / "x.txt").write_text("x")
        monkeypatch.setenv("NEUROSCRIBE_JOB_TTL", "0")  # every finished job is past its retention
        out = CliRunner().invoke(build_cli(), ["gc", "--queue", url, "--artefacts", str(art)], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        assert "removed 1 finished job(s), 2 job folder(s)" in out.output
        assert [r.id for r in q.list()].count(done.id) == 0 and len(q.list()) == 2
        assert sorted(p.name for p in art.iterdir()) == [running.id]
        client = redis.Redis.from_url(redis_url())
        assert not [k for k in client.scan_iter(match=f"{prefix}:*") if done.id.encode() in k]
    finally:
        delete_prefix(redis.Redis.from_url(redis_url()), prefix)
