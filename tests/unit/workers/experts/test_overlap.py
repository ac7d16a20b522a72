"""Concept overlap statistics (METHODS.md A.4): Jaccard matrix and the category permutation test."""

import math

import numpy as np
import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.experts.overlap import category_overlap, jaccard_matrix, permutation_p_value


def test_jaccard_matrix_exact_values_and_symmetry():
    sets = {
        "a": {(0, 1), (0, 2), (1, 3)},
        "b": [(0, 2), (1, 3), (2, 4)],  # any collection
        "c": {(5, 5)},
        "d": set(),
    }
    names, m = jaccard_matrix(sets)
    assert names == ["a", "b", "c", "d"]
    assert m.shape == (4, 4) and m.dtype == np.float64
    assert m[0, 1] == 0.5  # 2 shared / 4 in the union
    assert m[0, 2] == 0.0 and m[1, 2] == 0.0
    assert m[0, 3] == 0.0 and m[2, 3] == 0.0  # empty vs non-empty: 0
    assert np.array_equal(np.diag(m)[:3], [1.0, 1.0, 1.0])
    assert math.isnan(m[3, 3])  # both empty: undefined
    np.testing.assert_array_equal(np.nan_to_num(m, nan=-1), np.nan_to_num(m.T, nan=-1))


def test_jaccard_matrix_fractions():
    names, m = jaccard_matrix({"x": range(0, 6), "y": range(3, 9), "z": range(0, 9)})
    assert m[0, 1] == pytest.approx(3 / 9) and m[0, 2] == pytest.approx(6 / 9) and m[1, 2] == pytest.approx(6 / 9)


def _grouped_sets(groups: dict[str, int], shared=8, own=4):
    """Concepts of one category share ``shared`` units; each also has ``own`` private units."""
    sets, cats, uid = {}, {}, 0
    for g, count in groups.items():
        core = {(g, i) for i in range(shared)}
        for k in range(count):
            sets[f"{g}{k}"] = core | {("own", uid + i) for i in range(own)}
            cats[f"{g}{k}"] = g
            uid += own
    return sets, cats


def test_category_overlap_within_exceeds_between_with_small_p():
    sets, cats = _grouped_sets({"animal": 4, "vehicle": 4, "tool": 4})
    sets["stray"], cats["stray"] = {("x", 1)}, None  # no category: excluded and listed
    names, m = jaccard_matrix(sets)
    r = category_overlap(m, names, cats, n_permutations=2000, seed=1)
    assert r.within_mean == pytest.approx(8 / 16)
    assert r.between_mean == 0.0
    assert r.difference == pytest.approx(0.5)
    assert r.n_within_pairs == 3 * 6 and r.n_between_pairs == 66 - 18
    assert r.excluded == ("stray",) and "stray" not in r.concepts and len(r.concepts) == 12
    # only 6 of 12!/(4!^3) = 34650 labellings reach the observed split: p is the floor, 1/2001
    assert r.p_value < 0.005
    assert r.to_dict()["excluded"] == ["stray"]


def test_category_overlap_no_effect_gives_large_p():
    names = [f"c{i}" for i in range(8)]
    m = np.full((8, 8), 0.3)
    np.fill_diagonal(m, 1.0)
    cats = {n: "ab"[i % 2] for i, n in enumerate(names)}
    r = category_overlap(m, names, cats, n_permutations=500)
    assert r.difference == pytest.approx(0.0, abs=1e-12)
    assert r.p_value == 1.0  # every permutation ties the observed statistic


def test_category_overlap_shuffled_categories_large_p():
    sets, cats = _grouped_sets({"animal": 4, "vehicle": 4})
    # labels that cut across the real groups: within pairs now overlap *less* than between
    names = list(sets)
    crossed = {n: "xy"[i % 2] for i, n in enumerate(names)}
    _, m = jaccard_matrix(sets)
    r = category_overlap(m, names, crossed, n_permutations=1000)
    assert r.difference < 0 and r.p_value > 0.5


def test_permutation_p_value_formula():
    assert permutation_p_value(0.5, np.array([0.1, 0.5, 0.7, 0.2])) == pytest.approx(3 / 5)
    assert permutation_p_value(1.0, np.zeros(99)) == pytest.approx(1 / 100)
    assert permutation_p_value(0.0, np.array([np.nan, 1.0])) == pytest.approx(2 / 3)  # nan never counts
    assert permutation_p_value(0.3, np.array([0.1 + 0.2])) == 1.0  # round-off counts as a tie


def test_category_overlap_p_value_matches_exact_fraction():
    # 4 concepts in 2 + 2: the 3 pairings are equally likely; only the true one reaches the observed
    names = ["a", "b", "c", "d"]
    m = np.array([[1, 0.9, 0.1, 0.2], [0.9, 1, 0.3, 0.1], [0.1, 0.3, 1, 0.8], [0.2, 0.1, 0.8, 1]])
    cats = {"a": "p", "b": "p", "c": "q", "d": "q"}
    r = category_overlap(m, names, cats, n_permutations=20_000, seed=3)
    assert r.p_value == pytest.approx(1 / 3, abs=0.015)
    assert r.within_mean == pytest.approx(0.85) and r.between_mean == pytest.approx(0.175)
    assert category_overlap(m, names, cats, n_permutations=300, seed=5) == category_overlap(
        m, names, cats, n_permutations=300, seed=5
    )


def test_category_overlap_bad_categories():
    names, m = jaccard_matrix({"a": {1}, "b": {1, 2}, "c": {3}})
    with pytest.raises(InvalidInput) as e:
        category_overlap(m, names, {"a": "x", "b": "x", "c": "x"})
    assert e.value.field == "categories" and "at least 2 categories" in str(e.value)
    with pytest.raises(InvalidInput) as e:
        category_overlap(m, names, {"a": "x", "b": "y", "c": "z"})
    assert e.value.field == "categories" and "within-category" in str(e.value)
    with pytest.raises(InvalidInput) as e:
        category_overlap(m, names, {"a": "x", "b": None})
    assert e.value.field == "categories"
    with pytest.raises(InvalidInput) as e:
        category_overlap(m[:2], names, {"a": "x", "b": "y"})
    assert e.value.field == "matrix"
