"""The HTTP API (``service.api``) and its Python client (``service.client``), in process.

The app runs over an ``InMemoryQueue`` that the tests drive by hand (claim / complete through the
stages), through ``fastapi.testclient.TestClient`` (a sync ``httpx.Client`` over the ASGI app).
"""

from __future__ import annotations

import os

import httpx
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from neuroscribe.errors import InvalidInput, NeuroscribeError  # noqa: E402
from neuroscribe.jobs import (  # noqa: E402
    ConceptExperts,
    ExpertsJob,
    ExpertsResult,
    ExpertUnit,
    JobStatus,
    Provenance,
    parse_result,
)
from neuroscribe.service import client as client_mod  # noqa: E402
from neuroscribe.service.api import create_app  # noqa: E402
from neuroscribe.service.client import (  # noqa: E402
    AuthError,
    Client,
    ClientError,
    InvalidJob,
    JobFailed,
    JobTimeout,
    NotFound,
    NotReady,
    ServiceUnavailable,
)
from neuroscribe.service import registry  # noqa: E402
from neuroscribe.service.queue import InMemoryQueue  # noqa: E402

JOB = {"kind": "experts", "concepts": [{"name": "cat", "category": "animal"}], "generator": {"backend": "fake"}}
KEY = "s3cret-key"
SECRET = "TOP SECRET outside the job folder"
MISSING = "0" * 32


def _result() -> ExpertsResult:
    unit = ExpertUnit(layer=1, unit=3, ap=0.97)
    concept = ConceptExperts(concept="cat", category="animal", n_pos=20, n_neg=20, experts=(unit,),
                             counts_per_layer={0: 0, 1: 1}, top=(unit, ExpertUnit(layer=0, unit=2, ap=0.61)))
    prov = Provenance(neuroscribe_version="0.test", model="tiny", weight_sha256="f" * 64, site="mlp_post",
                      pooling="max", data_sha256="d" * 64, created_at="2024-01-01T00:00:00Z")
    return ExpertsResult(tau=0.9, layers=(0, 1), units_per_layer=8, concepts=(concept,), provenance=prov)


def _drive(queue: InMemoryQueue, job_id: str, result: dict | None = None) -> None:
    """Run the job through every stage by hand, as the workers would."""
    for stage in registry.stages()["experts"]:
        d = queue.claim(stage, "test-worker", block_s=0)
        assert d is not None and d.job_id == job_id
        queue.progress(d, 5, 5, f"{stage} done")
        last = stage == registry.stages()["experts"][-1]
        assert queue.complete(d, handoff=None if last else {"stage": stage},
                              result=(result or _result().model_dump(mode="json")) if last else None)


@pytest.fixture
def queue():
    return InMemoryQueue()


@pytest.fixture
def artefacts(tmp_path):
    d = tmp_path / "artefacts"
    d.mkdir()
    (tmp_path / "secret.txt").write_text(SECRET)
    return d


@pytest.fixture
def http(queue, artefacts):
    return TestClient(create_app(queue, artefacts_dir=artefacts))


@pytest.fixture
def client(http):
    return Client("http://testserver", http=http)


