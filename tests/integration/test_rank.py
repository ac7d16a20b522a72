"""The rank job end to end on tiny models: a planted "cat" unit comes first in every ranking that
should find it, its top-1 probe beats its bottom-1, the interventions run against random-k, the
result folder holds what the README promises, and bad input fails before any model runs."""

import csv
import json

import pytest
from click.testing import CliRunner

from neuroscribe.jobs import RankResult, parse_result
from neuroscribe.service.cli import cli
from tiny_models import make_planted_neox, tiny_model_dir

PLANTED = (0, 5)
OTHER = ["the bus is good .", "my phone works .", "the dog was bad .", "a guitar is great .", "the screen broke ."]


def _write(path, rows, header=("text", "label")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(header)
        w.writerows(rows)
    return path


def _cat_rows():
    rows = [(f"the cat is {'very ' * (i % 3)}good .", "1") for i in range(12)]
    rows += [(OTHER[i % len(OTHER)].replace(".", "really " * (i % 2) + "."), "0") for i in range(12)]
    return rows


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_planted_neox(tmp_path_factory.mktemp("planted") / "m", word="cat", unit=PLANTED[1])


@pytest.fixture(scope="module")
def run(planted, tmp_path_factory):
    d = tmp_path_factory.mktemp("rank")
    data = _write(d / "cats.tsv", _cat_rows())
    out = d / "out"
    r = CliRunner().invoke(cli, ["rank", "--model", str(planted), "--dataset", str(data), "--layer", "0",
                                 "--pooling", "max", "--k", "1", "--k", "5", "--seeds", "3", "--n-random", "2",
                                 "--continuation", "1= cat", "--continuation", "0= bus", "--device", "cpu",
                                 "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return parse_result((out / "rankings.json").read_text()), out


def _probe(res, ranking, selection, k):
    return next(p for p in res.probing if (p.ranking, p.selection, p.k) == (ranking, selection, k))


def test_planted_unit_first_in_every_informed_ranking(run):
    res, _ = run
    assert isinstance(res, RankResult) and res.layer == 0 and res.units == 37 and res.level == "sentence"
    by = {r.method: r for r in res.rankings}
    for m in ("linear", "gaussian", "probeless"):
        assert by[m].order[0] == PLANTED[1], m
        assert sorted(by[m].order) == list(range(37))
    # AP saturates: the planted unit separates perfectly (AP 1), and so may a few others on 24 sentences
    assert by["ap"].scores[PLANTED[1]] == max(by["ap"].scores) == 1.0
    assert sorted(by["random"].order) == list(range(37))


def test_probing_top_beats_bottom_and_the_confound_is_shown(run):
    res, _ = run
    top, bottom = _probe(res, "probeless", "top", 1), _probe(res, "probeless", "bottom", 1)
    assert top.accuracy == 1.0 and bottom.accuracy < 0.9
    assert top.ci_low <= top.accuracy <= top.ci_high and top.n_seeds == 3
    assert {(s.ranking, s.k) for s in res.same_probe} == {("linear", 1), ("linear", 5), ("gaussian", 1),
                                                          ("gaussian", 5)}
    assert any(p.selection == "majority" for p in res.probing)


def test_interventions_against_random_k(run):
    res, _ = run
    assert res.intervention_measure == "logodds"
    modes = {(e.ranking, e.mode, e.k) for e in res.interventions}
    assert modes == {(m, mode, k) for m in ("linear", "gaussian", "probeless", "ap", "random")
                     for mode in ("zero", "mean", "translate") for k in (1, 5)}
    for e in res.interventions:
        assert e.n_examples == 12 and len(e.random_draws) == 2  # the evaluation half; --n-random 2
        assert e.mean_difference == pytest.approx(e.mean_ranked - e.mean_random, abs=1e-9)
        assert e.mean_random == pytest.approx(sum(e.random_draws) / 2, abs=1e-9)
        assert e.p_random in (1 / 3, 2 / 3, 1.0)  # (1 + sets as extreme) / (1 + 2 sets)
        assert e.p_floor == pytest.approx(1 / 3)
    # the random sets are shared: every ranking of a (mode, k) is compared with the very same sets
    for mode in ("zero", "mean", "translate"):
        for k in (1, 5):
            draws = {e.random_draws for e in res.interventions if (e.mode, e.k) == (mode, k)}
            assert len(draws) == 1, (mode, k)
    # zeroing the whole of a tiny layer's top-5 moves the model: some effect is not exactly 0
    assert any(abs(e.mean_ranked) > 0 for e in res.interventions if e.mode == "zero" and e.k == 5)


def test_agreement_and_files(run):
    res, out = run
    assert {(a.a, a.b) for a in res.agreement if a.k == 1} >= {("linear", "probeless")}
    lp = next(a for a in res.agreement if (a.a, a.b, a.k) == ("linear", "probeless", 1))
    assert lp.overlap == 1.0 and lp.chance == pytest.approx(1 / 37)
    for name in ("rankings.csv", "probing.csv", "same_probe.csv", "interventions.csv", "agreement.csv",
                 "bottom.csv", "stability.csv", "split.json", "responses.npy", "summary.txt", "rankings.html",
                 "job.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "rankings.csv").open()))
    assert len(rows) == 5 * 37 and rows[0]["method"] == "linear" and rows[0]["unit"] == str(PLANTED[1])
    assert "texts" not in json.loads((out / "job.json").read_text())["dataset"]
    summary = (out / "summary.txt").read_text()
    assert "probing" in summary and "interventions" in summary
    assert "bottom-k: the k units the ranking considers least relevant" in summary and "(floor 0.333" in summary
    split = json.loads((out / "split.json").read_text())
    assert sorted(split["ranking_rows"] + split["evaluation_rows"]) == list(range(24))
    import numpy as np

    assert np.load(out / "responses.npy").shape == (24, 37)


def test_bottom_k_and_stability_are_reported(run):
    res, _ = run
    by = {(b.ranking, b.k): b for b in res.bottom}
    assert set(by) == {(m, k) for m in ("linear", "gaussian", "probeless", "ap", "random") for k in (1, 5)}
    for (m, k), b in by.items():
        assert len(b.units) == k and b.tied >= b.tied_in_bottom >= 1
        assert PLANTED[1] not in b.units
    assert by["gaussian", 5].by.startswith("gaussian objective")
    lin = next(r for r in res.rankings if r.method == "linear")
    assert lin.params["converged"] is True and lin.params["n_iter"] <= lin.params["max_iter"]
    kinds = {(s.ranking, s.kind) for s in res.stability}
    # 6 ranking examples per class cannot give two halves of 5: only the seed check
    assert kinds == {(m, "seed") for m in ("linear", "gaussian", "probeless", "ap", "random")}
    assert next(s for s in res.stability if (s.ranking, s.kind, s.k) == ("probeless", "seed", 5)).overlap == 1.0


def test_a_rerun_reads_responses_and_rankings_from_the_cache(planted, tmp_path):
    data = _write(tmp_path / "cats.tsv", _cat_rows())
    args = ["rank", "--model", str(planted), "--dataset", str(data), "--layer", "0", "--pooling", "max",
            "--k", "1", "--seeds", "2", "--n-random", "2", "--modes", "zero", "--methods", "probeless,linear",
            "--continuation", "1= cat", "--continuation", "0= bus", "--device", "cpu", "--quiet",
            "--label-name", "1=cat", "--label-name", "0=other"]
    first = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a")], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b"), "--modes", "zero,mean"],
                               catch_exceptions=False)
    assert again.exit_code == 0, again.output
    a = parse_result((tmp_path / "a" / "rankings.json").read_text())
    b = parse_result((tmp_path / "b" / "rankings.json").read_text())
    def reused(folder):
        line = next((x for x in (tmp_path / folder / "summary.txt").read_text().splitlines() if "rank cache" in x), "")
        return line.partition("from the rank cache: ")[2].split(", ")

    # the first run: nothing from an earlier run (linear and probeless share their top-1, scored once)
    assert reused("a") == ["effects of 1 of 4 edited passes"]
    b_reused = reused("b")
    assert "responses" in b_reused and "ranking linear" in b_reused and "ranking probeless" in b_reused
    # zero: its 4 passes were scored by the first run; mean: 4 passes, the shared top-1 scored once
    assert "effects of 5 of 8 edited passes" in b_reused
    assert [r.order for r in a.rankings] == [r.order for r in b.rankings]
    zero = lambda res: [(e.ranking, e.mean_ranked, e.random_draws) for e in res.interventions if e.mode == "zero"]
    assert zero(a) == zero(b)
    assert b.label_names == {"1": "cat", "0": "other"} and "cat (1): 12" in (tmp_path / "b" / "summary.txt").read_text()


def test_token_level_on_bert_without_interventions(tmp_path):
    rows = [(f"the {'cat' if i % 2 else 'dog'} is good .", str(i % 2), 1) for i in range(20)]
    data = _write(tmp_path / "tok.tsv", rows, header=("text", "label", "word"))
    out = tmp_path / "o"
    r = CliRunner().invoke(cli, ["rank", "--model", str(tiny_model_dir("bert")), "--dataset", str(data),
                                 "--word-col", "word", "--k", "3", "--seeds", "2", "--no-interventions",
                                 "--device", "cpu", "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = parse_result((out / "rankings.json").read_text())
    assert res.level == "token" and res.interventions == () and res.layer == 1
    # the target word alone decides the label: some ranking's top-3 probe is perfect
    assert max(_probe(res, m, "top", 3).accuracy for m in ("linear", "probeless", "ap")) == 1.0


# --------------------------------------------------------------------------- bad input


@pytest.fixture()
def no_model(monkeypatch):
    import neuroscribe.workers.activations as acts

    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(acts, "load_subject_model", boom)


GOOD = [("a cat", "1")] * 6 + [("a dog", "0")] * 6


@pytest.mark.parametrize("rows,extra,expected", [
    ([("a cat", "1")] * 6 + [("a dog", "1")] * 6, [], "--dataset: "),
    ([("a cat", "1")] * 6 + [("a dog", "1")] * 6, ["--label-col", "label"], "--label-col: 'label' is not accepted: "),
    ([("a cat", "1")] * 6 + [("a dog", "0")] * 3, [], "--dataset: "),
    (GOOD, ["--k", "38"], "--k: 38 is not accepted: k = 38 is larger than the 37 units"),
    (GOOD, ["--k", "0"], "--k: 0 is not accepted: every k must be >= 1"),
    (GOOD, ["--layer", "7"], "--layer: 7 is not accepted: "),
    (GOOD, ["--methods", "linear,magic"], "--methods: 'linear,magic' is not accepted: unknown ['magic']"),
    (GOOD, ["--k", "5"], "--continuation: interventions on a decoder need"),
    (GOOD, ["--continuation", "1= cat"], "--continuation: '1= cat' is not accepted: must name every label"),
    (GOOD, ["--continuation", "1"], "--continuation: '1' is not LABEL=TEXT"),
    (GOOD, ["--n-random", "0"], "--n-random: 0 is not accepted: Input should be greater than or equal to 1"),
    (GOOD, ["--beta", "0"], "--beta: 0 is not accepted: "),
    (GOOD, ["--max-examples", "1"], "--max-examples: 1 is not accepted: "),
    (GOOD, ["--modes", "zero,magic"], "--modes: 'zero,magic' is not accepted: "),
    (GOOD, ["--seeds", "1"], "--seeds: 1 is not accepted: "),
    (GOOD, ["--rank-fraction", "1.5"], "--rank-fraction: 1.5 is not accepted: "),
    (GOOD, ["--batch-size", "0"], "--batch-size: 0 is not accepted: "),
    (GOOD, ["--text-col", "sentence"], "--text-col: "),
    (GOOD, ["--word-col", "w"], "--word-col: "),
])
def test_bad_input_before_any_model(planted, tmp_path, no_model, rows, extra, expected):
    """One line, exit 2, naming the flag as typed and the rejected value (not the job's field)."""
    data = _write(tmp_path / "d.tsv", rows)
    r = CliRunner().invoke(cli, ["rank", "--model", str(planted), "--dataset", str(data), "--device", "cpu",
                                 "--out", str(tmp_path / "o"), *extra], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("neuroscribe: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"neuroscribe: error: {expected}"), r.stderr
    assert not (tmp_path / "o").exists()


def test_word_index_outside_the_sentence(tmp_path, no_model):
    rows = [("a cat", "1", 0)] * 5 + [("a dog", "0", 2)] * 5
    data = _write(tmp_path / "w.tsv", rows, header=("text", "label", "word"))
    r = CliRunner().invoke(cli, ["rank", "--dataset", str(data), "--word-col", "word", "--out", str(tmp_path / "o")],
                           catch_exceptions=False)
    assert r.exit_code == 2 and "error: --word-col: 'word' is not accepted: " in r.output, r.output
    assert "outside sentence" in r.output, r.output


def test_empirical_p_over_random_sets():
    import numpy as np

    from neuroscribe.workers.rank.intervention_stage import p_over_sets

    draws = np.array([-1.0, 0.0, 1.0, 2.0])  # centre 0.5
    assert p_over_sets(10.0, draws) == 1 / 5  # beyond every set: the floor
    assert p_over_sets(0.5, draws) == 1.0  # at the centre: every set is as far
    assert p_over_sets(2.0, draws) == 3 / 5  # -1 and 2 are as far from 0.5 as 2
    assert p_over_sets(float("nan"), draws) is None


def test_rankings_never_see_the_examples_they_are_judged_on(run):
    from neuroscribe.jobs import RankJob
    from neuroscribe.jobs.rank import AttributeDataSpec
    from neuroscribe.workers.rank.stages import split_rows

    res, _ = run
    assert (res.n_ranking_examples, res.n_evaluation_examples) == (12, 12) and not res.warnings
    texts = tuple(f"t {i}" for i in range(30))
    job = RankJob(dataset=AttributeDataSpec(name="d", texts=texts, labels=("a",) * 18 + ("b",) * 12))
    r, e, warning = split_rows(job)
    assert warning is None and not set(r) & set(e) and sorted([*r, *e]) == list(range(30))
    assert (sum(i < 18 for i in r), sum(i >= 18 for i in r)) == (9, 6)  # half of each class
    small = RankJob(dataset=AttributeDataSpec(name="d", texts=texts[:16], labels=("a",) * 8 + ("b",) * 8))
    r, e, warning = split_rows(small)  # 4 per side would be too few: everything, with a warning
    assert list(r) == list(e) == list(range(16)) and "too few" in warning
    assert split_rows(job.model_copy(update={"rank_fraction": None}))[2].startswith("rankings, probes")


def test_gaussian_same_probe_separates_blobs_even_with_few_examples():
    import numpy as np

    from neuroscribe.workers.rank.same_probe import gaussian_probe

    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, (4, 6)), rng.normal(5, 1, (4, 6))]  # fewer examples per class than units
    y = np.array(["a"] * 4 + ["b"] * 4)
    test = np.r_[rng.normal(0, 1, (3, 6)), rng.normal(5, 1, (3, 6))]
    assert list(gaussian_probe(x, y, test, ridge=0.01)) == ["a"] * 3 + ["b"] * 3


def test_token_level_interventions_use_the_masked_lm_head(tmp_path):
    rows = [(f"the {'cat' if i % 2 else 'dog'} is good .", str(i % 2), 1) for i in range(20)]
    data = _write(tmp_path / "tok.tsv", rows, header=("text", "label", "word"))
    out = tmp_path / "o"
    r = CliRunner().invoke(cli, ["rank", "--model", str(tiny_model_dir("bert")), "--dataset", str(data),
                                 "--word-col", "word", "--k", "3", "--seeds", "2", "--methods", "probeless,random",
                                 "--modes", "zero", "--n-random", "2", "--device", "cpu", "--out", str(out),
                                 "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = parse_result((out / "rankings.json").read_text())
    assert res.intervention_measure == "logprob"  # of the masked target word
    assert {(e.ranking, e.mode, e.k) for e in res.interventions} == {("probeless", "zero", 3), ("random", "zero", 3)}
    assert all(e.n_examples == 10 for e in res.interventions)  # the evaluation half
