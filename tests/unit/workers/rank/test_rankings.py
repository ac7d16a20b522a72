"""Unit rankings (METHODS.md part C, step 1): planted answers, gaussian incremental == refit, bad inputs."""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.rank import rankings
from neuroscribe.workers.rank.rankings import RANKERS, Ranking, gaussian_select, gaussian_select_naive, rank

BENCH = Path(__file__).resolve().parents[4] / "bench" / "bench_gaussian.py"
PLANTED = 7


def planted(n_classes: int, n: int = 150, n_units: int = 20, seed: int = 0):
    """Noise everywhere except unit 7, whose mean moves 3 sd per class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.standard_normal((n, n_units))
    x[:, PLANTED] += 3.0 * y
    return x, y


def weak(n_classes: int = 3, n: int = 90, n_units: int = 14, seed: int = 1):
    """Many weakly informative, correlated units: the greedy order is not obvious."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    shared = rng.standard_normal((n, 3)) @ rng.standard_normal((3, n_units))
    scale = 1.0 + 0.5 * rng.random((n_classes, n_units))  # per-class spread, so "full" != "shared"
    x = shared + scale[y] * rng.standard_normal((n, n_units)) + 0.6 * rng.standard_normal((n_classes, n_units))[y]
    return x, y


@pytest.mark.parametrize("n_classes", [2, 3])
def test_planted_unit_comes_first(n_classes):
    x, y = planted(n_classes)
    out = rank(x, y, methods=("linear", "gaussian", "probeless", "ap"), max_k=5)
    assert list(out) == ["linear", "gaussian", "probeless", "ap"]
    for name, r in out.items():
        assert r.method == name and r.order[0] == PLANTED, name
        assert r.scores[PLANTED] == r.scores.max()


def test_every_method_orders_every_unit_once_consistently_with_its_scores():
    x, y = planted(3, n_units=25)
    out = rank(x, y, max_k=6, seed=3)
    assert set(out) == set(RANKERS)
    for name, r in out.items():
        assert isinstance(r, Ranking)
        assert r.order.dtype == np.int64 and np.array_equal(np.sort(r.order), np.arange(25)), name
        assert r.scores.shape == (25,) and np.all(np.diff(r.scores[r.order]) <= 0), name
        np.testing.assert_array_equal(r.top(3), r.order[:3])
    assert out["gaussian"].params["selected"] == out["gaussian"].order[:6].tolist()
    assert len(out["gaussian"].params["mi_bits"]) == len(out["gaussian"].params["accuracy"]) == 6


def test_random_is_a_seeded_permutation():
    x, y = planted(2)
    a, b, c = (rank(x, y, methods=["random"], seed=s)["random"] for s in (5, 5, 6))
    assert np.array_equal(np.sort(a.order), np.arange(x.shape[1]))
    assert np.array_equal(a.order, b.order) and not np.array_equal(a.order, c.order)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("covariance", ["full", "shared"])
def test_incremental_gaussian_selects_what_the_refit_selects(covariance):
    x, y = weak()
    fast = gaussian_select(x, y, 8, covariance=covariance)
    slow = gaussian_select_naive(x, y, 8, covariance=covariance)
    assert fast.tolist() == slow.tolist()
    assert np.array_equal(rank(x, y, methods="gaussian", max_k=8, covariance=covariance)["gaussian"].order[:8], fast)


def test_shared_and_full_covariance_differ_on_this_data():
    x, y = weak()
    assert gaussian_select(x, y, 8).tolist() != gaussian_select(x, y, 8, covariance="shared").tolist()


@pytest.mark.parametrize("covariance", ["full", "shared"])
def test_incremental_objective_equals_refit_log_likelihood(covariance):
    x, y = weak()
    d = rankings._Data(x, y)
    state = rankings._Greedy(d, 4, 1e-2, covariance)
    picks = []
    for _ in range(4):
        got = state.objective()
        want = [-np.inf if j in picks else rankings._refit_loglik(d, picks + [j], 1e-2, covariance) for j in range(14)]
        np.testing.assert_allclose(got, want, rtol=1e-10)
        picks.append(int(np.argmax(got)))
        state.add(picks[-1])


def test_unchosen_units_follow_by_their_objective_alone_which_is_the_relevance():
    # the tail (and bottom-k's relevance) is each unit's objective alone, not its gain given the chosen units
    x, y = weak()
    r = rank(x, y, methods=["gaussian"], max_k=3)["gaussian"]
    d = rankings._Data(x, y)
    alone = {j: rankings._refit_loglik(d, [j], 1e-2, "full") for j in range(x.shape[1])}
    assert list(r.order[3:]) == sorted(r.order[3:], key=lambda j: (-alone[j], j))
    np.testing.assert_allclose(r.relevance, [alone[j] for j in range(x.shape[1])], rtol=1e-8)