def _submit(http, job=JOB, **headers) -> dict:
    r = http.post("/v1/jobs", json=job, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


# --------------------------------------------------------------------------- submit


def test_submit_valid_job_is_queued_in_generate(http):
    rec = _submit(http)
    assert rec["status"] == "queued" and rec["stage"] == "generate" and rec["kind"] == "experts"
    assert len(rec["id"]) == 32 and int(rec["id"], 16) >= 0


def test_submit_stores_the_full_job_json(http, queue):
    rec = _submit(http)
    d = queue.claim("generate", "w", block_s=0)
    assert d.job_id == rec["id"]
    assert d.payload["job"] == ExpertsJob.model_validate(JOB).model_dump(mode="json")


def test_invalid_job_is_422_naming_the_field(http, queue):
    r = http.post("/v1/jobs", json={**JOB, "tau": 2})
    assert r.status_code == 422
    errors = r.json()["detail"]
    assert [e["loc"] for e in errors] == [["body", "tau"]]
    assert "less than or equal to 1" in errors[0]["msg"]
    assert queue.list() == []


def test_nested_field_is_named(http):
    r = http.post("/v1/jobs", json={**JOB, "model": {"batch_size": 0}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "model", "batch_size"]


def test_unknown_kind_and_missing_kind_are_422(http):
    for body in ({"kind": "nope"}, {"concepts": [{"name": "cat"}]}, [1, 2], "text"):
        r = http.post("/v1/jobs", json=body)
        assert r.status_code == 422, body
    assert "nope" in http.post("/v1/jobs", json={"kind": "nope"}).text


DESCRIBE = {"kind": "describe", "dataset": {"name": "r.txt", "texts": ["Good phone.", "Bad case.", "Nice."],
                                           "labels": ["1", "0", "1"], "label_names": {"1": "positive"}}}


def test_describe_job_accepted_and_its_bad_datasets_named(http, queue):
    r = http.post("/v1/jobs", json=DESCRIBE)
    assert r.status_code == 201 and queue.get(r.json()["id"]).kind == "describe"
    bad = [({"labels": ["1", "1", "1"]}, "single class"), ({"labels": ["1", "0"]}, "2 labels for 3 sentences"),
           ({"texts": ["only one"], "labels": None, "label_names": {}}, "at least 2"),
           ({"label_names": {"7": "x"}}, "not labels of the dataset"), ({"texts": ["a", " ", "c"]}, "sentence 1 is empty")]
    for change, words in bad:
        body = {**DESCRIBE, "dataset": {**DESCRIBE["dataset"], **change}}
        r = http.post("/v1/jobs", json=body)
        assert r.status_code == 422, body
        (err,) = r.json()["detail"]
        assert err["loc"][:2] == ["body", "dataset"] and words in err["msg"], err
    assert len(queue.list()) == 1  # nothing of the refused jobs was queued


def test_non_json_body_is_422(http):
    r = http.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


RANK = {"kind": "rank", "dataset": {"name": "r.tsv", "texts": [f"text {i}" for i in range(10)],
                                   "labels": ["a", "b"] * 5}}


def test_a_kind_unregistered_since_the_app_was_made_cannot_run(http, queue):
    kind = registry.get("rank")
    registry.unregister("rank")
    try:
        r = http.post("/v1/jobs", json=RANK)
    finally:
        registry.register(kind)
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "kind"] and "cannot run" in err["msg"]
    assert queue.list() == []


def test_an_unknown_kind_is_a_422_naming_the_kind(http, queue):
    r = http.post("/v1/jobs", json={**RANK, "kind": "nonsense"})
    assert r.status_code == 422
    assert any(e["loc"][:2] == ["body", "kind"] or "nonsense" in str(e) for e in r.json()["detail"])
    assert queue.list() == []


def test_idempotency_key_gives_one_job(http, queue):
    first = _submit(http, **{"Idempotency-Key": "run-1"})
    again = http.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "run-1"})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert [r.id for r in queue.list()] == [first["id"]]
    other = _submit(http, **{"Idempotency-Key": "run-2"})
    assert other["id"] != first["id"]


# --------------------------------------------------------------------------- status, list, cancel


