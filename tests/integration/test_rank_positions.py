"""The rank job editing only the attribute-bearing word beside every position (issue 16, item 3):
token-level data runs both, each on its own rows; a planted unit translated at the word alone moves
the decoder's output in the predicted direction; sentence-level data asking for the word is refused,
naming the field, before any model loads (command line and HTTP)."""

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from neuroscribe.jobs import RankJob, parse_result
from neuroscribe.jobs.rank import AttributeDataSpec
from neuroscribe.service.cli import cli
from tiny_models import VOCAB, make_tiny_model, tiny_model_dir

UNIT = 7
PREFIXES = ["i love the", "we like my", "they hate this", "you like that", "it is a", "the sound of the",
            "i like your", "we love a", "they like the", "you hate my", "it was the", "the price of a"]


def _write(path, rows, header=("text", "label", "word")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A tiny GPT-2 whose layer-0 MLP unit UNIT fires on the token "cat" (~0 elsewhere) and writes,
    through its output row, a residual direction the LM head reads as " great" (up) against
    " terrible" (down). In the data the target word, "cat" (label 1) or "dog" (label 0), is the last
    word, so the unit at that word alone bears the label's continuation."""
    from transformers import AutoModelForCausalLM

    path = make_tiny_model("gpt2", tmp_path_factory.mktemp("planted") / "m", seed=3)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        emb = model.transformer.wte.weight  # tied to the LM head
        emb[:, 0] = 0.0
        emb[VOCAB["cat"], 0] = 20.0
        fc, proj = model.transformer.h[0].mlp.c_fc, model.transformer.h[0].mlp.c_proj  # Conv1D: (in, out)
        fc.weight[:, UNIT] = 0.0
        fc.weight[0, UNIT] = 10.0
        fc.bias[UNIT] = -10.0
        d = torch.zeros(model.config.n_embd)
        d[1] = 1.0
        proj.weight[UNIT] = 3.0 * d
        emb[VOCAB["great"], 1] = 4.0
        emb[VOCAB["terrible"], 1] = -4.0
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def both(planted, tmp_path_factory):
    d = tmp_path_factory.mktemp("pos")
    rows = [(f"{p} {'cat' if i % 2 else 'dog'}", str(i % 2), len(p.split())) for i in range(2) for p in PREFIXES]
    data = _write(d / "tok.tsv", rows)
    out = d / "out"
    r = CliRunner().invoke(cli, ["rank", "--model", str(planted), "--dataset", str(data), "--word-col", "word",
                                 "--layer", "0", "--k", "1", "--methods", "probeless,random", "--seeds", "2",
                                 "--no-stability", "--modes", "translate,zero", "--edit-positions", "all,attribute",
                                 "--n-random", "4", "--continuation", "1= great", "--continuation", "0= terrible",
                                 "--device", "cpu", "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return parse_result((out / "rankings.json").read_text()), out


def _row(res, ranking, mode, positions, k=1):
    return next(e for e in res.interventions if (e.ranking, e.mode, e.positions, e.k) == (ranking, mode, positions, k))


def test_both_positions_are_run_and_reported_apart(both):
    res, out = both
    assert res.level == "token" and res.intervention_measure == "logodds"
    assert {(e.mode, e.positions) for e in res.interventions} == {
        (m, p) for m in ("translate", "zero") for p in ("all", "attribute")}
    assert len(res.interventions) == 2 * 2 * 2  # rankings x modes x positions
    for mode in ("translate", "zero"):
        a, w = _row(res, "probeless", mode, "all"), _row(res, "probeless", mode, "attribute")
        assert a.mean_ranked != w.mean_ranked and a.random_draws != w.random_draws
        assert a.n_examples == w.n_examples == 12
    with open(out / "interventions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["positions"] for r in rows} == {"all", "attribute"} and len(rows) == 8
    summary = (out / "summary.txt").read_text()
    assert "at attribute" in summary and "at all" in summary
    page = (out / "rankings.html").read_text()
    assert "Interventions at the target word&#x27;s tokens" in page or "Interventions at the target word's" in page
    assert (out / "report" / "interventions.csv").exists() and (out / "report" / "interventions_attribute.csv").exists()
    job = json.loads((out / "job.json").read_text())
    assert job["interventions"]["positions"] == ["all", "attribute"]
    from neuroscribe.service.rank.page import rebuild_rank_page

    before = page.encode()
    rebuild_rank_page(out)  # the page from rankings.json alone: the same, both figures kept
    assert (out / "rankings.html").read_bytes() == before
    assert (out / "report" / "interventions_attribute.png").exists()


def test_the_planted_unit_translated_at_the_word_moves_the_output_as_predicted(both):
    """Translating the unit toward the other class's mean at the target word alone must lower every
    example's own-label log-odds (cat: less " great"; dog: more " great"), beyond every random set."""
    res, _ = both
    assert next(r for r in res.rankings if r.method == "probeless").order[0] == UNIT
    e = _row(res, "probeless", "translate", "attribute")
    assert e.mean_ranked < -1.0 and e.ci_ranked[1] < 0, e
    assert all(e.mean_ranked < d for d in e.random_draws), e.random_draws
    assert e.p_random == pytest.approx(e.p_floor) == pytest.approx(1 / 5)


@pytest.fixture()
def no_model(monkeypatch):
    import neuroscribe.workers.activations as acts

    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(acts, "load_subject_model", boom)


@pytest.mark.parametrize("command", [["rank"], ["submit", "rank", "--url", "http://127.0.0.1:9"]])
def test_sentence_level_data_cannot_edit_the_attribute_word(tmp_path, no_model, command):
    data = _write(tmp_path / "s.tsv", [("a cat", "1")] * 6 + [("a dog", "0")] * 6, header=("text", "label"))
    out = ["--out", str(tmp_path / "o")] if command == ["rank"] else []
    r = CliRunner().invoke(cli, [*command, "--model", str(tiny_model_dir("gpt2")), "--dataset", str(data),
                                 "--continuation", "1= great", "--continuation", "0= bad", "--edit-positions",
                                 "all,attribute", *out], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("neuroscribe: error:")]
    assert len(errors) == 1 and errors[0].startswith("neuroscribe: error: --edit-positions: "), r.stderr
    assert "sentence-level data has no attribute-bearing word" in errors[0]
    assert not (tmp_path / "o").exists()
    r = CliRunner().invoke(cli, [*command, "--dataset", str(data), "--edit-positions", "all,words", *out],
                           catch_exceptions=False)
    assert r.exit_code == 2 and "--edit-positions: 'all,words' is not accepted: " in r.stderr, r.stderr


def test_the_job_refuses_it_and_http_names_the_field(tmp_path):
    texts = tuple(f"a cat {i}" for i in range(10))
    data = AttributeDataSpec(name="d", texts=texts, labels=("a", "b") * 5)
    with pytest.raises(ValueError, match="interventions.positions: 'attribute'"):
        RankJob(dataset=data, interventions={"positions": ["attribute"]})
    with pytest.raises(ValueError, match="must not repeat"):
        RankJob(dataset=data, interventions={"positions": ["all", "all"]})
    assert RankJob(dataset=data).interventions.positions == ("all",)  # the default: as before
    assert RankJob(dataset=data, interventions=None).interventions is None
    token = data.model_copy(update={"word_index": (1,) * 10})
    assert RankJob(dataset=token, interventions={"positions": ["attribute"]}).interventions.positions == ("attribute",)
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from neuroscribe.service.api import create_app
    from neuroscribe.service.queue import InMemoryQueue
    from neuroscribe.settings import Settings

    s = Settings.build(cache_dir=tmp_path / "cache", artefacts=tmp_path / "artefacts")
    q = InMemoryQueue()
    http = TestClient(create_app(q, artefacts_dir=tmp_path / "artefacts", settings=s))
    job = {"kind": "rank", "dataset": {"name": "d", "texts": list(texts), "labels": ["a", "b"] * 5},
           "interventions": {"positions": ["attribute"]}}
    r = http.post("/v1/jobs", json=job)
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]
    assert "interventions.positions" in err["msg"] and "sentence-level" in err["msg"]
    assert q.list() == []
