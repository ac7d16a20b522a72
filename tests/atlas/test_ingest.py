"""Indexing result folders: the planted "cat" unit of one tiny model is described, an expert and
ranked first in three jobs, and the atlas joins the three on one neuron; its exemplars carry the
unit's activation at every token; re-indexing replaces rows; what is not a result is refused with
one line naming the folder and what is missing."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from atlas_results import PLANTED, SCRIPT
from neuroscribe.atlas import schema
from neuroscribe.atlas.ingest import index_folder
from neuroscribe.atlas.neuron_view import neuron_view
from neuroscribe.atlas.queries import NotFound, concept_view, list_models, list_neurons
from neuroscribe.errors import InvalidInput


def _model(engine):
    (m,) = list_models(engine)
    return m["key"]


def _counts(engine) -> dict:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in schema.metadata.sorted_tables}


def test_one_neuron_joined_across_three_jobs(indexed):
    engine, reports = indexed
    assert {r["kind"] for r in reports.values()} == {"describe", "experts", "rank"}
    v = neuron_view(engine, _model(engine), *PLANTED)
    assert len({j["key"] for j in v["jobs"]}) == 3
    cat = next(d for d in v["descriptors"] if d["descriptor"] == "cat")
    assert cat["f"] == 100.0 and cat["verified"] is True and cat["auroc"] == 1.0
    (concept,) = [c for c in v["concepts"] if c["concept"] == "cat"]
    assert concept["expert"] and concept["ap"] == 1.0 and concept["tau"] == 0.9
    positions = {r["method"]: r["position"] for r in v["ranks"]}
    assert [positions[m] for m in ("linear", "gaussian", "probeless")] == [1, 1, 1]  # first where it should be
    assert all(r["n_ranked"] == 37 for r in v["ranks"])
    assert any(e["kind"] == "intervention" and e["baseline"] is not None for e in v["effects"])
    (stats,) = v["stats"]
    assert stats["status"] == "described" and stats["firing_density"] == 0.25 and stats["max"] > 10
    hist = stats["histogram"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 and sum(hist["counts"]) == 80  # the distinct sentences


def test_exemplars_carry_the_units_activation_at_every_token(indexed):
    engine, _ = indexed
    v = neuron_view(engine, _model(engine), *PLANTED)
    top = [e for e in v["exemplars"] if e["kind"] == "top"]
    assert len(top) == 20 and [e["rank"] for e in top] == list(range(1, 21))
    for e in top:
        assert e["tokens"], e
        peak = e["tokens"][e["peak"]]
        assert peak["text"] == "cat"  # the planted unit fires on the token "cat" and nowhere else
        assert peak["value"] == pytest.approx(e["activation"], rel=1e-3)  # max pooling: the peak is the response
        assert all(t["value"] <= 0.5 for i, t in enumerate(e["tokens"]) if i != e["peak"])
        assert all(e["text"][t["start"]:t["end"]] == t["text"] for t in e["tokens"])
    script = next(e for e in top if e["text"] == SCRIPT)  # stored as text; escaping is the page's job
    assert script["tokens"][script["peak"]]["text"] == "cat"
    quantile = [e for e in v["exemplars"] if e["kind"] == "quantile"]
    assert quantile and all(e["level"] is not None for e in quantile)


def test_reindexing_replaces_never_duplicates(indexed, results):
    engine, reports = indexed
    before = _counts(engine)
    again = index_folder(engine, results["describe"])
    assert again["key"] == reports["describe"]["key"]
    assert _counts(engine) == before


def test_lists_filters_and_sorts(indexed):
    engine, _ = indexed
    model = _model(engine)
    by_ap = list_neurons(engine, model=model, sort="best_ap", order="desc", limit=3)
    assert by_ap["items"][0]["best_ap"] == 1.0
    cat = list_neurons(engine, model=model, descriptor="CAT", limit=100)
    assert (0, 5) in {(r["layer"], r["unit"]) for r in cat["items"]}
    assert all(r["top_descriptor"] is not None for r in cat["items"])
    dead = list_neurons(engine, model=model, status="dead", limit=100)
    assert all(r["status"] == "dead" for r in dead["items"])
    page1 = list_neurons(engine, model=model, layer=0, sort="max_activation", order="desc", limit=5)
    page2 = list_neurons(engine, model=model, layer=0, sort="max_activation", order="desc", limit=5, offset=5)
    assert page1["total"] == 37 and page1["items"][0]["unit"] == PLANTED[1]
    values = [r["max_activation"] for r in page1["items"] + page2["items"]]
    assert values == sorted(values, reverse=True)
    experts = list_neurons(engine, concept="cat", limit=100)
    assert experts["total"] >= 1 and all(r["best_ap"] >= 0.9 for r in experts["items"])
    cv = concept_view(engine, "cat")
    assert (0, 5) in {(r["layer"], r["unit"]) for r in cv["experts"]}
    assert sum(r["n"] for r in cv["experts_per_layer"]) == len(cv["experts"])
    with pytest.raises(NotFound):
        concept_view(engine, "no such concept")
    with pytest.raises(NotFound):
        neuron_view(engine, model, 0, 10_000)
    # prev / next run through the layers in (layer, unit) order, across a layer's end
    assert neuron_view(engine, model, 0, 36)["next"] == {"layer": 1, "unit": 0}
    assert neuron_view(engine, model, 1, 0)["prev"] == {"layer": 0, "unit": 36}
    assert neuron_view(engine, model, 0, 0)["prev"] is None and neuron_view(engine, model, 1, 36)["next"] is None


def test_what_is_not_a_result_is_refused_with_one_line(sqlite_url, results, tmp_path):
    from neuroscribe.atlas.store import open_store

    engine = open_store(sqlite_url)
    with pytest.raises(InvalidInput, match="not a directory"):
        index_folder(engine, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(InvalidInput, match=r"empty: not a neuroscribe result folder: no job.json \(it holds notes.txt\)"):
        index_folder(engine, tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(results["rank"], broken)
    (broken / "rankings.json").unlink()
    with pytest.raises(InvalidInput, match="broken: a rank job's folder without rankings.json"):
        index_folder(engine, broken)
    (broken / "job.json").write_text(json.dumps({"kind": "poem"}))
    with pytest.raises(InvalidInput, match="kind 'poem'"):
        index_folder(engine, broken)
    assert _counts(engine)["atlas_jobs"] == 0


def test_index_command(sqlite_url, results, tmp_path):
    from neuroscribe.service.cli import cli

    r = CliRunner().invoke(cli, ["index", str(results["rank"]), str(results["experts"]), "--atlas", sqlite_url])
    assert r.exit_code == 0, r.output
    assert "indexed rank" in r.output and "indexed experts" in r.output
    bad = CliRunner().invoke(cli, ["index", str(results["rank"]), str(tmp_path), "--atlas", sqlite_url])
    assert bad.exit_code == 2 and "not a neuroscribe result folder: no job.json" in bad.output
    assert str(tmp_path) in bad.output


def test_a_service_job_folder_is_keyed_by_its_job_id(sqlite_url, results, tmp_path):
    from neuroscribe.atlas.store import open_store

    job_id = "0123456789abcdef0123456789abcdef"
    shutil.copytree(results["rank"], tmp_path / job_id / "result")
    engine = open_store(sqlite_url)
    assert index_folder(engine, tmp_path / job_id)["key"] == job_id  # the job's folder: its result is inside
    assert index_folder(engine, tmp_path / job_id / "result")["key"] == job_id
    assert _counts(engine)["atlas_jobs"] == 1


def test_an_embedded_run_is_indexed_when_it_finishes(results, tmp_path, monkeypatch, sqlite_url):
    from neuroscribe.atlas.store import open_store
    from neuroscribe.service.cli import cli

    monkeypatch.setenv("NEUROSCRIBE_AUTO_INDEX", "1")
    monkeypatch.setenv("NEUROSCRIBE_ATLAS_URL", sqlite_url)
    data = results["rank"].parent / "cats.tsv"
    r = CliRunner().invoke(cli, ["rank", "--model", str(results["model"]), "--dataset", str(data), "--layer", "0",
                                 "--pooling", "max", "--k", "1", "--seeds", "2", "--n-random", "2", "--methods",
                                 "linear", "--device", "cpu", "--out", str(tmp_path / "r"), "--no-interventions"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "indexed into the atlas" in r.output
    engine = open_store(sqlite_url)
    assert _counts(engine)["atlas_ranks"] == 37
    assert np.isfinite(list_neurons(engine, method="linear", sort="best_rank", limit=1)["items"][0]["best_rank"])


def test_bulk_tables_are_analyzed_for_the_planner(indexed):
    """Without statistics SQLite joined a layer's neurons to the whole statistics table first (seconds
    per page of the neurons table); the importer analyzes what it wrote, on both databases."""
    from sqlalchemy import text

    engine, _ = indexed
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            tables = {r[0] for r in conn.execute(text("SELECT tbl FROM sqlite_stat1"))}
        else:
            tables = {r[0] for r in conn.execute(text(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                "AND schemaname = current_schema()"))}
    assert {"atlas_unit_stats", "atlas_exemplars", "atlas_neurons"} <= tables, tables