def test_status_list_cancel(http):
    a, b = _submit(http), _submit(http)
    r = http.get(f"/v1/jobs/{a['id']}")
    assert r.status_code == 200 and r.json()["id"] == a["id"]
    ids = [rec["id"] for rec in http.get("/v1/jobs").json()]
    assert set(ids) == {a["id"], b["id"]}
    assert len(http.get("/v1/jobs", params={"limit": 1}).json()) == 1
    assert http.get("/v1/jobs", params={"limit": 0}).status_code == 422
    r = http.post(f"/v1/jobs/{a['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert http.get(f"/v1/jobs/{a['id']}").json()["status"] == "cancelled"


def test_unknown_or_malformed_job_id_is_404(http):
    for job_id in (MISSING, "not-an-id", "A" * 32, "0" * 31):
        for method, suffix in (("GET", ""), ("POST", "/cancel"), ("GET", "/result"), ("GET", "/artefacts"),
                               ("GET", "/artefacts/x.json")):
            r = http.request(method, f"/v1/jobs/{job_id}{suffix}")
            assert r.status_code == 404, (job_id, suffix, r.text)


# --------------------------------------------------------------------------- results


def test_result_409_until_succeeded_then_200(http, queue, client):
    rec = _submit(http)
    r = http.get(f"/v1/jobs/{rec['id']}/result")
    assert r.status_code == 409 and "queued" in r.json()["detail"]
    with pytest.raises(NotReady) as e:
        client.result(rec["id"])
    assert e.value.record.status == JobStatus.queued

    _drive(queue, rec["id"])
    r = http.get(f"/v1/jobs/{rec['id']}/result")
    assert r.status_code == 200
    assert parse_result(r.json()) == _result()
    res = client.result(rec["id"])
    assert isinstance(res, ExpertsResult) and res == _result()
    done = client.status(rec["id"])
    assert done.status == JobStatus.succeeded and done.progress["analyse"].done == 5


def test_result_of_cancelled_job(http, client):
    rec = _submit(http)
    http.post(f"/v1/jobs/{rec['id']}/cancel")
    r = http.get(f"/v1/jobs/{rec['id']}/result")
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]
    with pytest.raises(JobFailed) as e:
        client.result(rec["id"])
    assert e.value.record.status == JobStatus.cancelled


# --------------------------------------------------------------------------- artefacts


@pytest.fixture
def job_files(http, artefacts, tmp_path):
    rec = _submit(http)
    folder = artefacts / rec["id"]
    (folder / "figures").mkdir(parents=True)
    (folder / "experts.json").write_text('{"ok": true}')
    (folder / "figures" / "counts.png").write_bytes(b"\x89PNG fake")
    (folder / "inside-link.json").symlink_to(folder / "experts.json")
    (folder / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "leakdir").symlink_to(tmp_path)
    return rec["id"]


def test_artefacts_listing_and_download(http, client, job_files, tmp_path):
    listing = http.get(f"/v1/jobs/{job_files}/artefacts").json()
    assert listing == ["experts.json", "figures/counts.png", "inside-link.json"]
    assert client.artefacts(job_files) == listing
    r = http.get(f"/v1/jobs/{job_files}/artefacts/figures/counts.png")
    assert r.status_code == 200 and r.content == b"\x89PNG fake"
    out = client.download(job_files, "figures/counts.png", tmp_path)
    assert out == tmp_path / "counts.png" and out.read_bytes() == b"\x89PNG fake"
    out = client.download(job_files, "experts.json", tmp_path / "dl" / "e.json")
    assert out.read_text() == '{"ok": true}'
    assert not [p for p in (tmp_path / "dl").iterdir() if p.name.startswith(".")]  # no temp file left


def test_artefacts_of_job_without_folder_is_empty(http):
    rec = _submit(http)
    assert http.get(f"/v1/jobs/{rec['id']}/artefacts").json() == []
    assert http.get(f"/v1/jobs/{rec['id']}/artefacts/experts.json").status_code == 404


@pytest.mark.parametrize("path, status", [
    ("../../secret.txt", 404),  # httpx removes the dot segments: another route, no such job
    ("figures/../../../secret.txt", 404),
    ("%2e%2e/%2e%2e/secret.txt", 400),  # percent-encoded: reaches the app as ../../secret.txt
    ("%2E%2E%2F%2E%2E%2Fsecret.txt", 400),
    ("..%2f..%2fsecret.txt", 400),
    ("figures/%2e%2e/%2e%2e/%2e%2e/secret.txt", 400),
    ("%2Fetc%2Fpasswd", 400),
    ("/etc/passwd", 400),
    ("..\\..\\secret.txt", 400),
    ("", 400),
    ("leak.txt", 404),  # symlink to a file outside
    ("leakdir/secret.txt", 404),  # through a symlinked folder
    ("figures", 404),  # a folder, not a file
])
def test_path_escapes_are_rejected(http, job_files, path, status, artefacts):
    r = http.get(f"/v1/jobs/{job_files}/artefacts/{path}")
    assert r.status_code == status, (path, r.text)
    assert SECRET not in r.text


