"""Datasets by reference (issue 17, part 1): a dataset is uploaded once (``POST /v1/datasets``),
stored under the sha256 of its canonical JSON, checked at upload as a job's dataset is, held per
key within a quota, and named by jobs as ``{"sha256": ...}``; the workers read it back, refuse it
when the stored bytes no longer match the hash, and run the job to the result the inline job gets."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

pytest.importorskip("fastapi")
from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from neuroscribe.jobs import JobStatus  # noqa: E402
from neuroscribe.jobs.describe import DatasetSpec  # noqa: E402
from neuroscribe.service import cli_datasets, cli_service  # noqa: E402
from neuroscribe.service.api import create_app  # noqa: E402
from neuroscribe.service.auth import KeyRing, Principal, hash_key  # noqa: E402
from neuroscribe.service.cli import build_cli  # noqa: E402
from neuroscribe.service.client import Client, InvalidJob, QuotaExceeded  # noqa: E402
from neuroscribe.service.dataset_store import QuotaExceeded as StoreQuotaExceeded, open_datasets  # noqa: E402
from neuroscribe.service.queue import InMemoryQueue  # noqa: E402
from neuroscribe.settings import Settings  # noqa: E402

NOUNS = ["phone", "battery", "screen", "case", "charger", "cable"]
TEXTS = [f"the {n} {'works great' if i % 2 == 0 else 'broke quickly'} {'today' if i < 6 else 'again'} ."
         for i, n in enumerate(NOUNS * 4)]
LABELS = ["1" if i % 2 == 0 else "0" for i in range(len(TEXTS))]
DESCRIBE = {"name": "reviews.tsv", "texts": TEXTS, "labels": LABELS, "label_names": {"1": "positive", "0": "negative"}}
RANK = {"name": "r.tsv", "texts": [f"text number {i}" for i in range(10)], "labels": ["a", "b"] * 5}
KEYS = {"alice": "alice-key", "bob": "bob-key"}


def _sha(kind: str, dataset: dict) -> str:
    """The hash the server must give: of the canonical JSON of the validated dataset."""
    spec = DatasetSpec.model_validate(dataset).model_dump(mode="json")
    return hashlib.sha256(json.dumps({"dataset": spec, "kind": kind}, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def _app(tmp_path, keys: bool = False, **settings):
    s = Settings.build(cache_dir=tmp_path / "cache", artefacts=tmp_path / "artefacts", **settings)
    q = InMemoryQueue()
    ring = KeyRing([(hash_key(k), Principal(u)) for u, k in KEYS.items()]) if keys else None
    return TestClient(create_app(q, artefacts_dir=tmp_path / "artefacts", settings=s, keys=ring)), q


def _as(user: str) -> dict:
    return {"X-API-Key": KEYS[user]}


def _stored_files(tmp_path) -> list[str]:
    root = tmp_path / "artefacts" / "datasets"
    return sorted(p.name for p in root.glob("*.json")) if root.is_dir() else []


# --------------------------------------------------------------------------- upload


def test_upload_stores_once_under_the_hash_of_its_canonical_json(tmp_path):
    http, _ = _app(tmp_path)
    r = http.post("/v1/datasets", json={"kind": "describe", "dataset": DESCRIBE})
    assert r.status_code == 201, r.text
    info = r.json()
    sha = _sha("describe", DESCRIBE)
    assert info == {"sha256": sha, "kind": "describe", "rows": len(TEXTS), "bytes": info["bytes"],
                    "name": "reviews.tsv"}
    # the same dataset, written otherwise (keys in another order, spaces, a default spelled out): once
    again = json.dumps({"dataset": {**dict(reversed(list(DESCRIBE.items()))), "label_word_match": True},
                        "kind": "describe"}, indent=3)
    r = http.post("/v1/datasets", content=again, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json() == info
    assert _stored_files(tmp_path) == [f"{sha}.json"]
    got = http.get(f"/v1/datasets/sha256:{sha}")
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha
    assert got.json()["dataset"]["texts"] == TEXTS and len(got.content) == info["bytes"]
    usage = http.get("/v1/datasets/usage").json()
    assert usage["bytes"] == info["bytes"] and [d["sha256"] for d in usage["datasets"]] == [sha]
    assert http.get("/v1/datasets").json() == ["amazon"]  # the packaged datasets are still served
    assert http.get("/v1/datasets/amazon").json()["name"] == "amazon_cells_labelled.txt"


def test_a_bad_row_is_422_naming_the_row_and_nothing_is_stored(tmp_path):
    http, _ = _app(tmp_path)
    texts = list(TEXTS)
    texts[17] = "   "
    r = http.post("/v1/datasets", json={"kind": "describe", "dataset": {**DESCRIBE, "texts": texts}})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "dataset", "texts", 17] and err["msg"] == "sentence 17 is empty"
    r = http.post("/v1/datasets", json={"kind": "rank", "dataset": {**RANK, "word_index": [0] * 7 + [5, 0, 0]}})
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "dataset", "word_index", 7] and "5 is outside sentence 7" in err["msg"]
    r = http.post("/v1/datasets", json={"kind": "rank", "dataset": {**RANK, "labels": ["a"] * 10}})
    assert r.status_code == 422 and "single class" in r.json()["detail"][0]["msg"]
    r = http.post("/v1/datasets", json={"kind": "experts", "dataset": DESCRIBE})
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "kind"] and "'experts' is not a dataset kind" in err["msg"]
    r = http.post("/v1/datasets", json={"kind": "describe", "dataset": DESCRIBE, "owner": "bob"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "owner"]
    http2, _ = _app(tmp_path / "small", max_sentences=10)
    r = http2.post("/v1/datasets", json={"kind": "describe", "dataset": DESCRIBE})
    errors = {tuple(e["loc"]): e["msg"] for e in r.json()["detail"]}  # the texts, and the labels with them
    assert r.status_code == 422 and "at most 10" in errors["body", "dataset", "texts"]
    assert _stored_files(tmp_path / "small") == []


# --------------------------------------------------------------------------- sizes and quotas


def test_an_upload_may_be_larger_than_a_job_body_but_not_than_dataset_max_bytes(tmp_path):
    http, q = _app(tmp_path, max_body_bytes=1500, dataset_max_bytes=4000)
    big = {**DESCRIBE, "texts": TEXTS * 2, "labels": LABELS * 2}  # ~2 KB: over a job body, within a dataset
    assert http.post("/v1/jobs", json={"kind": "describe", "dataset": big}).status_code == 413
    r = http.post("/v1/datasets", json={"kind": "describe", "dataset": big})
    assert r.status_code == 201, r.text
    job = {"kind": "describe", "dataset": {"sha256": r.json()["sha256"]}, "generator": {"backend": "fake"}}
    assert http.post("/v1/jobs", json=job).status_code == 201  # the job by reference fits
    huge = {**DESCRIBE, "texts": TEXTS * 8, "labels": LABELS * 8}
    r = http.post("/v1/datasets", json={"kind": "describe", "dataset": huge})
    assert r.status_code == 413 and "at most 4000 bytes" in r.json()["detail"]
    assert "NEUROSCRIBE_DATASET_MAX_BYTES" in r.json()["detail"]


def test_the_quota_is_per_key_and_the_refusal_says_quota_and_usage(tmp_path):
    first = {**DESCRIBE, "name": "first"}
    size = len(json.dumps({"dataset": DatasetSpec.model_validate(first).model_dump(mode="json"),
                           "kind": "describe"}, sort_keys=True, separators=(",", ":")).encode())
    http, _ = _app(tmp_path, keys=True, dataset_quota_bytes=size + 100)  # room for one
    assert http.post("/v1/datasets", json={"kind": "describe", "dataset": first}, headers=_as("alice")).status_code == 201
    second = {"kind": "describe", "dataset": {**DESCRIBE, "name": "second"}}
    r = http.post("/v1/datasets", json=second, headers=_as("alice"))
    assert r.status_code == 403
    msg = r.json()["detail"]
    assert "user 'alice'" in msg and f"the quota is {size + 100} bytes" in msg and f"{size} bytes in use" in msg
    assert "NEUROSCRIBE_DATASET_QUOTA_BYTES" in msg
    assert http.post("/v1/datasets", json=second, headers=_as("bob")).status_code == 201  # bob's own quota
    # the refused upload left no claim behind: alice still holds one dataset, and the same one again is free
    assert [d["name"] for d in http.get("/v1/datasets/usage", headers=_as("alice")).json()["datasets"]] == ["first"]
    assert http.post("/v1/datasets", json={"kind": "describe", "dataset": first}, headers=_as("alice")).status_code == 200
    sha = http.get("/v1/datasets/usage", headers=_as("alice")).json()["datasets"][0]["sha256"]
    assert http.delete(f"/v1/datasets/sha256:{sha}", headers=_as("alice")).status_code == 204
    assert http.post("/v1/datasets", json=second, headers=_as("alice")).status_code == 201  # room again
    client = Client("http://testserver", http=http)
    client._headers = _as("alice")
    with pytest.raises(QuotaExceeded) as e:
        client.upload_dataset(DatasetSpec.model_validate(first))
    assert e.value.status_code == 403 and "quota" in e.value.message


def test_concurrent_uploads_of_one_key_never_pass_its_quota(tmp_path):
    """Two API processes on one store (two DatasetStore objects over one folder), uploading at once:
    each reserves its claim before it checks, so both see both and the quota holds."""
    settings = Settings.build(artefacts=tmp_path / "artefacts")
    specs = [DatasetSpec.model_validate({**DESCRIBE, "name": f"d{i}"}) for i in range(6)]
    one = len(json.dumps({"dataset": specs[0].model_dump(mode="json"), "kind": "describe"},
                         sort_keys=True, separators=(",", ":")).encode())
    quota = 2 * one + 10  # room for two
    for _ in range(3):
        stores = [open_datasets(settings), open_datasets(settings)]
        barrier = threading.Barrier(len(specs))
        outcomes = []

        def upload(i):
            barrier.wait()
            try:
                stores[i % 2].put("describe", specs[i], "alice", max_bytes=10**6, quota_bytes=quota)
                outcomes.append("stored")
            except StoreQuotaExceeded:
                outcomes.append("refused")

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(specs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        held = stores[0].held("alice")
        assert sum(d.bytes for d in held) <= quota and len(held) == outcomes.count("stored") <= 2
        for d in held:
            stores[0].delete(d.sha256, "alice")


# --------------------------------------------------------------------------- who may use what


def test_another_keys_dataset_is_not_stored_for_it(tmp_path):
    http, q = _app(tmp_path, keys=True)
    sha = http.post("/v1/datasets", json={"kind": "describe", "dataset": DESCRIBE}, headers=_as("alice")).json()["sha256"]
    job = {"kind": "describe", "dataset": {"sha256": sha}, "generator": {"backend": "fake"}}
    assert http.get(f"/v1/datasets/sha256:{sha}", headers=_as("bob")).status_code == 404
    assert http.delete(f"/v1/datasets/sha256:{sha}", headers=_as("bob")).status_code == 404
    r = http.post("/v1/jobs", json=job, headers=_as("bob"))
    (err,) = r.json()["detail"]
    assert r.status_code == 422 and err["loc"] == ["body", "dataset", "sha256"] and sha in err["msg"]
    assert http.post("/v1/jobs", json=job, headers=_as("alice")).status_code == 201
    # bob uploading the same bytes gets a claim of his own (201: nothing tells him alice has it)
    assert http.post("/v1/datasets", json={"kind": "describe", "dataset": DESCRIBE}, headers=_as("bob")).status_code == 201
    assert http.delete(f"/v1/datasets/sha256:{sha}", headers=_as("alice")).status_code == 204
    assert _stored_files(tmp_path) == [f"{sha}.json"]  # bob still holds it
    assert http.post("/v1/jobs", json=job, headers=_as("alice")).status_code == 422  # not alice's any more
    assert http.delete(f"/v1/datasets/sha256:{sha}", headers=_as("bob")).status_code == 204
    assert _stored_files(tmp_path) == []  # the last claim took the file with it


def test_an_unknown_a_malformed_or_another_kinds_hash_is_refused_naming_the_field(tmp_path):
    http, q = _app(tmp_path)
    unknown = "ab" * 32
    r = http.post("/v1/jobs", json={"kind": "describe", "dataset": {"sha256": unknown}})
    (err,) = r.json()["detail"]
    assert r.status_code == 422 and err["loc"] == ["body", "dataset", "sha256"] and unknown in err["msg"]
    r = http.post("/v1/jobs", json={"kind": "describe", "dataset": {"sha256": "sha256:xyz"}})
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "dataset", "sha256"] and "'sha256:xyz' is not a sha256" in err["msg"]
    rank = http.post("/v1/datasets", json={"kind": "rank", "dataset": RANK}).json()["sha256"]
    r = http.post("/v1/jobs", json={"kind": "describe", "dataset": {"sha256": rank}})
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "dataset", "sha256"] and "is a rank dataset" in err["msg"]
    # a check across the job and its stored dataset runs as for an inline one: attribute edits need words
    r = http.post("/v1/jobs", json={"kind": "rank", "dataset": {"sha256": rank},
                                    "interventions": {"positions": ["attribute"]}})
    assert r.status_code == 422 and "word_index" in r.json()["detail"][0]["msg"]
    assert http.post("/v1/jobs", json={"kind": "rank", "dataset": {"sha256": "sha256:" + rank.upper()}}).status_code == 201
    assert len(q.list()) == 1


def test_the_job_travels_with_the_reference_only(tmp_path):
    http, q = _app(tmp_path)
    sha = http.post("/v1/datasets", json={"kind": "describe", "dataset": DESCRIBE}).json()["sha256"]
    rec = http.post("/v1/jobs", json={"kind": "describe", "dataset": {"sha256": sha}}).json()
    d = q.claim("generate", "w", block_s=0)
    assert d.job_id == rec["id"] and d.payload["job"]["dataset"] == {"sha256": sha}
    assert not any(t in json.dumps(d.payload) for t in TEXTS)


# --------------------------------------------------------------------------- the workers


@pytest.fixture(scope="module")
def bert():
    from tiny_models import tiny_model_dir

    return tiny_model_dir("bert")


def _describe_job(bert, dataset) -> dict:
    return {"kind": "describe", "dataset": dataset, "generator": {"backend": "fake"}, "top_k_percent": 25.0,
            "model": {"name": str(bert), "device": "cpu", "layers": [1]}, "explain_units": 2,
            "vocabulary": {"min_cluster_size": 3}}


def _run_stages(q, settings, stages, jobs: int) -> None:
    from neuroscribe.service.worker import Worker

    for stage in stages:
        assert Worker(q, stage, settings=settings, log=lambda _m: None, ready_timeout_s=180).run(max_jobs=jobs) == 0


def test_a_job_by_reference_gives_the_inline_jobs_result(tmp_path, bert):
    from neuroscribe.service import registry
    from neuroscribe.service.results import result_path

    http, q = _app(tmp_path, models=(str(bert),))
    sha = http.post("/v1/datasets", json={"kind": "describe", "dataset": DESCRIBE}).json()["sha256"]
    inline = http.post("/v1/jobs", json=_describe_job(bert, DESCRIBE)).json()["id"]
    by_ref = http.post("/v1/jobs", json=_describe_job(bert, {"sha256": sha})).json()["id"]
    settings = Settings.build(cache_dir=tmp_path / "cache", artefacts=tmp_path / "artefacts", models=(str(bert),))
    _run_stages(q, settings, registry.kinds()["describe"].stages, jobs=2)
    results = []
    for job_id in (inline, by_ref):
        rec = q.get(job_id)
        assert rec.status == JobStatus.succeeded, rec.error
        result = json.loads(q.result(job_id) or result_path(tmp_path / "artefacts", job_id).read_text())
        result["provenance"].pop("created_at")
        results.append(result)
    assert results[0] == results[1] and results[0]["n_sentences"] == len(TEXTS)


def test_a_stored_dataset_changed_since_its_upload_is_refused_by_the_worker(tmp_path, bert):
    http, q = _app(tmp_path, models=(str(bert),))
    sha = http.post("/v1/datasets", json={"kind": "describe", "dataset": DESCRIBE}).json()["sha256"]
    rec = http.post("/v1/jobs", json=_describe_job(bert, {"sha256": sha})).json()
    path = tmp_path / "artefacts" / "datasets" / f"{sha}.json"
    path.write_bytes(path.read_bytes().replace(b"works great", b"works badly"))  # still a valid dataset
    assert http.get(f"/v1/datasets/sha256:{sha}").status_code == 500  # never served as if it were the upload
    settings = Settings.build(cache_dir=tmp_path / "cache", artefacts=tmp_path / "artefacts", models=(str(bert),))
    _run_stages(q, settings, ["generate"], jobs=1)
    done = q.get(rec["id"])
    assert done.status == JobStatus.failed and done.attempts == 1  # a user error: not retried
    assert "dataset.sha256" in done.error and "does not match its hash" in done.error
    assert not (tmp_path / "artefacts" / rec["id"] / "generate").exists()


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def cli(tmp_path, monkeypatch):
    http, q = _app(tmp_path)

    def client(url, api_key):
        return Client("http://testserver", http=http)

    monkeypatch.setattr(cli_datasets, "open_client", client)
    monkeypatch.setattr(cli_service, "_client", client)
    return build_cli(), q


def _file(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in zip(TEXTS, LABELS)))
    return path


def test_cli_uploads_prints_the_hash_and_submits_by_it(cli, tmp_path):
    group, q = cli
    run = CliRunner().invoke
    got = run(group, ["datasets", "upload", str(_file(tmp_path)), "--label-col", "label",
                      "--label-name", "1=positive", "--label-name", "0=negative"])
    assert got.exit_code == 0, got.output
    ref = got.output.strip()
    assert ref == "sha256:" + _sha("describe", DESCRIBE)
    got = run(group, ["submit", "describe", "--dataset", ref, "--generator", "fake"])
    assert got.exit_code == 0, got.output
    d = q.claim("generate", "w", block_s=0)
    assert d.job_id == got.output.strip() and d.payload["job"]["dataset"] == {"sha256": ref.removeprefix("sha256:")}
    usage = json.loads(run(group, ["datasets", "usage"]).output)
    assert [x["sha256"] for x in usage["datasets"]] == [ref.removeprefix("sha256:")]
    assert run(group, ["datasets", "delete", ref]).exit_code == 0
    assert json.loads(run(group, ["datasets", "usage"]).output)["datasets"] == []


@pytest.mark.parametrize("args, expected", [
    (["submit", "describe", "--dataset", "sha256:xyz"], "--dataset: 'sha256:xyz' is not a sha256"),
    (["submit", "describe", "--dataset", "sha256:" + "a" * 64, "--label-col", "stars"], "--label-col: 'stars'"),
    (["submit", "rank", "--dataset", "sha256:" + "a" * 64, "--word-col", "w"], "--word-col: 'w'"),
    (["describe", "--dataset", "sha256:" + "a" * 64, "--out", "o"], "names a dataset uploaded to a server"),
    (["submit", "describe", "--dataset", "sha256:" + "a" * 64], "--dataset: no dataset sha256:" + "a" * 64),
    (["datasets", "upload", "FILE", "--word-col", "w"], "--word-col: 'w' is not accepted: --word-col shapes rank"),
    (["datasets", "delete", "sha256:12"], "sha256:HEX: 'sha256:12' is not a sha256"),
])
def test_cli_errors_name_the_flag_and_the_value(cli, tmp_path, args, expected):
    group, q = cli
    args = [str(_file(tmp_path)) if a == "FILE" else a for a in args]
    got = CliRunner().invoke(group, args)
    assert got.exit_code in (1, 2) and expected in got.output, got.output
    assert q.list() == []


def test_client_upload_returns_the_hash_and_raises_the_servers_422(tmp_path):
    http, _ = _app(tmp_path)
    client = Client("http://testserver", http=http)
    with pytest.raises(InvalidJob) as e:  # the server's 422, as for a job
        client.upload_dataset({**DESCRIBE, "texts": ["fine", ""]}, kind="describe")
    assert e.value.field == "dataset.texts.1"
    assert client.upload_dataset(DatasetSpec.model_validate(DESCRIBE)) == _sha("describe", DESCRIBE)
