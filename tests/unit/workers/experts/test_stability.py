"""Stability of expert sets (METHODS.md A.3): Jaccard, splits, K-fold stability, the (n+, n-, tau) sweep."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
import torch

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.experts.ap import average_precision
from neuroscribe.workers.experts.stability import (
    SweepRow,
    best_per_tau,
    expert_sets,
    jaccard,
    kfold_splits,
    mean_pairwise_jaccard,
    stability,
    stability_sweep,
    subsample_splits,
)


def data(n_pos=60, n_neg=90, units=300, planted=(7,), seed=0):
    """Noise responses; each planted unit separates positives from negatives perfectly."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(n_pos + n_neg, bool)
    labels[rng.choice(labels.size, n_pos, replace=False)] = True
    x = rng.standard_normal((labels.size, units)).astype(np.float32)
    for u in planted:
        x[:, u] = np.where(labels, 5.0 + rng.random(labels.size), -5.0 + rng.random(labels.size))
    return x, labels


def naive_sweep(x, labels, n_pos, n_neg, taus, repeats, seed) -> list[SweepRow]:
    """Recompute AP and expert sets from scratch for every grid point."""
    rows = []
    for a in sorted(set(n_pos)):
        for b in sorted(set(n_neg)):
            for tau in sorted(set(taus)):
                splits = subsample_splits(labels, a, b, repeats, seed=seed)
                sets = expert_sets(x, labels, splits, tau)
                counts = np.array([len(s) for s in sets])
                pairs = [jaccard(s, t) for s, t in combinations(sets, 2)]
                rows.append(SweepRow(n_pos=a, n_neg=b, tau=tau, repeats=repeats,
                                     jaccard=mean_pairwise_jaccard(sets),
                                     n_pairs=sum(not math.isnan(p) for p in pairs),
                                     n_experts_mean=counts.mean(), n_experts_std=float(counts.std()),
                                     n_empty=int((counts == 0).sum()), base_rate=a / (a + b),
                                     n_distinct=len({tuple(r) for r in splits})))
    return rows


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# --------------------------------------------------------------------------- Jaccard


def test_jaccard_hand_made_sets():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 2 / 4
    assert jaccard({1}, {1}) == 1.0
    assert jaccard({1}, {2}) == 0.0
    assert jaccard(set(), {5}) == 0.0
    assert math.isnan(jaccard(set(), frozenset()))  # undefined, not 0 or 1


def test_mean_pairwise_jaccard_hand_made_sets():
    a, b, c = {1, 2}, {2, 3}, {1, 2, 3}
    assert mean_pairwise_jaccard([a, b, c]) == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert mean_pairwise_jaccard([a, a]) == 1.0
    # pairs of two empty sets are skipped, a set vs an empty set counts as 0
    assert mean_pairwise_jaccard([set(), set(), {1}]) == 0.0
    assert mean_pairwise_jaccard([{1}, {1}, set()]) == pytest.approx(1 / 3)
    assert math.isnan(mean_pairwise_jaccard([set(), set()]))
    with pytest.raises(InvalidInput) as err:
        mean_pairwise_jaccard([{1}])
    assert err.value.field == "sets"


# --------------------------------------------------------------------------- splits


