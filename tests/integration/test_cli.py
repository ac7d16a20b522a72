"""`neuroscribe experts` end to end on a tiny random BERT, and its bad-input contract."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score

from neuroscribe.jobs import ExpertsResult, SentenceRecord
from neuroscribe.service.cli import cli
from tiny_models import make_tiny_model


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return make_tiny_model("bert", tmp_path_factory.mktemp("bert") / "model")


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _write_sentences(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


SENTENCES = [
    {"text": t, "concept": c, "label": y}
    for c, pos, neg in [
        ("cat", ["the cat sat on the mat", "a cat likes fish", "my cat sleeps all day", "cats chase mice at night"],
         ["the bus was late", "rain fell on the town", "she played the guitar", "bread is baked at dawn"]),
        ("bus", ["the bus was late", "a red bus stopped", "we took the night bus", "the bus driver waved"],
         ["the cat sat on the mat", "rain fell on the town", "she played the guitar", "bread is baked at dawn"]),
    ]
    for ts, y in ((pos, 1), (neg, 0))
    for t in ts
]


def test_experts_with_fake_generator_writes_every_artefact(tiny_bert, tmp_path):
    out = tmp_path / "run"
    r = _run(["experts", "--model", str(tiny_bert), "--concept", "cat:animal", "--concept", "bus",
              "--generator", "fake", "--n-pos", "6", "--n-neg", "6", "--tau", "0.8", "--quiet",
              "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert {p.name for p in out.iterdir()} >= {"experts.json", "ap.csv", "sentences.jsonl", "responses", "job.json",
                                               "summary.txt"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.tmp")]
    res = ExpertsResult.model_validate_json((out / "experts.json").read_text())
    assert [c.concept for c in res.concepts] == ["cat", "bus"]
    assert res.concepts[0].category == "animal"
    assert res.provenance.generator["backend"] == "fake"
    assert res.provenance.prompt_version
    records = [SentenceRecord.model_validate_json(line) for line in (out / "sentences.jsonl").read_text().splitlines()]
    for c in res.concepts:
        recs = [x for x in records if x.concept == c.concept]
        assert (c.n_pos, c.n_neg) == (sum(x.label for x in recs), sum(1 - x.label for x in recs)) == (6, 6)
        assert {x.style for x in recs} == {"fact", "story"}
        assert all(x.sampling is not None and x.generator is not None for x in recs)
        assert sorted(c.counts_per_layer) == list(res.layers)
        assert sum(c.counts_per_layer.values()) == len(c.experts)
        assert all(u.ap >= 0.8 for u in c.experts)
        assert [u.ap for u in c.top] == sorted((u.ap for u in c.top), reverse=True)
    assert "cat" in r.output and "experts" in r.output


def test_ap_csv_matches_sklearn_on_saved_responses(tiny_bert, tmp_path):
    out = tmp_path / "run"
    f = _write_sentences(tmp_path / "s.jsonl", SENTENCES)
    r = _run(["experts", "--model", str(tiny_bert), "--sentences", str(f), "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "responses" / "meta.json").read_text())
    texts = list(dict.fromkeys(s["text"] for s in SENTENCES))
    rows = np.loadtxt(out / "ap.csv", delimiter=",", skiprows=1)
    header = (out / "ap.csv").read_text().splitlines()[0].split(",")
    assert header == ["layer", "unit", "cat", "bus"]
    assert rows.shape[0] == len(meta["layers"]) * meta["units_per_layer"]
    for layer in meta["layers"]:
        resp = np.load(out / "responses" / f"layer_{layer:03d}.npy")
        assert resp.dtype == np.float16 and resp.shape == (len(texts), meta["units_per_layer"])
        for j, concept in enumerate(["cat", "bus"]):
            sub = [s for s in SENTENCES if s["concept"] == concept]
            idx = [texts.index(s["text"]) for s in sub]
            y = [s["label"] for s in sub]
            mine = rows[rows[:, 0] == layer][:, 2 + j]
            ref = [average_precision_score(y, resp[idx, u].astype(np.float64)) for u in range(resp.shape[1])]
            np.testing.assert_allclose(mine, ref, atol=1e-6)
    res = json.loads((out / "experts.json").read_text())
    assert res["provenance"]["generator"] is None


@pytest.mark.parametrize(
    "extra, field",
    [
        (["--model", "no-such-org/no-such-model-xyz"], "model"),
        (["--site", "attention_probs"], "site"),
        (["--concept", "  "], "concept"),
        (["--tau", "0"], "tau"),
        (["--tau", "1.5"], "tau"),
        (["--layers", "0,99"], "layers"),
        (["--layers", "two"], "layers"),
        (["--generator", "nonsense!"], "generator"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_dir(tiny_bert, tmp_path, monkeypatch, extra, field):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    args = ["experts", "--model", str(tiny_bert), "--concept", "cat", "--generator", "fake", "--quiet",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    # later options win in click, so appended ones override the defaults above
    r = _run(args + extra)
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("neuroscribe: error:")]
    assert len(errors) == 1 and field in errors[0], r.stderr
    assert r.stderr.rstrip().endswith(errors[0])
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".run")] == []


def test_sentences_file_without_negatives_and_malformed_line(tiny_bert, tmp_path):
    only_pos = _write_sentences(tmp_path / "p.jsonl", [s for s in SENTENCES if s["label"] == 1])
    r = _run(["experts", "--model", str(tiny_bert), "--sentences", str(only_pos), "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "negatives" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(SENTENCES[0]) + "\n" + '{"text": "x", "concept": "cat"\n')
    r = _run(["experts", "--model", str(tiny_bert), "--sentences", str(bad), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "bad.jsonl:2" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_existing_out_needs_force(tiny_bert, tmp_path):
    out = tmp_path / "run"
    f = _write_sentences(tmp_path / "s.jsonl", SENTENCES)
    base = ["experts", "--model", str(tiny_bert), "--sentences", str(f), "--quiet", "--out", str(out)]
    assert _run(base).exit_code == 0
    (out / "keep.txt").write_text("mine")
    r = _run(base)
    assert r.exit_code == 2 and "--force" in r.stderr
    assert (out / "keep.txt").read_text() == "mine"
    r = _run(base + ["--force"])
    assert r.exit_code == 0 and (out / "experts.json").exists() and not (out / "keep.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_help_explains_every_option():
    r = _run(["experts", "--help"])
    assert r.exit_code == 0
    cmd = cli.commands["experts"]
    for p in cmd.params:
        if p.param_type_name == "option" and p.name != "help":
            assert p.help, f"--{p.name} has no help"
            assert p.opts[0] in r.output


def test_hub_model_with_revision_from_local_cache(tmp_path, monkeypatch):
    """`--model org/name --revision stepN` loads offline from the Hugging Face cache; the revision
    and its commit land in the provenance; an unknown revision is a one-line exit 2."""
    import huggingface_hub.constants

    from tiny_models import make_fake_hub_cache

    a = make_tiny_model("bert", tmp_path / "a", seed=1)
    b = make_tiny_model("bert", tmp_path / "b", seed=2)
    cache = tmp_path / "hub"
    commits = make_fake_hub_cache(cache, "org/tiny-bert", {"step1": a, "step2": b})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    f = _write_sentences(tmp_path / "s.jsonl", SENTENCES)
    hashes = {}
    for rev in ("step1", "step2"):
        out = tmp_path / rev
        r = _run(["experts", "--model", "org/tiny-bert", "--revision", rev, "--sentences", str(f), "--quiet",
                  "--out", str(out)])
        assert r.exit_code == 0, r.output
        prov = json.loads((out / "experts.json").read_text())["provenance"]
        assert prov["model"] == "org/tiny-bert" and prov["revision"] == commits[rev]
        hashes[rev] = prov["weight_sha256"]
    assert hashes["step1"] != hashes["step2"]
    r = _run(["experts", "--model", "org/tiny-bert", "--revision", "step999", "--sentences", str(f), "--quiet",
              "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "revision" in r.stderr and "step999" in r.stderr, r.stderr
    assert not (tmp_path / "bad").exists()


def test_rerun_is_served_from_the_generation_cache(tiny_bert, tmp_path):
    """An interrupted or repeated run resumes: finished generations are not redone."""
    args = ["experts", "--model", str(tiny_bert), "--concept", "cat", "--generator", "fake", "--n-pos", "4",
            "--n-neg", "4", "--quiet", "--cache-dir", str(tmp_path / "cache")]
    assert _run(args + ["--out", str(tmp_path / "one")]).exit_code == 0
    def files():  # a generation redone would rewrite its file (new mtime) or add one
        return {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.json")}

    cached = files()
    assert cached
    assert _run(args + ["--out", str(tmp_path / "two")]).exit_code == 0
    assert files() == cached
    assert (tmp_path / "one" / "sentences.jsonl").read_text() == (tmp_path / "two" / "sentences.jsonl").read_text()


@pytest.mark.parametrize("layers", [",", "3-1"])
def test_empty_or_reversed_layers_exit_2(tiny_bert, tmp_path, layers):
    f = _write_sentences(tmp_path / "s.jsonl", SENTENCES)
    r = _run(["experts", "--model", str(tiny_bert), "--sentences", str(f), "--layers", layers, "--quiet",
              "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "layers" in r.stderr, r.stderr


def test_out_that_cannot_be_created_fails_before_any_work(tiny_bert, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    f = _write_sentences(tmp_path / "s.jsonl", SENTENCES)
    for out in (tmp_path / "afile" / "sub", tmp_path):
        monkeypatch.chdir(tmp_path)
        r = _run(["experts", "--model", str(tiny_bert), "--sentences", str(f), "--quiet", "--out", str(out)])
        assert r.exit_code == 2 and "out" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "s.jsonl"]


def test_force_never_replaces_a_folder_that_is_not_a_result(tiny_bert, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("print('mine')")
    f = _write_sentences(tmp_path / "s.jsonl", SENTENCES)
    r = _run(["experts", "--model", str(tiny_bert), "--sentences", str(f), "--quiet", "--force", "--out", str(src)])
    assert r.exit_code == 2 and "not an earlier neuroscribe result" in r.stderr
    assert (src / "main.py").read_text() == "print('mine')"


def test_result_folder_permissions_follow_umask_and_provenance_is_complete(tiny_bert, tmp_path):
    import os
    import stat

    f = _write_sentences(tmp_path / "s.jsonl", SENTENCES)
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert _run(["experts", "--model", str(tiny_bert), "--sentences", str(f), "--quiet", "--out", str(out)]).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    prov = json.loads((out / "experts.json").read_text())["provenance"]
    meta = json.loads((out / "responses" / "meta.json").read_text())
    assert prov["texts_sha256"] == meta["data_sha256"] and prov["data_sha256"] != meta["data_sha256"]
    assert prov["environment"]["device"] == "cpu" and prov["environment"]["torch"]
    assert prov["weight_sha256"] == meta["weight_sha256"]


def test_second_run_does_no_forward_pass(tiny_bert, tmp_path, monkeypatch):
    """Responses are cached by (model, revision, weight hash, site, pooling, layers, data): a re-run
    reads them back and runs no forward pass at all; a different pooling is computed anew."""
    import neuroscribe.workers.activations as activations

    forwards = []
    real_load = activations.load_subject_model

    def counting_load(*args, **kwargs):
        subject = real_load(*args, **kwargs)
        subject.model.register_forward_pre_hook(lambda *a: forwards.append(1))
        return subject

    monkeypatch.setattr(activations, "load_subject_model", counting_load)
    f = _write_sentences(tmp_path / "s.jsonl", SENTENCES)
    base = ["experts", "--model", str(tiny_bert), "--sentences", str(f), "--quiet", "--batch-size", "4",
            "--cache-dir", str(tmp_path / "cache")]
    assert _run(base + ["--out", str(tmp_path / "one")]).exit_code == 0
    first = len(forwards)
    assert first >= 2  # 12 distinct sentences in batches of 4
    r = _run(base + ["--out", str(tmp_path / "two")])
    assert r.exit_code == 0 and len(forwards) == first, "the second run ran the model"
    assert "from the cache" in r.output
    assert (tmp_path / "one" / "ap.csv").read_text() == (tmp_path / "two" / "ap.csv").read_text()
    assert _run(base + ["--pooling", "mean", "--out", str(tmp_path / "three")]).exit_code == 0
    assert len(forwards) > first