def test_another_jobs_folder_is_out_of_reach(http, job_files, artefacts):
    other = _submit(http)["id"]
    (artefacts / other).mkdir()
    (artefacts / other / "theirs.txt").write_text(SECRET)
    for p in (f"%2e%2e/{other}/theirs.txt", f"..%2F{other}%2Ftheirs.txt"):
        r = http.get(f"/v1/jobs/{job_files}/artefacts/{p}")
        assert r.status_code == 400 and SECRET not in r.text
    assert http.get(f"/v1/jobs/{other}/artefacts/theirs.txt").text == SECRET


def test_raw_dot_segments_reach_the_app_and_are_rejected(queue, artefacts, job_files):
    """httpx normalises ``..`` away; a raw ASGI request is what a hand-made HTTP request sends."""
    import asyncio

    app = create_app(queue, artefacts_dir=artefacts)
    for path in (f"/v1/jobs/{job_files}/artefacts/../../secret.txt",
                 f"/v1/jobs/{job_files}/artefacts/figures/../../../secret.txt",
                 f"/v1/jobs/{job_files}/artefacts//etc/passwd"):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(msg):
            sent.append(msg)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
        asyncio.run(app(scope, receive, send))
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        assert start["status"] == 400, (path, start["status"], body)
        assert SECRET.encode() not in body


def test_client_refuses_escaping_paths(client, job_files, tmp_path):
    for p in ("../x", "/etc/passwd", "a/./b", ""):
        with pytest.raises(InvalidInput):
            client.download(job_files, p, tmp_path)


# --------------------------------------------------------------------------- API key


ROUTES = [("GET", "/readyz"), ("GET", "/openapi.json"), ("GET", "/docs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs"),
          ("GET", "/v1/jobs/{id}"), ("POST", "/v1/jobs/{id}/cancel"), ("GET", "/v1/jobs/{id}/result"),
          ("GET", "/v1/jobs/{id}/artefacts"), ("GET", "/v1/jobs/{id}/artefacts/experts.json"),
          ("GET", "/no/such/route")]


def test_api_key_required_on_every_route_but_healthz(queue, artefacts):
    http = TestClient(create_app(queue, artefacts_dir=artefacts, api_key=KEY))
    job_id = http.post("/v1/jobs", json=JOB, headers={"X-API-Key": KEY}).json()["id"]
    (artefacts / job_id).mkdir()
    (artefacts / job_id / "experts.json").write_text("{}")
    assert http.get("/healthz").status_code == 200
    good = ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}, {"Authorization": f"bearer  {KEY}"})
    bad = ({}, {"Authorization": f"Bearer {KEY}x"}, {"X-API-Key": KEY[:-1]}, {"Authorization": KEY},
           {"Authorization": f"Basic {KEY}"}, {"X-API-Key": "é".encode()})
    for method, route in ROUTES:
        url = route.replace("{id}", job_id)
        kw = {"json": JOB} if route == "/v1/jobs" and method == "POST" else {}
        for h in bad:
            r = http.request(method, url, headers=h, **kw)
            assert r.status_code == 401, (method, url, h)
            assert r.headers["www-authenticate"] == "Bearer"
        for h in good:
            r = http.request(method, url, headers=h, **kw)
            expected = 404 if route == "/no/such/route" else (409 if route.endswith("/result") else None)
            assert r.status_code != 401 and (expected is None or r.status_code == expected), (method, url, h)
            assert r.status_code < 500


def test_client_sends_the_key(queue, artefacts):
    http = TestClient(create_app(queue, artefacts_dir=artefacts, api_key=KEY))
    with pytest.raises(AuthError):
        Client("http://testserver", http=http).list()
    with pytest.raises(AuthError):
        Client("http://testserver", http=http, api_key="wrong").submit(JOB)
    c = Client("http://testserver", http=http, api_key=KEY)
    rec = c.submit(JOB)
    assert c.status(rec.id).status == JobStatus.queued


