"""The atlas over HTTP (the service's own app): models, the neurons table, one neuron, concepts and
search (by words and by meaning), the web UI's paths, 404s that echo a bounded key, 422s that name
the parameter, and the service's key rules (the UI's static files excepted: they hold no data)."""

import pytest
from fastapi.testclient import TestClient

from atlas_results import PLANTED
from neuroscribe.service.api import create_app
from neuroscribe.service.queue import InMemoryQueue


@pytest.fixture
def client(indexed, tmp_path):
    engine, _ = indexed
    return TestClient(create_app(InMemoryQueue(), artefacts_dir=tmp_path, atlas=engine))


def _model(client):
    return client.get("/v1/atlas/models").json()[0]["key"]


def test_models_neurons_and_one_neuron(client):
    (m,) = client.get("/v1/atlas/models").json()
    assert [x["layer"] for x in m["layers"]] == [0, 1] and m["n_neurons"] == 74 and m["sites"] == ["mlp_post"]
    page = client.get("/v1/atlas/neurons", params={"model": m["key"], "layer": 0, "sort": "max_activation",
                                                   "order": "desc", "limit": 2}).json()
    assert page["total"] == 37 and len(page["items"]) == 2 and page["items"][0]["unit"] == PLANTED[1]
    r = client.get(f"/v1/atlas/neurons/{m['key']}/{PLANTED[0]}/{PLANTED[1]}")
    assert r.status_code == 200
    v = r.json()
    assert v["neuron"]["unit"] == PLANTED[1] and v["prev"] == {"layer": 0, "unit": 4}
    assert v["exemplars"][0]["tokens"][v["exemplars"][0]["peak"]]["text"] == "cat"


def test_search_finds_by_words_and_by_meaning(client):
    words = client.get("/v1/atlas/search", params={"q": "cat"}).json()["items"]
    assert {(x["kind"], x["text"]) for x in words} >= {("descriptor", "cat"), ("concept", "cat")}
    assert next(x for x in words if x["kind"] == "descriptor" and x["text"] == "cat")["match"] == "both"
    meaning = client.get("/v1/atlas/search", params={"q": "kitten"}).json()["items"]
    hit = next(x for x in meaning if x["text"] == "cat")  # no shared word: found by the MiniLM embedding
    assert hit["match"] == "meaning" and hit["cosine"] >= 0.45
    assert any((n["layer"], n["unit"]) == PLANTED for n in hit["neurons"])


def test_concepts(client):
    listed = {c["concept"]: c for c in client.get("/v1/atlas/concepts").json()}
    assert set(listed) == {"cat", "bus"} and listed["cat"]["n_experts"] >= 1 and listed["cat"]["best_ap"] == 1.0
    cv = client.get("/v1/atlas/concepts/cat").json()
    assert any((r["layer"], r["unit"]) == PLANTED for r in cv["experts"])


def test_unknown_keys_are_404_with_the_key_echoed_and_bounded(client):
    model = _model(client)
    r = client.get(f"/v1/atlas/neurons/{model}/0/99999")
    assert r.status_code == 404 and f"{model}/0/99999" in r.json()["detail"]
    long = "m" * 5000
    r = client.get(f"/v1/atlas/neurons/{long}/0/1")
    assert r.status_code == 404 and len(r.json()["detail"]) < 300 and "mmmm" in r.json()["detail"]
    assert client.get("/v1/atlas/concepts/unicorn").status_code == 404


@pytest.mark.parametrize("params, field", [({"sort": "drop table"}, "sort"), ({"limit": 0}, "limit"),
                                           ({"layer": -1}, "layer"), ({"status": "sleepy"}, "status")])
def test_bad_parameters_are_422_naming_them(client, params, field):
    r = client.get("/v1/atlas/neurons", params=params)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", field]


def test_the_ui_is_served_at_its_paths_and_nothing_else(client):
    for path in ("/", "/jobs", "/search", f"/neurons/{_model(client)}/0/5", "/concepts/cat", "/models/x/0"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
    assert client.get("/static/atlas/app.js").status_code == 200
    assert client.get("/static/atlas/..%2F..%2Fstore.py").status_code == 404
    assert client.get("/etc/passwd").status_code == 404
    assert client.get("/v1/nothing-here").status_code == 404


def test_the_atlas_needs_the_key_the_ui_shell_does_not(indexed, tmp_path):
    engine, _ = indexed
    c = TestClient(create_app(InMemoryQueue(), artefacts_dir=tmp_path, api_key="s3cret", atlas=engine))
    assert c.get("/v1/atlas/models").status_code == 401
    assert c.get("/v1/atlas/search", params={"q": "cat"}).status_code == 401
    assert c.get("/").status_code == 200 and c.get("/static/atlas/app.js").status_code == 200
    assert c.post("/").status_code in (401, 405)  # only GETs of the shell are open
    assert c.get("/v1/atlas/models", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_without_an_atlas_the_routes_say_so(tmp_path):
    c = TestClient(create_app(InMemoryQueue(), artefacts_dir=tmp_path))
    r = c.get("/v1/atlas/models")
    assert r.status_code == 503 and "NEUROSCRIBE_ATLAS_URL" in r.json()["detail"]


def test_pages_forbid_inline_and_foreign_scripts(client):
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert client.get("/static/atlas/app.js").headers["x-content-type-options"] == "nosniff"


def test_packaged_datasets_for_the_submit_form(client):
    assert client.get("/v1/datasets").json() == ["amazon"]
    d = client.get("/v1/datasets/amazon").json()
    assert len(d["texts"]) == len(d["labels"]) == 1000 and d["label_names"] == {"1": "positive", "0": "negative"}
    r = client.get("/v1/datasets/nope.txt")
    assert r.status_code == 404 and "no packaged dataset 'nope.txt' (packaged: amazon)" == r.json()["detail"]
    assert client.get("/v1/datasets/..%2F..%2Fetc%2Fpasswd").status_code == 404  # no file of the server is named


def test_jobs_list_names_models_and_stays_small(client):
    items = client.get("/v1/atlas/jobs").json()["items"]
    assert {i["kind"] for i in items} == {"describe", "experts", "rank"}
    assert all(i["models"] == [_model(client)] and len(i["summary"] or "") <= 600 for i in items)
    assert all("parameters" not in i for i in items)


def test_a_result_page_is_shown_sandboxed_and_runs_only_its_own_script(results, tmp_path):
    import base64
    import hashlib
    import re
    import shutil

    from atlas_ui import seed_succeeded_job

    q = InMemoryQueue()
    job = seed_succeeded_job(q, tmp_path, results["rank"])
    shutil.copytree(results["describe"], tmp_path / job / "result" / "describe")
    c = TestClient(create_app(q, artefacts_dir=tmp_path))
    page = c.get(f"/v1/jobs/{job}/artefacts/result/describe/descriptions.html")
    assert page.status_code == 200 and "attachment" not in page.headers.get("content-disposition", "")
    csp = page.headers["content-security-policy"]
    assert csp.startswith("sandbox allow-scripts;") and "img-src 'self' data:" in csp
    sources = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "unsafe-inline" not in sources
    scripts = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    assert scripts and all(f"'sha256-{base64.b64encode(hashlib.sha256(x.encode()).digest()).decode()}'" in sources
                           for x in scripts)  # the page's own sort/filter runs; nothing else would
    data = c.get(f"/v1/jobs/{job}/artefacts/result/rankings.csv")
    assert data.headers["content-disposition"].startswith("attachment")
