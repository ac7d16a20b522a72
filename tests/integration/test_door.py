"""Validate at the door (issue 14, finding 7): what can be known when a job arrives -- its text, its
layers against the model's config, its device, its model path -- is a 422 naming the field, not a
job that fails three times on the workers. What still reaches a worker fails once, for good."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from tiny_models import tiny_model_dir  # noqa: E402

from neuroscribe.errors import InvalidInput  # noqa: E402
from neuroscribe.jobs import JobStatus, SubjectModelSpec  # noqa: E402
from neuroscribe.service import runtime  # noqa: E402
from neuroscribe.service.api import create_app  # noqa: E402
from neuroscribe.service.queue import InMemoryQueue  # noqa: E402
from neuroscribe.service.worker import Worker  # noqa: E402
from neuroscribe.settings import Settings  # noqa: E402

CAT = {"kind": "experts", "concepts": [{"name": "cat"}], "generator": {"backend": "fake"}}


@pytest.fixture(scope="module")
def bert():
    return tiny_model_dir("bert")  # 2 layers, 37 MLP units per layer


def _app(tmp_path, **settings):
    s = Settings.build(cache_dir=tmp_path / "cache", artefacts=tmp_path / "artefacts", **settings)
    q = InMemoryQueue()
    return TestClient(create_app(q, artefacts_dir=tmp_path / "artefacts", settings=s)), q


def _post(http, job: dict | str):
    body = job if isinstance(job, str) else json.dumps(job)
    return http.post("/v1/jobs", content=body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body,
                     headers={"content-type": "application/json"})


def _error(r) -> dict:
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]
    return err


def test_a_lone_surrogate_is_422_naming_the_field(tmp_path):
    http, q = _app(tmp_path)
    err = _error(_post(http, '{"kind": "experts", "concepts": [{"name": "ca\\ud800t"}]}'))
    assert err["loc"] == ["body", "concepts", 0, "name"] and err["type"] == "string_unicode"
    assert "\\ud800" in err["msg"]
    err = _error(_post(http, '{"kind": "describe", "dataset": {"name": "d", "texts": ["fine", "bad \\udfff"]}}'))
    assert err["loc"] == ["body", "dataset", "texts", 1]
    assert q.list() == []


def test_a_body_that_is_not_utf8_is_400(tmp_path):
    http, q = _app(tmp_path)
    r = http.post("/v1/jobs", content=b'{"kind": "experts", "concepts": [{"name": "\xff"}]}',
                  headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not UTF-8" in r.json()["detail"]


def test_layers_out_of_range_for_the_packaged_model(tmp_path):
    http, q = _app(tmp_path)
    err = _error(_post(http, {**CAT, "model": {"name": "minilm", "layers": [0, 6]}}))
    assert err["loc"] == ["body", "model", "layers"] and "[6] out of range" in err["msg"] and "0..5" in err["msg"]
    assert _post(http, {**CAT, "model": {"name": "minilm", "layers": [0, 5]}}).status_code == 201


def test_layers_out_of_range_for_an_allowed_local_model(tmp_path, bert):
    http, q = _app(tmp_path, models=(str(bert),))
    err = _error(_post(http, {**CAT, "model": {"name": str(bert), "layers": [2]}}))
    assert err["loc"] == ["body", "model", "layers"] and "0..1" in err["msg"]
    err = _error(_post(http, {"kind": "rank", "layer": 7, "model": {"name": str(bert)},
                              "dataset": {"name": "r", "texts": [f"t {i}" for i in range(10)], "labels": ["a", "b"] * 5}}))
    assert err["loc"] == ["body", "layer"] and "layer 7 out of range" in err["msg"]
    assert _post(http, {**CAT, "model": {"name": str(bert), "layers": [1]}}).status_code == 201


def test_too_many_units_is_422(tmp_path, bert):
    http, q = _app(tmp_path, models=(str(bert),), max_units=50)
    err = _error(_post(http, {**CAT, "model": {"name": str(bert)}}))  # 2 layers x 37 units
    assert err["loc"] == ["body", "model", "layers"] and "74 units" in err["msg"] and "at most 50" in err["msg"]
    assert _post(http, {**CAT, "model": {"name": str(bert), "layers": [0]}}).status_code == 201


def test_a_device_the_workers_do_not_offer_is_422(tmp_path):
    http, q = _app(tmp_path)  # a CPU-only service: auto, cpu
    err = _error(_post(http, {**CAT, "model": {"device": "cuda:99"}}))
    assert err["loc"] == ["body", "model", "device"] and "'cuda:99'" in err["msg"]
    assert q.list() == []


def test_a_missing_model_path_is_422_naming_the_field(tmp_path):
    http, q = _app(tmp_path, models=(f"{tmp_path}/models/*",))
    err = _error(_post(http, {**CAT, "model": {"name": f"{tmp_path}/models/nothing-here"}}))
    assert err["loc"] == ["body", "model", "name"] and "no such model folder" in err["msg"]
    assert q.list() == []


# --------------------------------------------------------------------------- the workers, if it gets there


def _run_one_job(tmp_path, job: dict, stage: str = "generate", **settings):
    s = Settings.build(cache_dir=tmp_path / "cache", artefacts=tmp_path / "artefacts", **settings)
    q = InMemoryQueue()
    rec = q.submit(job)  # straight into the queue: the API's door is not on this path
    assert Worker(q, stage, settings=s, log=lambda _m: None, ready_timeout_s=120).run(max_jobs=1) == 0
    return q.get(rec.id)


def test_user_errors_that_reach_a_worker_fail_once_not_three_times(tmp_path, bert):
    done = _run_one_job(tmp_path, {"kind": "experts", "concepts": [{"name": "ca\ud800t"}]})
    assert done.status == JobStatus.failed and done.attempts == 1
    assert "concepts.0.name" in done.error
    done = _run_one_job(tmp_path, {**CAT, "model": {"name": str(bert), "layers": [5]}}, models=(str(bert),))
    assert done.status == JobStatus.failed and done.attempts == 1 and "layers" in done.error


def test_a_worker_refuses_a_cuda_device_it_does_not_have():
    import torch

    with pytest.raises(InvalidInput) as e:
        runtime.device_for(SubjectModelSpec(device=f"cuda:{torch.cuda.device_count() + 98}"), Settings())
    assert e.value.field == "device"