def test_openapi_declares_the_key_when_set(queue, artefacts):
    http = TestClient(create_app(queue, artefacts_dir=artefacts, api_key=KEY))
    schema = http.get("/openapi.json", headers={"X-API-Key": KEY}).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}


# --------------------------------------------------------------------------- health, outages


class PingFalse(InMemoryQueue):
    def ping(self) -> bool:
        return False


class PingRaises(InMemoryQueue):
    def ping(self) -> bool:
        raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")


class Down(InMemoryQueue):
    """Every client-side call fails like a Redis that went away."""

    def _down(self, *a, **kw):
        raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    submit = submit_new = get = list = cancel = _down


def test_health_and_readiness(http, artefacts):
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").status_code == 200
    for q in (PingFalse(), PingRaises()):
        h = TestClient(create_app(q, artefacts_dir=artefacts))
        assert h.get("/healthz").status_code == 200
        r = h.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"


def test_queue_outage_is_503_not_500(artefacts):
    http = TestClient(create_app(Down(), artefacts_dir=artefacts), raise_server_exceptions=False)
    for method, url in (("GET", f"/v1/jobs/{MISSING}"), ("GET", "/v1/jobs"), ("POST", f"/v1/jobs/{MISSING}/cancel"),
                        ("GET", f"/v1/jobs/{MISSING}/result"), ("GET", f"/v1/jobs/{MISSING}/artefacts"),
                        ("POST", "/v1/jobs")):
        r = http.request(method, url, json=JOB if method == "POST" and url == "/v1/jobs" else None)
        assert r.status_code == 503, (method, url, r.text)
        assert "unavailable" in r.json()["detail"] and "Traceback" not in r.text and "6379" not in r.text
        assert r.headers["retry-after"] == "5"
    with pytest.raises(ServiceUnavailable):
        Client("http://testserver", http=http).status(MISSING)


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_schema(http):
    schema = http.get("/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/jobs/{job_id}/result",
            "/v1/jobs/{job_id}/artefacts", "/v1/jobs/{job_id}/artefacts/{path}", "/healthz",
            "/readyz"} <= set(schema["paths"])
    schemas = schema["components"]["schemas"]
    assert {"ExpertsJob", "DescribeJob", "RankJob", "JobRecord", "ExpertsResult"} <= set(schemas)
    assert schemas["ExpertsJob"]["properties"]["tau"]["maximum"] == 1.0
    body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/ExpertsJob"} in body["oneOf"]
    assert body["discriminator"]["propertyName"] == "kind"
    params = {p["name"] for p in schema["paths"]["/v1/jobs"]["post"]["parameters"]}
    assert "Idempotency-Key" in params


# --------------------------------------------------------------------------- client


def test_client_exception_tree():
    for exc in (AuthError, NotFound, InvalidJob, NotReady, ServiceUnavailable, JobFailed, JobTimeout):
        assert issubclass(exc, ClientError)
    assert issubclass(ClientError, NeuroscribeError) and issubclass(InvalidJob, InvalidInput)
    assert client_mod.__all__ == ["Client", "ClientError", "AuthError", "NotFound", "InvalidJob", "NotReady",
                                  "ServiceUnavailable", "JobFailed", "JobTimeout", "Conflict", "RateLimited",
                                  "QuotaExceeded"]


def test_client_submit_model_status_list_cancel(client):
    rec = client.submit(ExpertsJob.model_validate(JOB))
    assert rec.status == JobStatus.queued and rec.stage == "generate"
    assert client.status(rec.id) == rec
    assert [r.id for r in client.list()] == [rec.id]
    assert client.cancel(rec.id).status == JobStatus.cancelled
    again = client.submit(JOB, idempotency_key="k")
    assert client.submit(JOB, idempotency_key="k").id == again.id


