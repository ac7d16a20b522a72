"""Issue 14, finding 9 (and the auth half of 10): structured JSON logs of the API and the workers,
Prometheus metrics, dead letters listed and requeued from the API and the CLI, per-user API keys
(a user sees and cancels only their own jobs, an admin all), per-key rate limits (429 with
Retry-After), and `serve` refusing to start without a key where auth is required."""

from __future__ import annotations

import io
import json
import logging

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from neuroscribe.errors import InvalidInput
from neuroscribe.service import client as client_mod
from neuroscribe.service import logs, registry
from neuroscribe.service.api import create_app
from neuroscribe.service.auth import KeyRing, Principal, RateLimiter, hash_key
from neuroscribe.service.cli import build_cli
from neuroscribe.service.client import Client
from neuroscribe.service.queue import InMemoryQueue
from neuroscribe.settings import Settings

JOB = {"kind": "experts", "concepts": [{"name": "cat"}], "generator": {"backend": "fake"}}


@pytest.fixture
def json_logs():
    buf = io.StringIO()
    handler = logs.configure("json", "INFO", buf)
    yield lambda: [json.loads(line) for line in buf.getvalue().splitlines()]
    for name in ("neuroscribe", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = False


@pytest.fixture
def keys_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"user": "alice", "sha256": hash_key("alice-key")},
                                         {"user": "bob", "key": "bob-key"},
                                         {"user": "ops", "key": "ops-key", "admin": True}]}))
    return path


def _as(http, key):
    return {"Authorization": f"Bearer {key}"}


# ---------------------------------------------------------------- logs
def test_api_logs_are_json_lines_with_timestamp_level_request_and_job_ids(json_logs, tmp_path):
    http = TestClient(create_app(InMemoryQueue(), artefacts_dir=tmp_path))
    r = http.post("/v1/jobs", json=JOB, headers={"X-Request-ID": "req-42"})
    job_id = r.json()["id"]
    assert r.headers["x-request-id"] == "req-42"
    http.get(f"/v1/jobs/{job_id}")
    lines = json_logs()
    submitted = next(x for x in lines if x["message"] == "job submitted")
    assert submitted["job_id"] == job_id and submitted["request_id"] == "req-42"
    access = [x for x in lines if x["message"] == "request"]
    assert [(x["method"], x["status"]) for x in access] == [("POST", 201), ("GET", 200)]
    assert access[1]["job_id"] == job_id and access[1]["request_id"] != "req-42"  # a fresh id per request
    assert all({"timestamp", "level", "logger"} <= set(x) for x in lines)


def test_worker_logs_carry_the_job_stage_and_attempt(json_logs, tmp_path):
    import toy_kind

    from neuroscribe.service.worker import Worker

    registry.register(toy_kind.KIND, replace=True)
    try:
        q = InMemoryQueue(lease_s=5.0)
        rec = q.submit({"kind": "toy", "words": ["cat"]})
        settings = Settings.build(artefacts=tmp_path / "a", cache_dir=tmp_path / "c")
        Worker(q, "toy-count", settings=settings, handlers="toy_kind:HANDLERS").run(max_jobs=1)
    finally:
        registry.unregister("toy")
    lines = [x for x in json_logs() if x["logger"] == "neuroscribe.worker"]
    committed = next(x for x in lines if "committed" in x["message"])
    assert (committed["job_id"], committed["stage"], committed["attempt"]) == (rec.id, "toy-count", 1)
    assert committed["level"] == "INFO" and committed["timestamp"]


# ---------------------------------------------------------------- metrics
def test_metrics_show_queue_depth_dead_letters_jobs_by_status_and_http_latency(tmp_path):
    q = InMemoryQueue()
    http = TestClient(create_app(q, artefacts_dir=tmp_path))
    for _ in range(3):
        http.post("/v1/jobs", json=JOB)
    d = q.claim("generate", "w", block_s=0)
    q.fail(d, "boom", retry=False)
    text = http.get("/metrics").text
    assert 'neuroscribe_queue_ready{stage="generate"} 2.0' in text
    assert 'neuroscribe_dead_letters{stage="generate"} 1.0' in text
    assert 'neuroscribe_jobs{status="queued"} 2.0' in text and 'neuroscribe_jobs{status="failed"} 1.0' in text
    assert 'neuroscribe_queue_lag_seconds{stage="generate"}' in text
    assert 'neuroscribe_http_request_duration_seconds_count{method="POST",route="/v1/jobs",status="201"} 3.0' in text


def test_worker_metrics_count_attempts_outcomes_and_durations():
    from neuroscribe.service.metrics import WorkerMetrics

    m = WorkerMetrics()
    m.observe("generate", 1, "failed", 0.2)
    m.observe("generate", 2, "committed", 1.5)
    text = m.render().decode()
    assert 'neuroscribe_stage_attempts_total{attempt="2",stage="generate"} 1.0' in text
    assert 'neuroscribe_stage_outcomes_total{outcome="committed",stage="generate"} 1.0' in text
    assert 'neuroscribe_stage_duration_seconds_sum{outcome="committed",stage="generate"} 1.5' in text


