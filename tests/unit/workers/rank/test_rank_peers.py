"""Agreement with the peers (issue 16): probeless and linear rankings against implementations written
here from the papers' definitions (not imported from the project), on constructed data; and the one
definition of bottom-k."""

import itertools

import numpy as np
import pytest

from neuroscribe.workers.rank.rankings import rank
from neuroscribe.workers.rank.selections import bottom_k, bottom_sets, stability, top_overlap


def constructed(n=240, units=30, classes=2, seed=0):
    """Units 0..4 carry the class with graded strength (unit 0 most), the rest are noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, units))
    for u, strength in enumerate((1.6, 1.2, 0.9, 0.6, 0.4)):
        x[:, u] += strength * (y - (classes - 1) / 2)
    return x * rng.uniform(0.5, 3.0, units), y  # units on different scales


def test_probeless_equals_the_authors_sum_of_pairwise_mean_differences():
    x, y = constructed(classes=3)
    means = [x[y == c].mean(axis=0) for c in range(3)]  # the authors' get_values_avg, per label
    diff = np.zeros_like(means[0])
    for a, b in itertools.combinations(means, 2):  # their get_diff_sum
        diff += np.abs(a - b)
    got = rank(x, y, methods=["probeless"])["probeless"]
    np.testing.assert_allclose(got.scores, diff, rtol=1e-12)
    assert list(got.order) == list(np.argsort(-diff, kind="stable"))  # their argsort(diff)[::-1], no ties here


def _elastic_net_logreg(z, y, C, l1_ratio, iters=30000):
    """min_w,b  sum_i log(1 + exp(-s_i (z_i w + b))) + (1/C) * ((1 - r)/2 ||w||^2 + r ||w||_1), s = +-1:
    sklearn's documented elastic-net objective (Dalvi et al.'s probe), by FISTA with a fixed step."""
    s = np.where(y == y.max(), 1.0, -1.0)
    n, d = z.shape
    A = np.c_[z, np.ones(n)]
    L = 0.25 * np.linalg.norm(A, 2) ** 2 + (1 - l1_ratio) / C
    theta = np.zeros(d + 1)
    v, t = theta.copy(), 1.0
    for _ in range(iters):
        m = s * (A @ v)
        grad = -(A.T @ (s / (1 + np.exp(m))))
        grad[:d] += (1 - l1_ratio) / C * v[:d]
        nxt = v - grad / L
        nxt[:d] = np.sign(nxt[:d]) * np.maximum(np.abs(nxt[:d]) - l1_ratio / (C * L), 0.0)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        v = nxt + (t - 1) / t_next * (nxt - theta)
        theta, t = nxt, t_next
    return theta[:d]


def test_linear_ranking_equals_an_independent_elastic_net_probe_when_converged():
    x, y = constructed()
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    w = _elastic_net_logreg(z, y, C=0.05, l1_ratio=0.5)
    got = rank(x, y, methods=["linear"], C=0.05, l1_ratio=0.5)["linear"]
    assert got.params["converged"] is True
    np.testing.assert_allclose(got.scores, np.abs(w), atol=2e-3 * np.abs(w).max())
    nonzero = int(np.count_nonzero(np.abs(w) > 1e-6))
    assert 3 <= nonzero < x.shape[1]  # a sparse solution: the comparison covers the zeros too
    assert list(got.order[:nonzero]) == list(np.argsort(-np.abs(w), kind="stable")[:nonzero])


def test_an_iteration_limit_too_low_is_reported_not_hidden():
    x, y = constructed(n=300, units=60)
    got = rank(x, y, methods=["linear"], max_iter=2, tol=1e-8)["linear"]
    assert got.params["converged"] is False and got.params["n_iter"] == 2


def test_bottom_k_draws_ties_at_random_and_counts_them():
    scores = np.array([5.0, 0.0, 3.0, 0.0, 0.0, 2.0, 0.0, 1.0])  # four units tied at 0
    picks = {tuple(sorted(bottom_k(scores, 2, seed).units.tolist())) for seed in range(40)}
    assert len(picks) > 1 and all(set(p) <= {1, 3, 4, 6} for p in picks)  # not the highest-indexed zeros
    b = bottom_k(scores, 2, 0)
    assert (b.boundary, b.tied, b.tied_in_bottom) == (0.0, 4, 2)
    assert np.array_equal(bottom_k(scores, 2, 0).units, b.units)  # seeded
    b6 = bottom_k(scores, 6, 0)  # all four zeros, then 1 and 2 in order
    assert set(b6.units[:4].tolist()) == {1, 3, 4, 6} and b6.units[4:].tolist() == [7, 5] and b6.tied == 1


def test_gaussian_bottom_k_is_read_from_each_unit_alone():
    x, y = constructed(units=12)
    r = rank(x, y, methods=["gaussian", "probeless"], max_k=3)
    low = bottom_sets(r, [3], seed=0)
    assert low["gaussian"][3].units.tolist() == list(np.argsort(r["gaussian"].relevance, kind="stable")[:3])
    assert not set(low["gaussian"][3].units) & set(range(5))  # the informative units are never bottom
    assert not set(low["probeless"][3].units) & set(range(5))


def test_stability_across_seeds_and_halves():
    x, y = constructed()

    def rank_fn(xs, ys, methods, seed):
        return rank(xs, ys, methods=methods, seed=seed, max_k=5)

    rankings = rank_fn(x, y, ["probeless", "random"], 0)
    rows = {(r["ranking"], r["kind"], r["k"]): r for r in stability(x, y, rankings, [3], seed=0, rank_fn=rank_fn,
                                                                    min_per_class=5)}
    assert rows["probeless", "seed", 3]["overlap"] == 1.0  # no randomness
    assert rows["probeless", "halves", 3]["overlap"] == 1.0  # units 0-2 are strong enough for both halves
    assert rows["random", "seed", 3]["overlap"] == pytest.approx(
        top_overlap(rankings["random"].order, rank_fn(x, y, ["random"], 1)["random"].order, 3))
    assert rows["random", "seed", 3]["chance"] == pytest.approx(3 / 30)
