"""Probing evaluation of unit rankings (METHODS.md part C): workers.probing on constructed data."""

import csv

import numpy as np
import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.rank.agreement import agreement
from neuroscribe.workers.rank.probing import PROBES, probe_curve, random_order, stratified_split
from neuroscribe.workers.rank.probing_plots import plot_accuracy_vs_k, plot_agreement
from neuroscribe.workers.stats import t_interval

N, U = 160, 30


@pytest.fixture(scope="module")
def data():
    """Units 0-4 carry the label (strongly); units 5.. are pure noise."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], N // 2)
    X = rng.normal(size=(N, U))
    X[:, :5] += 3.0 * (2 * y[:, None] - 1)
    return X, y


GOOD = np.arange(U)  # 0-4 first
BAD = np.arange(U)[::-1]  # 0-4 last


@pytest.fixture(scope="module")
def curve(data):
    X, y = data

    def centroid(X_tr, y_tr, X_te):  # a stand-in for the ranking's own probe
        assert X_tr.shape[1] == X_te.shape[1]
        classes = np.unique(y_tr)
        mu = np.stack([X_tr[y_tr == c].mean(0) for c in classes])
        return classes[np.argmin(((X_te[:, None, :] - mu[None]) ** 2).sum(-1), axis=1)]

    def always_zero(X_tr, y_tr, X_te):
        return np.zeros(len(X_te), dtype=int)

    return probe_curve(X, y, {"good": GOOD, "bad": BAD}, [5, 2, 5, 10], seeds=4, seed=3,
                       same_probe={"good": centroid, "bad": always_zero})


def test_top_k_of_informative_ranking_near_one_bottom_k_near_chance(curve):
    assert curve.ks == (2, 5, 10)
    for k in curve.ks:
        assert curve.summary("good", "top", k).mean >= 0.95
    assert abs(curve.summary("good", "bottom", 5).mean - 0.5) < 0.2
    assert abs(curve.summary("bad", "top", 5).mean - 0.5) < 0.2  # the reversed ranking: top is noise
    assert curve.summary("bad", "bottom", 5).mean >= 0.95
    assert curve.majority_summary().mean == pytest.approx(0.5)  # balanced, stratified


def test_ci_contains_mean_and_is_student_t(curve):
    for row in curve.to_rows():
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
        assert row["n_seeds"] == 4
    v = curve.accuracy[("good", "bottom", 5)]
    mean, lo, hi = t_interval(v)
    from scipy import stats

    ref = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert (lo, hi) == pytest.approx(ref)
    assert mean == pytest.approx(v.mean())
    assert np.isnan(t_interval([0.7])[1])


def test_random_k_reproducible_by_seed_differs_across_seeds(data, curve):
    X, y = data
    again = probe_curve(X, y, {"good": GOOD}, [2, 5, 10], seeds=4, seed=3)
    for a, b in zip(curve.random_orders, again.random_orders):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(curve.accuracy[("good", "random", 5)], again.accuracy[("good", "random", 5)])
    firsts = {tuple(o[:5]) for o in curve.random_orders}
    assert len(firsts) == 4  # each seed its own random-k
    np.testing.assert_array_equal(random_order(U, 7), random_order(U, 7))
    # random-k does not depend on the ranking (paired across rankings)
    np.testing.assert_array_equal(curve.accuracy[("good", "random", 5)], curve.accuracy[("bad", "random", 5)])


def test_paired_splits(data, curve):
    _, y = data
    assert curve.random_states == (3, 4, 5, 6)
    for rs, (tr, te) in zip(curve.random_states, curve.splits):
        tr2, te2 = stratified_split(y, 0.3, rs)
        np.testing.assert_array_equal(tr, tr2)
        np.testing.assert_array_equal(te, te2)
        assert not set(tr) & set(te) and len(tr) + len(te) == N
        assert np.mean(y[te]) == pytest.approx(0.5)  # stratified
    assert not np.array_equal(curve.splits[0][1], curve.splits[1][1])
    # the same unit set on the same split gives the same accuracy, whichever ranking/selection
    full = probe_curve(*data, {"good": GOOD, "bad": BAD}, [U], seeds=2)
    for sel in ("top", "bottom", "random"):
        np.testing.assert_array_equal(full.accuracy[("good", sel, U)], full.accuracy[("bad", "top", U)])


def test_same_probe_column_present_and_distinct(curve, data):
    rows = curve.to_rows()
    sels = {(r["ranking"], r["selection"]) for r in rows}
    assert ("good", "top_same_probe") in sels and ("bad", "top_same_probe") in sels
    assert {r["probe"] for r in rows if r["selection"] == "top_same_probe"} == {"same"}
    assert {r["probe"] for r in rows if r["selection"] == "top"} == {"logreg"}
    # the own-probe column is the callable's accuracy, not the independent probe's
    _, y = data
    expected = [np.mean(y[te] == 0) for _, te in curve.splits]
    np.testing.assert_allclose(curve.accuracy[("bad", "top_same_probe", 5)], expected)
    side = {(r["ranking"], r["k"]): r for r in curve.side_by_side()}
    assert set(side) == {(n, k) for n in ("good", "bad") for k in (2, 5, 10)}
    assert side[("good", 5)]["same_probe"] >= 0.9
    r = side[("bad", 10)]
    assert r["same_probe"] == pytest.approx(0.5) and r["gap"] == pytest.approx(r["same_probe"] - r["independent"])
    assert rows[-1]["selection"] == "majority" and rows[-1]["k"] == 0
    plain = probe_curve(*data, {"good": GOOD}, [5], seeds=2)
    assert "top_same_probe" not in {r["selection"] for r in plain.to_rows()}


@pytest.mark.parametrize("probe", sorted(set(PROBES) - {"logreg"}))
def test_other_probes(data, probe):
    res = probe_curve(*data, {"good": GOOD}, [5], probe=probe, seeds=2)
    assert res.summary("good", "top", 5).mean >= 0.9
    assert res.to_rows()[0]["probe"] == probe


def test_agreement():
    a = np.arange(20)
    b = np.r_[np.arange(10, 20), np.arange(10)]  # top-10 disjoint from a's
    c = np.r_[[0, 1, 2, 3, 4], np.arange(10, 15), [5, 6, 7, 8, 9], np.arange(15, 20)]
    res = agreement({"a": a, "b": b, "c": c}, [10, 5])
    assert res.ks == (5, 10) and res.names == ("a", "b", "c")
    for k in res.ks:
        np.testing.assert_array_equal(np.diag(res.overlap[k]), 1.0)
        np.testing.assert_array_equal(np.diag(res.jaccard[k]), 1.0)
        assert res.overlap[k][0, 1] == 0 and res.jaccard[k][0, 1] == 0
        np.testing.assert_array_equal(res.overlap[k], res.overlap[k].T)
    assert res.overlap[10][0, 2] == pytest.approx(0.5) and res.jaccard[10][0, 2] == pytest.approx(5 / 15)
    assert res.overlap[5][0, 2] == 1.0
    assert res.chance == {5: 0.25, 10: 0.5}
    row = next(r for r in res.rows if r["k"] == 10 and (r["a"], r["b"]) == ("a", "c"))
    assert row["intersection"] == 5 and row["overlap"] == 0.5 and row["chance_overlap"] == 0.5
    assert len(res.rows) == 2 * 3
    assert agreement({"a": a}, [3]).overlap[3].tolist() == [[1.0]]


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_plot_accuracy_writes_png_and_csv(curve, tmp_path):
    png, out = plot_accuracy_vs_k(curve, tmp_path / "sub" / "acc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out == tmp_path / "sub" / "acc.csv"
    rows = _read(out)
    got = {(r["ranking"], r["selection"], int(r["k"])): r for r in rows}
    for name in ("good", "bad"):
        for k in curve.ks:
            s = curve.summary(name, "top", k)
            r = got[(name, "top", k)]
            assert float(r["accuracy"]) == s.mean and float(r["ci_low"]) == s.ci_low
            assert float(r["ci_high"]) == s.ci_high and int(r["n_seeds"]) == 4
            assert float(got[(name, "top_same_probe", k)]["accuracy"]) == curve.summary(name, "top_same_probe", k).mean
    for k in curve.ks:
        assert float(got[("", "random", k)]["accuracy"]) == curve.summary("good", "random", k).mean
    assert float(got[("", "majority", 0)]["accuracy"]) == curve.majority_summary().mean
    assert not any(r["selection"] == "bottom" for r in rows)  # only what is drawn
    _, out2 = plot_accuracy_vs_k(curve, tmp_path / "acc2.png", same_probe=False)
    assert not any(r["selection"] == "top_same_probe" for r in _read(out2))


def test_plot_agreement_writes_png_and_csv(tmp_path):
    res = agreement({"a": np.arange(8), "b": np.arange(8)[::-1], "c": np.r_[1, 0, np.arange(2, 8)]}, [2])
    png, out = plot_agreement(res.overlap[2], res.names, tmp_path / "agree.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with open(out, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["", "a", "b", "c"]
    assert [r[0] for r in table[1:]] == ["a", "b", "c"]
    np.testing.assert_array_equal(np.array([[float(v) for v in r[1:]] for r in table[1:]]), res.overlap[2])
    with pytest.raises(InvalidInput) as e:
        plot_agreement(np.eye(2), ["a", "b", "c"], tmp_path / "x.png")
    assert e.value.field == "matrix"


def _field(fn, *a, **kw):
    with pytest.raises(InvalidInput) as e:
        fn(*a, **kw)
    return e.value


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"ks": [U + 1]}, "ks", "larger than the number of units"),
        ({"ks": [0, 3]}, "ks", "at least 1"),
        ({"ks": []}, "ks", "at least one"),
        ({"ks": [2.5]}, "ks", "whole"),
        ({"rankings": {"dup": np.r_[0, np.arange(U - 1)]}}, "rankings:dup", "permutation"),
        ({"rankings": {"short": np.arange(U - 1)}}, "rankings:short", "permutation"),
        ({"rankings": {"f": np.arange(U, dtype=float)}}, "rankings:f", "integer"),
        ({"rankings": {}}, "rankings", "at least one"),
        ({"y": np.zeros(N, dtype=int)}, "y", "only one class"),
        ({"y": np.r_[np.zeros(N - 3, dtype=int), [1, 1, 1]]}, "y", "class 1 has 3"),
        ({"y": np.r_[["pos"] * (N - 4), ["neg"] * 4]}, "y", "'neg' has 4"),
        ({"y": np.repeat([0, 1], N // 2)[:-1]}, "y", "one label per row"),
        ({"probe": "forest"}, "probe", "unknown probe"),
        ({"seeds": 0}, "seeds", "at least 1"),
        ({"test_size": 1.5}, "test_size", "fraction"),
        ({"same_probe": {"nope": lambda a, b, c: b}}, "same_probe", "not one of the rankings"),
    ],
)
def test_bad_inputs_name_the_field(data, change, field, words):
    X, y = data
    kw = {"X": X, "y": y, "rankings": {"good": GOOD}, "ks": [5], "seeds": 2} | change
    err = _field(probe_curve, kw.pop("X"), kw.pop("y"), kw.pop("rankings"), kw.pop("ks"), **kw)
    assert err.field == field
    assert words in err.message


def test_bad_same_probe_output_and_agreement_inputs(data):
    err = _field(probe_curve, *data, {"good": GOOD}, [5], seeds=1, same_probe={"good": lambda a, b, c: b})
    assert err.field == "same_probe:good"
    assert _field(agreement, {"a": np.arange(5), "b": np.arange(6)}, [2]).field == "rankings:b"
    assert _field(agreement, {"a": np.arange(5)}, [6]).field == "ks"
    assert _field(agreement, {"a": np.arange(5)}, [0]).field == "ks"