def test_client_errors(client):
    with pytest.raises(NotFound):
        client.status(MISSING)
    with pytest.raises(NotFound):
        client.cancel("not-an-id")
    with pytest.raises(InvalidJob) as e:
        client.submit({**JOB, "tau": 2})
    assert e.value.field == "tau" and e.value.fields == ["tau"] and e.value.status_code == 422
    assert e.value.errors[0]["loc"] == ["tau"] and str(e.value).startswith("tau: Input should be")
    with pytest.raises(InvalidJob) as e:
        client.submit({**RANK, "dataset": {**RANK["dataset"], "labels": ["a"] * 9 + ["b"]}})
    assert e.value.field == "dataset" and "fewer than 5 examples" in str(e.value)


def test_wait_returns_succeeded_record(client, queue, capsys):
    rec = client.submit(JOB)
    _drive(queue, rec.id)
    done = client.wait(rec.id, timeout=5, poll_s=0.01, progress=True)
    assert done.status == JobStatus.succeeded
    assert set(done.progress) == set(registry.stages()["experts"])


def test_wait_on_cancelled_job_raises_job_failed(client):
    rec = client.submit(JOB)
    client.cancel(rec.id)
    with pytest.raises(JobFailed) as e:
        client.wait(rec.id, timeout=5, poll_s=0.01, progress=False)
    assert e.value.record.status == JobStatus.cancelled and e.value.record.id == rec.id


def test_wait_on_failed_job_raises_job_failed(client, queue):
    rec = client.submit(JOB)
    d = queue.claim("generate", "w", block_s=0)
    queue.fail(d, "the LLM server is down", retry=False)
    with pytest.raises(JobFailed, match="the LLM server is down"):
        client.wait(rec.id, timeout=5, poll_s=0.01, progress=False)


def test_wait_times_out(client):
    rec = client.submit(JOB)
    with pytest.raises(JobTimeout) as e:
        client.wait(rec.id, timeout=0.05, poll_s=0.01, progress=True)
    assert e.value.record.status == JobStatus.queued


def test_wait_rides_out_an_outage_then_times_out(artefacts):
    http = TestClient(create_app(Down(), artefacts_dir=artefacts))
    with pytest.raises(JobTimeout) as e:
        Client("http://testserver", http=http).wait(MISSING, timeout=0.05, poll_s=0.01, progress=True)
    assert e.value.record is None


def test_transport_errors_of_an_injected_client_are_service_unavailable(artefacts):
    """TestClient is an httpx2.Client where httpx2 is installed: its errors map the same way."""
    import sys

    errors = sys.modules[TestClient.__mro__[1].__module__.split(".")[0]]

    class Refusing(TestClient):
        def request(self, method, url, **kw):
            raise errors.ConnectError("connection refused")

    c = Client("http://testserver", http=Refusing(create_app(InMemoryQueue(), artefacts_dir=artefacts)))
    with pytest.raises(ServiceUnavailable):
        c.list()


def test_unreachable_server_is_service_unavailable():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    c = Client("http://127.0.0.1:9", transport=httpx.MockTransport(refuse))
    with pytest.raises(ServiceUnavailable, match="cannot reach"):
        c.status(MISSING)
    c.close()
    with pytest.raises(ValueError):
        Client("http://x", transport=httpx.MockTransport(refuse), http=httpx.Client())


def test_unexpected_status_is_client_error():
    c = Client("http://x", transport=httpx.MockTransport(lambda req: httpx.Response(418, text="teapot")))
    with pytest.raises(ClientError) as e:
        c.list()
    assert type(e.value) is ClientError and e.value.status_code == 418


def test_run_server_defaults_to_localhost(monkeypatch):
    import uvicorn

    from neuroscribe.service.api import run_server

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    run_server(object())
    assert seen == {"host": "127.0.0.1", "port": 8000}


def test_no_symlink_needed_for_listing_order(http, artefacts):
    """Listing is sorted and uses forward slashes whatever the OS separator."""
    rec = _submit(http)
    folder = artefacts / rec["id"]
    (folder / "b" / "c").mkdir(parents=True)
    for p in ("z.txt", "a.txt", os.path.join("b", "c", "d.txt")):
        (folder / p).write_text("x")
    assert http.get(f"/v1/jobs/{rec['id']}/artefacts").json() == ["a.txt", "b/c/d.txt", "z.txt"]