@pytest.mark.parametrize("k", [2, 3, 5])
def test_kfold_splits_disjoint_cover_stratified(k):
    _, labels = data(n_pos=31, n_neg=47)
    folds = kfold_splits(labels, k, seed=1)
    assert len(folds) == k
    every = np.concatenate(folds)
    assert every.size == labels.size and np.array_equal(np.sort(every), np.arange(labels.size))  # disjoint, cover
    for f in folds:
        assert np.array_equal(f, np.sort(f))
        assert labels[f].sum() in (31 // k, -(-31 // k))  # each class split into near-equal parts
        assert (~labels[f]).sum() in (47 // k, -(-47 // k))
    assert max(f.size for f in folds) - min(f.size for f in folds) <= 1


def test_splits_deterministic_by_seed():
    _, labels = data()
    for fn in (lambda s: kfold_splits(labels, 3, seed=s), lambda s: subsample_splits(labels, 10, 20, 4, seed=s)):
        a, b, c = fn(0), fn(0), fn(1)
        assert all(np.array_equal(u, v) for u, v in zip(a, b))
        assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_subsample_sizes_exact_and_nested():
    _, labels = data(n_pos=40, n_neg=50)
    small = subsample_splits(labels, 10, 25, 5, seed=3)
    large = subsample_splits(labels, 30, 50, 5, seed=3)
    assert len(small) == 5
    for s, big in zip(small, large):
        assert labels[s].sum() == 10 and (~labels[s]).sum() == 25 and np.unique(s).size == s.size
        assert labels[big].sum() == 30 and (~labels[big]).sum() == 50
        assert set(s.tolist()) <= set(big.tolist())  # nested: same rows whatever the grid
    assert len({tuple(s) for s in small}) == 5  # the repeats differ


# --------------------------------------------------------------------------- experts and K-fold stability


def test_planted_expert_found_with_ap_1_in_every_fold_and_stability_1():
    x, labels = data(planted=(7,))
    for fold in kfold_splits(labels, 3, seed=0):
        ap = average_precision(x[fold], labels[fold])
        assert ap[7] == 1.0 and np.delete(ap, 7).max() < 0.9
    res = stability(x, labels, tau=0.9, k=3, seed=0)
    assert res.experts == (frozenset({7}),) * 3
    assert res.jaccard == 1.0 and res.pairwise == (1.0, 1.0, 1.0) and res.n_pairs == 3
    assert res.n_experts == (1, 1, 1) and res.n_empty == 0 and res.k == 3 and res.tau == 0.9
    # tau = 1 keeps the perfect unit only; a torch tensor gives the same result
    assert stability(torch.from_numpy(x), torch.from_numpy(labels), tau=1.0).experts == (frozenset({7}),) * 3


def test_random_units_give_low_stability():
    x, labels = data(n_pos=30, n_neg=30, units=2000, planted=())
    res = stability(x, labels, tau=0.7, k=3, seed=0)
    assert min(res.n_experts) > 0  # chance experts exist in every fold...
    assert res.jaccard < 0.3  # ...but are not the same units


def test_no_experts_gives_nan_and_counts_empty_folds():
    x, labels = data(planted=())
    res = stability(x, labels, tau=0.99)
    assert math.isnan(res.jaccard) and res.n_pairs == 0 and res.n_empty == 3 and res.n_experts == (0, 0, 0)


def test_expert_sets_uses_each_split_rows():
    x, labels = data(planted=())
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    rows = np.concatenate([pos[:10], neg[:10]])
    x[rows, 3] = np.where(labels[rows], 10.0, -10.0)  # unit 3 is perfect on these rows only
    a, b = expert_sets(x, labels, [rows, np.concatenate([pos[10:], neg[10:]])], tau=0.95)
    assert 3 in a and 3 not in b


# --------------------------------------------------------------------------- the sweep


@pytest.mark.parametrize("planted, taus", [((1, 2, 3), [0.6, 0.75, 0.9, 1.0]), ((), [0.8, 0.93, 0.99, 1.0])])
def test_sweep_equals_naive_recomputation_per_grid_point(planted, taus):
    x, labels = data(n_pos=40, n_neg=40, units=400, planted=planted, seed=5)
    x[:, 10:60] += labels[:, None] * np.linspace(0.5, 2.5, 50, dtype=np.float32)  # graded experts
    grid = dict(n_pos=[8, 20, 40], n_neg=[10, 30], taus=taus, repeats=4, seed=2)
    rows = stability_sweep(x, labels, **grid)
    assert [(r.n_pos, r.n_neg, r.tau) for r in rows] == [
        (a, b, t) for a in grid["n_pos"] for b in grid["n_neg"] for t in grid["taus"]]  # complete, in order
    ref = naive_sweep(x, labels, **grid)
    for r, e in zip(rows, ref):
        d, f = r.as_dict(), e.as_dict()
        assert all(same(d[key], f[key]) for key in d), (d, f)
    assert any(0 < r.jaccard < 1 for r in rows)  # the comparison is not vacuous
    assert any(r.n_experts_std > 0 for r in rows)
    if not planted:  # grid points where some or all subsamples found no expert are compared too
        assert any(0 < r.n_empty < r.repeats for r in rows) and any(math.isnan(r.jaccard) for r in rows)
    assert stability_sweep(x, labels, **grid) == rows  # deterministic


def test_sweep_and_best_per_tau_pick_the_known_best():
    # unit 0 perfect; units 1..40 weakly shifted: on few sentences some reach AP >= 0.9 by chance
    x, labels = data(n_pos=60, n_neg=60, units=200, planted=(0,), seed=1)
    x[:, 1:41] += labels[:, None] * np.float32(1.0)
    rows = stability_sweep(x, labels, n_pos=[5, 50, 60], n_neg=[5, 50, 60], taus=[0.9, 1.0], repeats=3, seed=0)
    assert len(rows) == 18
    few = [r for r in rows if (r.n_pos, r.n_neg) == (5, 5)]
    assert all(r.jaccard < 0.35 and r.n_experts_mean > 5 for r in few)  # chance experts on 10 sentences
    whole = [r for r in rows if (r.n_pos, r.n_neg) == (60, 60)]
    assert all(r.n_distinct == 1 and r.jaccard == 1.0 for r in whole)  # identical repeats: 1 by construction
    best = best_per_tau(rows)
    assert set(best) == {0.9, 1.0}
    # J = 1 with the planted unit alone at several (n+, n-): fewest sentences wins, whole data never
    assert (best[0.9].n_pos, best[0.9].n_neg, best[0.9].jaccard, best[0.9].n_experts_mean) == (50, 60, 1.0, 1.0)
    assert (best[1.0].n_pos, best[1.0].n_neg, best[1.0].jaccard, best[1.0].n_experts_mean) == (50, 5, 1.0, 1.0)
    only_whole = stability_sweep(x, labels, n_pos=[60], n_neg=[60], taus=[0.9], repeats=2)
    assert best_per_tau(only_whole) == {0.9: None}


def test_best_per_tau_hand_made_rows():
    def row(a, b, tau, jac, n, distinct=3):
        return SweepRow(n_pos=a, n_neg=b, tau=tau, repeats=3, jaccard=jac, n_pairs=3, n_experts_mean=n,
                        n_experts_std=0.0, n_empty=0, base_rate=a / (a + b), n_distinct=distinct)

    rows = [row(10, 10, 0.9, 0.4, 5), row(20, 10, 0.9, 0.8, 3), row(20, 20, 0.9, 0.7, 9),
            row(10, 10, 0.6, 0.6, 2), row(20, 20, 0.6, 0.6, 8), row(40, 40, 0.6, 0.6, 8),
            row(80, 10, 0.6, 0.99, 4000), row(50, 50, 0.6, 1.0, 9, distinct=1),
            row(10, 10, 0.99, math.nan, 0)]
    best = best_per_tau(rows)
    assert best[0.9] is rows[1]  # highest overlap, even with fewer experts
    assert best[0.6] is rows[4]  # tie on overlap: more experts, then fewer sentences; rows at or below
    # chance (80/90 > 0.6) and with identical repeats are skipped; no experts anywhere: None, not dropped
    assert best[0.99] is None
    assert best_per_tau(rows, above_chance=False)[0.6] is rows[6]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda x, y: kfold_splits(y, 1, seed=0), "k"),
        (lambda x, y: stability(x, y, k=1), "k"),
        (lambda x, y: stability(x, y, k=61), "k"),  # more folds than positives
        (lambda x, y: stability(x, y, tau=0.0), "tau"),
        (lambda x, y: stability(x, y, tau=1.5), "tau"),
        (lambda x, y: stability(x, y, tau=float("nan")), "tau"),
        (lambda x, y: expert_sets(x, y, [np.arange(10)], tau=-1), "tau"),
        (lambda x, y: subsample_splits(y, 61, 5, 3, seed=0), "n_pos"),
        (lambda x, y: subsample_splits(y, 5, 91, 3, seed=0), "n_neg"),
        (lambda x, y: subsample_splits(y, 0, 5, 3, seed=0), "n_pos"),
        (lambda x, y: stability_sweep(x, y, n_pos=[5, 61], n_neg=[5], taus=[0.9]), "n_pos"),
        (lambda x, y: stability_sweep(x, y, n_pos=[5], n_neg=[5], taus=[0.9, 1.1]), "taus"),
        (lambda x, y: stability_sweep(x, y, n_pos=[5], n_neg=[5], taus=[]), "taus"),
        (lambda x, y: stability_sweep(x, y, n_pos=[5], n_neg=[5], taus=[0.9], repeats=1), "repeats"),
        (lambda x, y: stability(x[:, 0], y), "responses"),
        (lambda x, y: stability(x, y[:-1]), "labels"),
        (lambda x, y: stability(np.where(np.arange(300) == 4, np.nan, x), y), "responses"),
        (lambda x, y: expert_sets(x, y, [np.flatnonzero(y)], tau=0.9), "splits[0]"),  # no negative
    ],
)
def test_bad_input_names_the_field(call, field):
    x, labels = data()
    with pytest.raises(InvalidInput) as err:
        call(x, labels)
    assert err.value.field == field