def test_probeless_and_ap_scores_follow_their_definitions():
    x, y = weak(n_units=6)
    out = rank(x, y, methods=["probeless", "ap"])
    means = np.stack([x[y == c].mean(axis=0) for c in range(3)])
    pairs = abs(means[0] - means[1]) + abs(means[0] - means[2]) + abs(means[1] - means[2])
    np.testing.assert_allclose(out["probeless"].scores, pairs, rtol=1e-12)
    ap = [max(average_precision_score(y == c, s * x[:, j]) for c in range(3) for s in (1, -1)) for j in range(6)]
    np.testing.assert_allclose(out["ap"].scores, ap, atol=1e-9)


def test_linear_has_no_deprecation_warning_and_reports_its_fit():
    x, y = planted(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = rank(x, y, methods=["linear"], l1_ratio=0.9, C=0.5, max_iter=300)["linear"]
    assert r.params["l1_ratio"] == 0.9 and r.params["C"] == 0.5 and r.params["max_iter"] == 300
    assert r.params["converged"] and 1 <= r.params["nonzero"] <= x.shape[1]


def test_labels_of_any_hashable_type():
    x, y = planted(3)
    names = np.array(["neg", "neu", "pos"])[y]
    for labels in (names, list(names), [("tense", int(v)) for v in y]):
        out = rank(x, labels, methods=("gaussian", "probeless"), max_k=3)
        assert out["gaussian"].order[0] == out["probeless"].order[0] == PLANTED
    unsortable = [("a" if v else 1) for v in y == 0]  # str and int do not compare: order of first appearance
    assert rank(x, unsortable, methods=["probeless"])["probeless"].order[0] == PLANTED


def _bad(field, **changes):
    return pytest.param(changes, field, id=f"{field}-{'-'.join(changes)}")


@pytest.mark.parametrize(
    "changes, field",
    [
        _bad("y", y=np.zeros(40, int)),
        _bad("y", y=np.r_[np.zeros(36, int), np.ones(4, int)]),
        _bad("y", y=np.arange(39) % 2),
        _bad("X", X=np.where(np.eye(40, 10, dtype=bool), np.nan, 0.0)),
        _bad("X", X=np.zeros(40)),
        _bad("max_k", max_k=11),
        _bad("max_k", max_k=0),
        _bad("methods", methods=("linear", "pca")),
        _bad("methods", methods=()),
        _bad("alpha", alpha=1.0),
        _bad("l1_ratio", methods=["linear"], l1_ratio=1.5),
        _bad("C", methods=["linear"], C=0.0),
        _bad("ridge", ridge=-1.0),
        _bad("covariance", covariance="diagonal"),
    ],
)
def test_bad_input_names_its_field(changes, field):
    rng = np.random.default_rng(0)
    args = dict(X=rng.standard_normal((40, 10)), y=np.arange(40) % 2, methods=("probeless", "gaussian"), max_k=5)
    args.update(changes)
    with pytest.raises(InvalidInput) as err:
        rank(args.pop("X"), args.pop("y"), **args)
    assert err.value.field == field


def test_small_class_message_names_the_class_and_its_count():
    x = np.random.default_rng(0).standard_normal((23, 4))
    y = ["pos"] * 10 + ["neg"] * 10 + ["odd"] * 3
    with pytest.raises(InvalidInput, match=r"'odd' has 3") as err:
        rank(x, y, methods=["probeless"])
    assert err.value.field == "y"


def test_max_k_is_checked_before_any_method_runs(monkeypatch):
    def linear(d, *, seed, l1_ratio=0.5, C=1.0, max_iter=500, tol=1e-4):
        pytest.fail("linear ran before max_k was checked")

    monkeypatch.setitem(RANKERS, "linear", linear)
    x, y = planted(2, n_units=8)
    with pytest.raises(InvalidInput, match="max_k"):
        rank(x, y, methods=("linear", "gaussian"), max_k=9)


def test_bench_runs_small_and_reports_agreement(capsys):
    spec = importlib.util.spec_from_file_location("bench_gaussian", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--units", "24", "--samples", "60", "--k", "4", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"speed-up naive / incremental: \d+\.\d+x", out)
    assert "same units in the same order: yes" in out