# ---------------------------------------------------------------- dead letters
def test_dead_letters_are_listed_and_requeued_by_an_admin_from_the_api_and_the_cli(tmp_path, keys_file, monkeypatch):
    q = InMemoryQueue()
    http = TestClient(create_app(q, artefacts_dir=tmp_path, keys=KeyRing.build(keys_file=keys_file)))
    job_id = http.post("/v1/jobs", json=JOB, headers=_as(http, "alice-key")).json()["id"]
    q.fail(q.claim("generate", "w", block_s=0), "model exploded", retry=False)
    assert http.get("/v1/dead-letters", headers=_as(http, "alice-key")).status_code == 403
    listed = http.get("/v1/dead-letters", headers=_as(http, "ops-key"))
    [letter] = listed.json()
    assert letter["job_id"] == job_id and letter["stage"] == "generate" and "exploded" in letter["reason"]
    assert http.get("/v1/dead-letters", params={"stage": "nosuch"}, headers=_as(http, "ops-key")).status_code == 404

    monkeypatch.setattr(client_mod, "Client", lambda url, api_key=None, **kw: Client(url, api_key=api_key, http=http))
    run = CliRunner()
    out = run.invoke(build_cli(), ["dead-letters", "list", "--api-key", "ops-key"], catch_exceptions=False)
    assert out.exit_code == 0 and f"generate\t{letter['id']}\t{job_id}\tmodel exploded" in out.output
    out = run.invoke(build_cli(), ["dead-letters", "requeue", "generate", letter["id"], "--api-key", "ops-key"],
                     catch_exceptions=False)
    assert out.exit_code == 0 and out.output.strip() == job_id
    assert q.get(job_id).status.value == "queued" and q.dead_letters("generate") == []
    assert q.claim("generate", "w", block_s=0).job_id == job_id


# ---------------------------------------------------------------- per-user keys and rate limits
def test_each_user_sees_and_cancels_only_their_own_jobs_and_an_admin_sees_all(tmp_path, keys_file):
    q = InMemoryQueue()
    http = TestClient(create_app(q, artefacts_dir=tmp_path, keys=KeyRing.build(keys_file=keys_file)))
    a = http.post("/v1/jobs", json=JOB, headers=_as(http, "alice-key")).json()
    b = http.post("/v1/jobs", json=JOB, headers={"X-API-Key": "bob-key"}).json()
    assert (a["owner"], b["owner"]) == ("alice", "bob")
    assert [j["id"] for j in http.get("/v1/jobs", headers=_as(http, "alice-key")).json()] == [a["id"]]
    assert http.get(f"/v1/jobs/{b['id']}", headers=_as(http, "alice-key")).status_code == 404
    assert http.post(f"/v1/jobs/{b['id']}/cancel", headers=_as(http, "alice-key")).status_code == 404
    assert http.delete(f"/v1/jobs/{b['id']}", headers=_as(http, "alice-key")).status_code == 404
    assert http.get(f"/v1/jobs/{b['id']}/artefacts", headers=_as(http, "alice-key")).status_code == 404
    assert q.get(b["id"]).status.value == "queued"  # untouched
    assert http.post(f"/v1/jobs/{a['id']}/cancel", headers=_as(http, "alice-key")).json()["status"] == "cancelled"
    assert {j["id"] for j in http.get("/v1/jobs", headers=_as(http, "ops-key")).json()} == {a["id"], b["id"]}
    assert http.post(f"/v1/jobs/{b['id']}/cancel", headers=_as(http, "ops-key")).status_code == 200
    assert http.get("/v1/jobs", headers=_as(http, "nobody")).status_code == 401
    assert http.get("/healthz").status_code == 200


def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not(tmp_path, keys_file):
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    http = TestClient(create_app(InMemoryQueue(), artefacts_dir=tmp_path, keys=KeyRing.build(keys_file=keys_file),
                                 rate_limiter=limiter))
    codes = [http.get("/v1/jobs", headers=_as(http, "alice-key")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = http.get("/v1/jobs", headers=_as(http, "alice-key"))
    assert r.status_code == 429 and r.headers["Retry-After"] == "1" and "alice" in r.json()["detail"]
    assert http.get("/v1/jobs", headers=_as(http, "bob-key")).status_code == 200  # per key
    now[0] = 1.0
    assert http.get("/v1/jobs", headers=_as(http, "alice-key")).status_code == 200


def test_a_keys_own_limit_wins_over_the_servers():
    limiter = RateLimiter(rate=0.0)  # the server: unlimited
    slow = Principal("slow", rate=0.5, burst=1)
    assert limiter.acquire(slow) == 0.0 and limiter.acquire(slow) > 0
    assert all(limiter.acquire(Principal("fast")) == 0.0 for _ in range(100))


@pytest.mark.parametrize("entry, field", [({"user": "a b", "key": "k"}, "keys[0].user"),
                                          ({"user": "a"}, "keys[0].sha256"),
                                          ({"user": "a", "key": "k", "rate": -1}, "keys[0].rate")])
def test_a_bad_keys_file_names_the_entry_and_field(tmp_path, entry, field):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [entry]}))
    with pytest.raises(InvalidInput) as e:
        KeyRing.build(keys_file=path)
    assert e.value.field == field


def test_serve_refuses_to_start_without_a_key_where_auth_is_required(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROSCRIBE_REQUIRE_AUTH", "1")
    for var in ("NEUROSCRIBE_API_KEY", "NEUROSCRIBE_API_KEYS_FILE", "NEUROSCRIBE_LOCAL_TRIAL"):
        monkeypatch.delenv(var, raising=False)
    out = CliRunner().invoke(build_cli(), ["serve", "--queue", "memory://", "--artefacts", str(tmp_path)])
    assert out.exit_code == 2 and "NEUROSCRIBE_API_KEY" in out.output and "NEUROSCRIBE_LOCAL_TRIAL" in out.output
