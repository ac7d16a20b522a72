"""The OpenAPI schema says what the API does (issue 14, finding 11): 404s of the job routes, 400 and
413 of submit, ``kind`` required, an empty concept invalid by the schema as by the API -- and
Schemathesis against the live ASGI app: no 5xx, every answer documented and as the schema says."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from neuroscribe.service.api import create_app  # noqa: E402
from neuroscribe.service.queue import InMemoryQueue  # noqa: E402
from neuroscribe.settings import Settings  # noqa: E402

JOB_ROUTES = [("get", "/v1/jobs/{job_id}"), ("post", "/v1/jobs/{job_id}/cancel"), ("get", "/v1/jobs/{job_id}/result"),
              ("get", "/v1/jobs/{job_id}/artefacts"), ("get", "/v1/jobs/{job_id}/artefacts/{path}")]


def _app(root):
    from neuroscribe.atlas.store import open_store

    return create_app(InMemoryQueue(), artefacts_dir=root, settings=Settings.build(cache_dir=root / "cache"),
                      atlas=open_store(f"sqlite:///{root / 'atlas.sqlite'}"))  # empty: every key is a 404


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return _app(tmp_path_factory.mktemp("openapi"))


@pytest.fixture(scope="module")
def spec(app):
    return TestClient(app).get("/openapi.json").json()


@pytest.mark.parametrize("method, path", JOB_ROUTES)
def test_job_routes_document_their_404(spec, app, method, path):
    assert "404" in spec["paths"][path][method]["responses"]
    url = path.format(job_id="0" * 32, path="result/x.json")
    assert getattr(TestClient(app), method)(url).status_code == 404


def test_submit_documents_400_413_and_its_body(spec):
    post = spec["paths"]["/v1/jobs"]["post"]
    assert {"400", "413", "422", "201", "200"} <= set(post["responses"])
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["propertyName"] == "kind"
    assert post["requestBody"]["required"] is True


@pytest.mark.parametrize("kind", ["ExpertsJob", "DescribeJob", "RankJob"])
def test_kind_is_required_by_the_schema_as_by_the_api(spec, app, kind):
    assert "kind" in spec["components"]["schemas"][kind]["required"]
    r = TestClient(app).post("/v1/jobs", json={"concepts": [{"name": "cat"}]})
    assert r.status_code == 422


def test_an_empty_concept_is_invalid_by_the_schema_as_by_the_api(spec, app):
    import re

    name = spec["components"]["schemas"]["ConceptSpec"]["properties"]["name"]
    pattern = re.compile(name["pattern"])
    http = TestClient(app)
    for text in ["", "   ", "\t\n", "\x1c"]:
        assert len(text) < name["minLength"] or not pattern.search(text)
        r = http.post("/v1/jobs", json={"kind": "experts", "concepts": [{"name": text}], "generator": {"backend": "fake"}})
        assert r.status_code == 422, text
    assert pattern.search(" cat ")


# --------------------------------------------------------------------------- Schemathesis


_schema = schemathesis.openapi.from_asgi("/openapi.json", _app(__import__("pathlib").Path(
    __import__("tempfile").mkdtemp(prefix="neuroscribe-openapi-"))))


@_schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_matches_its_schema(case):
    """Bounded: 12 examples per operation, derandomized (the same every run)."""
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_headers_conformance, response_schema_conformance])
