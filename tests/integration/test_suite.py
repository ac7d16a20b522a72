"""The analysis suite end to end through `neuroscribe experts`: stability, sweeps (revisions, random
init, the responses cache), human alignment and the causal check, on tiny models."""

import itertools
import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.cli import cli
from neuroscribe.service.experts.cli import build_experts_job, sweep_from_options
from tiny_models import make_fake_hub_cache, make_planted_neox, make_tiny_model

PLANTED = (0, 5)  # (layer, unit) of the planted "cat" detector


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _result(out) -> ExpertsResult:
    return ExpertsResult.model_validate_json((out / "experts.json").read_text())


def _sentences(concepts=(("cat", "dog"), ("bus", "guitar"))):
    """Per (concept, other): 30 distinct positives with the concept word, 30 negatives with the other."""
    subj = ["my", "the", "your", "this", "that"]
    tail = ["is very good", "was so bad", "works with a phone", "broke after a day", "is great", "was poor"]
    rows = []
    for concept, other in concepts:
        pos = [f"{a} {concept} {b}" for a, b in itertools.product(subj, tail)]
        neg = [f"{a} {other} {b}" for a, b in itertools.product(subj, tail)]
        rows += [{"text": t, "concept": concept, "label": 1} for t in pos]
        rows += [{"text": t, "concept": concept, "label": 0} for t in neg]
    return rows


def _planted_neox(path, seed=0):
    """Layer-0 unit 5 fires (~40) on the token "cat" and stays ~0 elsewhere."""
    return make_planted_neox(path, word="cat", unit=PLANTED[1], seed=seed)


