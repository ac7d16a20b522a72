"""The registry of job kinds: a toy kind declared in one module (``tests/support/toy_kind.py``) and
registered once is accepted by the API, routed through its stages by the queue, run by workers,
offered by the CLI, rebuilt by ``report DIR`` and run by ``neuroscribe.run`` -- nothing else edited."""

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import neuroscribe
from neuroscribe.service import registry
from neuroscribe.service.api import create_app
from neuroscribe.service.queue import InMemoryQueue, first_stage, next_stage
from neuroscribe.settings import Settings


@pytest.fixture
def toy():
    import toy_kind

    registry.register(toy_kind.KIND, replace=True)
    yield toy_kind
    registry.unregister("toy")


def test_the_builtin_kinds_are_declared_once_each():
    kinds = registry.kinds()
    assert list(kinds)[:3] == ["experts", "describe", "rank"]
    assert kinds["describe"].stages == ("generate", "cluster", "activate", "analyse", "explain")
    assert registry.stage_names() == ["activate", "analyse", "cluster", "explain", "generate"]


def test_a_registered_kind_runs_through_api_queue_and_workers(toy, tmp_path):
    from neuroscribe.service.worker import Worker

    q = InMemoryQueue(lease_s=5.0)
    app = create_app(q, artefacts_dir=tmp_path / "artefacts")
    with TestClient(app) as http:
        r = http.post("/v1/jobs", json={"kind": "toy", "words": ["neuron", "cat"]})
        assert r.status_code == 201, r.text
        rec = r.json()
        assert rec["kind"] == "toy" and rec["stage"] == "toy-count"
        bad = http.post("/v1/jobs", json={"kind": "toy", "words": []})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "words"]
    assert first_stage("toy") == "toy-count" and next_stage("toy", "toy-count") == "toy-shout"
    settings = Settings.build(artefacts=tmp_path / "artefacts", cache_dir=tmp_path / "cache")
    for stage in toy.KIND.stages:
        w = Worker(q, stage, settings=settings, handlers="toy_kind:HANDLERS", log=lambda _m: None)
        assert w.run(max_jobs=1) == 0  # the delivery is waiting: one job, then it returns
    done = q.get(rec["id"])
    assert done.status.value == "succeeded", done.error
    assert json.loads(q.result(rec["id"])) == {"kind": "toy", "schema_version": 1, "n_letters": 9,
                                               "shouted": ["NEURON", "CAT"]}
    assert done.summary["n_letters"] == 9 and done.summary["n_shouted"] == 2  # the record: a summary


def test_a_registered_kind_has_its_commands_its_page_and_run(toy, tmp_path):
    from neuroscribe.service.cli import build_cli

    cli = build_cli()
    assert "toy" in cli.commands and "toy" in cli.commands["submit"].commands
    got = CliRunner().invoke(cli, ["toy", "a", "bb", "--out", str(tmp_path / "o")], catch_exceptions=False)
    assert got.exit_code == 0 and json.loads(got.output)["n_letters"] == 3
    rep = CliRunner().invoke(cli, ["report", str(tmp_path / "o")], catch_exceptions=False)
    assert rep.exit_code == 0 and (tmp_path / "o" / "toy.html").read_text() == "<p>A BB</p>"
    result = neuroscribe.run({"kind": "toy", "words": ["x"]}, out=tmp_path / "r")
    assert result.shouted == ("X",)


def test_report_on_a_folder_without_a_result_names_the_files(tmp_path):
    from neuroscribe.service.cli import cli

    got = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert got.exit_code == 2
    assert "experts.json" in got.output and "descriptions.json" in got.output and "rankings.json" in got.output