@pytest.fixture(scope="module")
def sentences_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("s") / "sentences.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in _sentences()))
    return f


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A fake HF cache: org/tiny at step0 (seed 0), step1000 (planted) and step143000 (planted, the
    same files as step1000: a mis-served checkpoint), and step5000 (seed 2)."""
    root = tmp_path_factory.mktemp("hub")
    a = make_tiny_model("gpt_neox", root / "a", seed=0)
    b = _planted_neox(root / "b", seed=1)
    c = make_tiny_model("gpt_neox", root / "c", seed=2)
    cache = root / "cache"
    make_fake_hub_cache(cache, "org/tiny", {"step0": a, "step1000": b, "step143000": b, "step5000": c})
    return cache


@pytest.fixture
def offline_hub(hub, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub


@pytest.fixture
def forwards(monkeypatch):
    """Counts forward passes of every GPT-NeoX base model, however and wherever it was loaded."""
    from transformers.models.gpt_neox import modeling_gpt_neox as m

    calls = []
    real = m.GPTNeoXModel.forward

    def counting(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(m.GPTNeoXModel, "forward", counting)
    return calls


def _sweep_args(sentences_file, tmp_path, out, revisions=("step0", "step1000", "step143000"), extra=()):
    args = ["experts", "--model", "org/tiny", "--sentences", str(sentences_file), "--tau", "1.0", "--quiet",
            "--batch-size", "16", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / out)]
    for r in revisions:
        args += ["--revision", r]
    return args + list(extra)


# --------------------------------------------------------------------------- planted expert, stability


def test_planted_expert_recovered_with_ap_1_and_stable_across_folds(offline_hub, sentences_file, tmp_path):
    r = _run(_sweep_args(sentences_file, tmp_path, "out", revisions=("step1000",)))
    assert r.exit_code == 0, r.output
    res = _result(tmp_path / "out")
    cat = next(c for c in res.concepts if c.concept == "cat")
    assert (cat.top[0].layer, cat.top[0].unit, cat.top[0].ap) == (*PLANTED, 1.0)
    assert PLANTED in {(u.layer, u.unit) for u in cat.experts}
    st = next(c for c in res.stability.concepts if c.concept == "cat")
    assert st.folds.k == 3 and st.folds.tau == 1.0
    assert st.folds.jaccard == 1.0 and min(st.folds.n_experts) >= 1  # the same experts on every fold
    # the sweep grid: default sizes 1/4, 1/2, 3/4 of the 30 positives and 30 negatives
    assert res.stability.n_pos == res.stability.n_neg == (8, 15, 22)
    best = st.best["0.95"]
    assert best is not None and best.jaccard == 1.0 and best.n_experts_mean >= 1
    bus = next(c for c in res.concepts if c.concept == "bus")
    assert PLANTED not in {(u.layer, u.unit) for u in bus.experts}
    # the report shows the stability section with its numbers beside the figure
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Stability" in page and (tmp_path / "out" / "report" / "stability_curves.csv").is_file()


def test_stability_can_be_switched_off_and_grid_sizes_are_validated(sentences_file, tmp_path):
    job = build_experts_job(models=("minilm",), revisions=(), concepts=(), sentences_file=sentences_file,
                            generator="fake", temperature=None, max_new_tokens=None, gen_batch_size=4,
                            trust_remote_code=False, site="mlp_post", pooling="max", layers=(), batch_size=8,
                            max_length=32, device="cpu", stability=False)
    assert job.stability is None
    r = _run(["experts", "--sentences", str(sentences_file), "--stability-tau", "1.5", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "stability" in r.output and "tau" in r.output
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- sweeps


def test_sweep_second_run_does_no_forward_pass_and_added_revision_runs_only_itself(
        offline_hub, sentences_file, tmp_path, forwards):
    first = _run(_sweep_args(sentences_file, tmp_path, "one", extra=["--random-init"]))
    assert first.exit_code == 0, first.output
    per_model = len(forwards) / 4  # 3 revisions + the random init, same sentences and batches
    assert per_model >= 1 and len(forwards) == 4 * per_model
    res = _result(tmp_path / "one")
    labels = [e.label for e in res.sweep.entries]
    assert labels == ["org/tiny@step0", "org/tiny@step1000", "org/tiny@step143000", "org/tiny (random init)"]
    assert [e.step for e in res.sweep.entries] == [0, 1000, 143000, None]
    assert not any(e.from_cache for e in res.sweep.entries)

    forwards.clear()
    second = _run(_sweep_args(sentences_file, tmp_path, "two", extra=["--random-init"]))
    assert second.exit_code == 0, second.output
    assert forwards == [], "the second run of the same sweep ran the model"
    again = _result(tmp_path / "two")
    assert all(e.from_cache for e in again.sweep.entries)
    assert [e.counts_per_layer for e in again.sweep.entries] == [e.counts_per_layer for e in res.sweep.entries]

    third = _run(_sweep_args(sentences_file, tmp_path, "three",
                             revisions=("step0", "step1000", "step5000", "step143000"), extra=["--random-init"]))
    assert third.exit_code == 0, third.output
    assert len(forwards) == per_model, "only the added revision should run"
    fresh = [e.label for e in _result(tmp_path / "three").sweep.entries if not e.from_cache]
    assert fresh == ["org/tiny@step5000"]


def test_sweep_counts_and_hashes_per_revision_and_flags_identical_weights(offline_hub, sentences_file, tmp_path):
    r = _run(_sweep_args(sentences_file, tmp_path, "out", extra=["--random-init"]))
    assert r.exit_code == 0, r.output
    assert "identical weights" in r.output
    res = _result(tmp_path / "out")
    by = {e.label: e for e in res.sweep.entries}
    planted, twin, step0, rnd = (by["org/tiny@step1000"], by["org/tiny@step143000"], by["org/tiny@step0"],
                                 by["org/tiny (random init)"])
    assert planted.weight_sha256 == twin.weight_sha256 != step0.weight_sha256 != rnd.weight_sha256
    assert res.sweep.identical_weights == (("org/tiny@step1000", "org/tiny@step143000"),)
    assert any("identical weights" in w and "step1000" in w and "step143000" in w for w in res.warnings)
    # the planted unit is an expert of "cat" at layer 0 in both planted checkpoints, not in step0
    assert planted.counts_per_layer["cat"][0] >= 1 and planted.counts_per_layer == twin.counts_per_layer
    # the main model (the last revision) has the same counts in the sweep as in its own result
    main = {c.concept: c.counts_per_layer for c in res.concepts}
    assert twin.counts_per_layer == main
    assert {e.n_params for e in res.sweep.entries} == {planted.n_params} and planted.n_layers == 2
    assert rnd.random_init and rnd.revision is None and rnd.step is None
    page = (tmp_path / "out" / "report.html").read_text()
    assert "identical weights" in page.lower()


def test_missing_revision_is_an_error_before_any_work(offline_hub, tmp_path, forwards):
    gen_cache = tmp_path / "cache"
    r = _run(["experts", "--model", "org/tiny", "--revision", "step0", "--revision", "step999", "--revision",
              "step1000", "--concept", "cat", "--generator", "fake", "--cache-dir", str(gen_cache), "--quiet",
              "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "step999" in r.output and "revision" in r.output
    assert forwards == [] and not (tmp_path / "out").exists()
    assert not (gen_cache / "generations").exists() or not any((gen_cache / "generations").rglob("*.json*"))


def test_sweep_options_make_every_model_at_every_revision():
    name, rev, others = sweep_from_options(("org/a", "org/b"), ("s1", "s2"), random_init=True)
    assert (name, rev) == ("org/b", "s2")
    assert [(t.name, t.revision, t.random_init) for t in others] == [
        ("org/a", "s1", False), ("org/a", "s2", False), ("org/b", "s1", False), ("org/a", "s1", True),
        ("org/b", "s1", True)]
    assert sweep_from_options((), (), False) == ("minilm", None, ())
    # packaged aliases and local folders take no revision: they appear once
    name, rev, others = sweep_from_options(("minilm", "org/a"), ("s1", "s2"), random_init=True)
    assert (name, rev) == ("org/a", "s2")
    assert [(t.name, t.revision, t.random_init) for t in others] == [
        ("minilm", None, False), ("org/a", "s1", False), ("minilm", None, True), ("org/a", "s1", True)]
    with pytest.raises(Exception, match="revision"):
        sweep_from_options(("minilm",), ("s1",), False)


# --------------------------------------------------------------------------- human alignment


def test_alignment_on_own_word_pairs_matches_spearman_and_lists_skipped(offline_hub, sentences_file, tmp_path):
    rows = _sentences((("cat", "dog"), ("dog", "bus"), ("bus", "guitar"), ("guitar", "cat"), ("phone", "case")))
    f = tmp_path / "s.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("word1 word2 score\ncat dog 45\ncat bus 10\ndog bus 12\nbus guitar 8\ncat guitar 5\n"
                     "phone screen 30\n")
    r = _run(["experts", "--model", "org/tiny", "--revision", "step1000", "--sentences", str(f), "--quiet",
              "--word-pairs", str(pairs), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    al = _result(tmp_path / "out").alignment
    assert al.dataset == "pairs.txt" and al.n_pairs == 5
    assert [m.method for m in al.methods] == ["experts_ap_cosine", "experts_ap_above_chance", "experts_jaccard",
                                              "embedding_word", "embedding_sentences"]
    human = [p.human for p in al.pairs]
    for m in al.methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant similarity has no rho: None in the report
            rho = spearmanr(human, [p.similarity[m.method] for p in al.pairs]).statistic
        assert m.rho == pytest.approx(rho) or (m.rho is None and np.isnan(rho))
    # "phone" is in the file, but only paired with "screen", which is not a concept: listed, not dropped
    assert [(s.concept, "not in any pair" in s.reason) for s in al.skipped] == [("phone", True)]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "pairs.txt" in page and "phone" in page


def test_too_few_pairs_is_an_error_before_any_work_saying_how_many(tmp_path):
    r = _run(["experts", "--concept", "cat", "--concept", "dog", "--concept", "bus", "--align",
              "--generator", "fake", "--quiet", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "concepts" in r.output and "pairs found" in r.output
    n = int(r.output.split("only ")[1].split()[0])
    from neuroscribe.workers.experts.alignment import load_word_pairs, pairs_among

    assert n == len(pairs_among(load_word_pairs(), ["cat", "dog", "bus"])[0]) < 3
    assert not (tmp_path / "out").exists()


def test_men_concepts_adds_concepts_with_many_pairs():
    job = build_experts_job(models=("minilm",), revisions=(), concepts=("cat",), sentences_file=None,
                            generator="fake", temperature=None, max_new_tokens=None, gen_batch_size=4,
                            trust_remote_code=False, site="mlp_post", pooling="max", layers=(), batch_size=8,
                            max_length=32, device="cpu", men_concepts=6)
    from neuroscribe.workers.experts.alignment import load_word_pairs, men_concepts, pairs_among

    names = [c.name for c in job.concepts]
    assert names[0] == "cat" and names[1:] == men_concepts(load_word_pairs(), 6)
    assert job.alignment is not None and job.alignment.pairs is None  # the packaged MEN
    assert len(pairs_among(load_word_pairs(), names)[0]) >= 5


# --------------------------------------------------------------------------- causal check


def test_causal_check_on_a_decoder_and_skipped_for_bert(offline_hub, sentences_file, tmp_path):
    r = _run(["experts", "--model", "org/tiny", "--revision", "step1000", "--sentences", str(sentences_file),
              "--tau", "1.0", "--causal", "--causal-random", "3", "--quiet", "--cache-dir", str(tmp_path / "c"),
              "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    res = _result(tmp_path / "out")
    causal = res.causal
    assert causal.skipped is None and causal.site == "mlp_post" and len(causal.prompts) >= 2
    cat = next(c for c in causal.concepts if c.concept == "cat")
    n_experts = len(next(c for c in res.concepts if c.concept == "cat").experts)
    assert cat.skipped is None and cat.n_units == n_experts and cat.n_random == 3 and cat.words == ("cat",)
    lo, hi = cat.ci_difference
    assert lo <= cat.mean_difference <= hi
    assert cat.mean_difference == pytest.approx(cat.mean_experts - cat.mean_random)

    bert = make_tiny_model("bert", tmp_path / "bert")
    r = _run(["experts", "--model", str(bert), "--sentences", str(sentences_file), "--causal", "--quiet",
              "--no-stability", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    res = _result(tmp_path / "b")
    assert "decoder" in res.causal.skipped and res.stability is None


def test_stability_grid_larger_than_the_sentences_asked_for_is_rejected():
    from pydantic import ValidationError

    from neuroscribe.jobs.experts_suite import StabilitySpec
    from neuroscribe.jobs import ConceptSpec, ExpertsJob

    with pytest.raises(ValidationError, match="stability.n_pos.*25.*20"):
        ExpertsJob(concepts=(ConceptSpec(name="cat"),), n_pos=20, stability=StabilitySpec(n_pos=(5, 25)))
    with pytest.raises(ValidationError, match="stability.folds"):
        ExpertsJob(concepts=(ConceptSpec(name="cat"),), n_pos=2, stability=StabilitySpec(folds=3))
    assert ExpertsJob(concepts=(ConceptSpec(name="cat"),), n_pos=2, stability=None).stability is None


def test_sweep_layers_out_of_range_for_another_model_is_an_error_before_work(offline_hub, tmp_path):
    from transformers import AutoConfig, AutoModel

    bert = make_tiny_model("bert", tmp_path / "bert")
    config = AutoConfig.from_pretrained(bert)
    config.num_hidden_layers = 1
    AutoModel.from_config(config).save_pretrained(bert)  # a one-layer BERT; org/tiny has 2 layers
    r = _run(["experts", "--model", str(bert), "--model", "org/tiny", "--revision", "step0", "--layers", "1",
              "--concept", "cat", "--generator", "fake", "--quiet", "--cache-dir", str(tmp_path / "c"),
              "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    assert "--layers: '1' is not accepted" in r.output and "0..0" in r.output and "bert" in r.output
    assert not (tmp_path / "out").exists()
