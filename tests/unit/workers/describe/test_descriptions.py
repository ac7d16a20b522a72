"""Unit descriptions from sentence descriptors (METHODS.md B.4-B.6): assignment, BH, split, consistency, P@K/R@K."""

from __future__ import annotations

import math
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from scipy.stats import false_discovery_control, hypergeom

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.describe.quality import consistency, precision_recall_at_k, reference_sets, split_half
from neuroscribe.workers.describe.descriptions import Assignment, assign
from neuroscribe.workers.describe.incidence import incidence
from neuroscribe.workers.describe.pvalues import benjamini_hochberg, hypergeom_sf


def exact_sf(x: int, n: int, big_k: int, draws: int) -> Fraction:
    """P(X >= x), X ~ Hypergeom(n, big_k, draws), by the combinatorial sum."""
    return Fraction(sum(comb(big_k, i) * comb(n - big_k, draws - i) for i in range(x, min(big_k, draws) + 1)),
                    comb(n, draws))


def by_name(unit):
    return {d.descriptor: d for d in unit.descriptors}


# --------------------------------------------------------------------------- a hand-computed case

# N = 10 sentences: "a" in rows 0-3 (K = 4), "b" in rows 0, 2, 4, 5, 6, 9 (K = 6)
SETS = [{"a", "b"}, {"a"}, {"a", "b"}, {"a"}, {"b"}, {"b"}, {"b"}, set(), set(), {"b"}]
EXEMPLARS = np.array([[0, 1, 2, 4],   # a: 3 of 4, b: 3 of 4
                      [7, 8, 5, 6],   # b: 2 of 4
                      [3, 9, 7, 8]])  # a: 1, b: 1 -> nothing at t = 50


def test_incidence_matrix_and_names():
    inc = incidence(SETS + [None])
    assert inc.names == ("a", "b")
    assert inc.matrix.shape == (11, 2) and inc.matrix.dtype == bool
    assert inc.matrix[:, 0].toarray().ravel().tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert inc.matrix.sum() == 10 and inc.n_failed == 1 and inc.failed[10]
    assert incidence(SETS, vocabulary=["b", "z", "a"]).names == ("b", "z", "a")
    assert incidence(inc) is inc


def test_hand_computed_f_base_enrichment_p():
    res = assign(SETS, EXEMPLARS)
    assert isinstance(res, Assignment)
    assert (res.n_sentences, res.n_valid, res.n_failed) == (10, 10, 0)
    assert res.descriptor_counts.tolist() == [4, 6] and res.base_rate.tolist() == [40.0, 60.0]
    u0, u1, u2 = res.units
    assert u0.names == ("a", "b")  # equal f = 75: the smaller p first
    a, b = by_name(u0)["a"], by_name(u0)["b"]
    assert (a.count, a.f, a.base_rate, a.enrichment) == (3, 75.0, 40.0, 75 / 40)
    assert (b.count, b.f, b.base_rate, b.enrichment) == (3, 75.0, 60.0, 75 / 60)
    # P(X >= 3), X ~ HG(10, 4, 4) = (C(4,3) C(6,1) + C(4,4)) / C(10,4) = 25/210
    assert a.p == pytest.approx(25 / 210, rel=1e-12)
    # P(X >= 3), X ~ HG(10, 6, 4) = (C(6,3) C(4,1) + C(6,4)) / 210 = 95/210
    assert b.p == pytest.approx(95 / 210, rel=1e-12)
    assert a.q is None and math.isnan(res.tested.q[0])
    assert u1.names == ("b",)
    # P(X >= 2), X ~ HG(10, 6, 4) = 1 - (1 + 24)/210
    assert by_name(u1)["b"].f == 50.0 and by_name(u1)["b"].p == pytest.approx(185 / 210, rel=1e-12)
    assert u2.names == ()  # f = 25 < 50
    # every pair with count >= 1 is tested, assigned or not
    assert list(zip(res.tested.unit.tolist(), res.tested.descriptor.tolist())) == [(0, 0), (0, 1), (1, 1), (2, 0), (2, 1)]
    assert res.tested.count.tolist() == [3, 3, 2, 1, 1]
    assert res.tested.assigned.tolist() == [True, True, True, False, False]
    assert res.counts.toarray().tolist() == [[3, 3], [0, 2], [1, 1]]
    assert res.n_described == 2 and res.assigned_sets() == [frozenset("ab"), frozenset("b"), frozenset()]
    assert res.to_dict()["units"][0]["descriptors"][0]["descriptor"] == "a"
    # threshold 75: only unit 0's; threshold 76: nothing
    assert assign(SETS, EXEMPLARS, threshold=75).ranked() == [("a", "b"), (), ()]
    assert assign(SETS, EXEMPLARS, threshold=76).n_described == 0


def test_sort_order_f_then_p_then_name():
    # unit 0: c in 4/4 exemplars (f 100), a and b in 3/4 (f 75) with a rarer in the data (smaller p)
    sets = [{"a", "b", "c"}, {"a", "b", "c"}, {"a", "b", "c"}, {"c"}] + [{"b"}] * 6 + [set()] * 10
    res = assign(sets, np.array([[0, 1, 2, 3]]))
    assert res.units[0].names == ("c", "a", "b")
    # equal f and equal p: by name
    sets = [{"y", "x"}] * 2 + [{"y"}, {"x"}] + [set()] * 6
    assert assign(sets, np.array([[0, 1, 2, 3]])).units[0].names == ("x", "y")


def test_p_values_match_scipy_and_the_exact_sum_on_tiny_n():
    rng = np.random.default_rng(3)
    names = list("abcde")
    for trial in range(5):
        n, k, units = 12, 5, 8
        sets = [None if rng.random() < 0.15 else {c for c in names if rng.random() < 0.4} for _ in range(n)]
        sets[0] = {"a"}
        ex = np.stack([rng.choice(n, k, replace=False) for _ in range(units)])
        res = assign(sets, ex, threshold=1)
        valid = [s is not None for s in sets]
        n_valid = sum(valid)
        seen = 0
        for u in range(units):
            kv = sum(valid[i] for i in ex[u])
            for j, c in enumerate(res.descriptors):
                count = sum(1 for i in ex[u] if sets[i] is not None and c in sets[i])
                big_k = sum(1 for s in sets if s is not None and c in s)
                assert res.counts[u, j] == count
                if count == 0:
                    continue
                seen += 1
                i = np.flatnonzero((res.tested.unit == u) & (res.tested.descriptor == j))[0]
                p = res.tested.p[i]
                assert p == pytest.approx(float(exact_sf(count, n_valid, big_k, kv)), rel=1e-12)
                assert p == pytest.approx(hypergeom.sf(count - 1, n_valid, big_k, kv), rel=1e-12)
                assert res.tested.f[i] == 100 * count / kv
        assert seen == res.tested.p.size


def test_vectorised_tail_matches_hypergeom_sf():
    rng = np.random.default_rng(0)
    for n in (40, 2_000, 20_000):
        big_k = rng.integers(1, n // 2, 2_000)
        draws = rng.integers(1, min(n, 300), 2_000)
        x = rng.integers(1, np.minimum(big_k, draws) + 1)
        got = hypergeom_sf(x, n, big_k, draws)
        ref = hypergeom.sf(x - 1, n, big_k, draws)
        keep = ref > 1e-290
        np.testing.assert_allclose(got[keep], ref[keep], rtol=1e-9)
        assert (got[~keep] < 1e-280).all()
        assert (got <= 1).all()


# --------------------------------------------------------------------------- Benjamini-Hochberg


def test_bh_hand_worked_example():
    p = np.array([0.01, 0.02, 0.025, 0.5])
    # p*m/rank = 0.04, 0.04, 0.0333, 0.5; running minimum from the largest rank down
    np.testing.assert_allclose(benjamini_hochberg(p), [1 / 30, 1 / 30, 1 / 30, 0.5], rtol=1e-15)
    # step-up: at FDR 0.035 the first three are kept although p_(1) = 0.01 > 0.035 * 1/4
    assert (benjamini_hochberg(p) <= 0.035).tolist() == [True, True, True, False]
    assert not (benjamini_hochberg(p) <= 0.03).any()
    # order does not matter
    np.testing.assert_allclose(benjamini_hochberg(p[::-1]), [0.5, 1 / 30, 1 / 30, 1 / 30], rtol=1e-15)
    # a larger family: 4 more tests with p = 1 -> 0.08, 0.08, 0.0667, 1.0 -> [0.0667, 0.0667, 0.0667, 1]
    np.testing.assert_allclose(benjamini_hochberg(p, m=8), [0.2 / 3, 0.2 / 3, 0.2 / 3, 1.0], rtol=1e-15)
    with pytest.raises(InvalidInput) as err:
        benjamini_hochberg(p, m=3)
    assert err.value.field == "m"


def test_bh_equals_scipy():
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.random(500) ** 3, [0.0, 1.0, 0.5, 0.5]])
    np.testing.assert_allclose(benjamini_hochberg(p), false_discovery_control(p, method="bh"), rtol=1e-12)


def test_descriptor_in_every_sentence_is_not_assigned_under_fdr():
    """The reason the p-value exists: f = 100 for "review" everywhere, but it says nothing."""
    sets = [{"review", "battery"} if i < 4 else {"review"} for i in range(20)]
    ex = np.array([[0, 1, 2, 3], [10, 11, 12, 13]])
    plain = assign(sets, ex)  # the paper's rule: f >= 50
    assert plain.ranked() == [("battery", "review"), ("review",)]
    assert by_name(plain.units[0])["review"].f == 100.0
    assert by_name(plain.units[0])["review"].p == 1.0 and by_name(plain.units[0])["review"].enrichment == 1.0
    res = assign(sets, ex, fdr=0.05)
    assert res.ranked() == [("battery",), ()]
    battery = by_name(res.units[0])["battery"]
    assert battery.f == 100.0 and battery.p == pytest.approx(1 / comb(20, 4), rel=1e-12)
    assert res.n_tests == 3  # (0, battery), (0, review), (1, review)
    assert battery.q == pytest.approx(3 / comb(20, 4), rel=1e-12)
    review_q = res.tested.q[res.tested.descriptor == res.descriptors.index("review")]
    assert (review_q == 1.0).all()


def test_bh_family_all_counts_every_unit_descriptor_pair():
    res_t = assign(SETS, EXEMPLARS, fdr=0.6)
    res_a = assign(SETS, EXEMPLARS, fdr=0.6, family="all")
    assert res_t.n_tests == 5 and res_a.n_tests == 3 * 2  # pairs with count >= 1 / units x descriptors
    np.testing.assert_allclose(res_t.tested.q, benjamini_hochberg(res_t.tested.p), rtol=1e-15)
    np.testing.assert_allclose(res_a.tested.q, benjamini_hochberg(res_a.tested.p, m=6), rtol=1e-15)
    assert (res_a.tested.q >= res_t.tested.q).all()
    # p = 25/210, 95/210, 185/210 (units 0, 0, 1), then unit 2: a 1 - 15/210, b 1 - 1/210.
    # family of 5: q(a of unit 0) = 25/210 * 5 = 0.595 <= 0.6 (the next ranks give >= 0.995)
    assert res_t.tested.q[0] == pytest.approx(25 / 210 * 5, rel=1e-12)
    assert res_t.ranked() == [("a",), (), ()]
    # family of 6: 25/210 * 6 = 0.714 > 0.6
    assert res_a.tested.q[0] == pytest.approx(25 / 210 * 6, rel=1e-12)
    assert res_a.ranked() == [(), (), ()]


# --------------------------------------------------------------------------- failed sentences


def test_failed_sentences_leave_the_population_and_the_exemplar_denominator():
    # rows 6-9 failed; "a" in rows 0-2 of the 6 valid rows
    sets = [{"a"}, {"a"}, {"a"}, {"b"}, set(), {"b"}, None, None, None, None]
    ex = np.array([[0, 1, 8, 3],    # one failed exemplar: k_valid = 3, a in 2 of them
                   [6, 7, 8, 9]])   # every exemplar failed
    res = assign(sets, ex)
    assert (res.n_sentences, res.n_valid, res.n_failed) == (10, 6, 4)
    assert res.descriptor_counts.tolist() == [3, 2]  # failed rows never count
    u0, u1 = res.units
    assert (u0.k, u0.n_valid, u0.n_failed) == (4, 3, 1)
    a = by_name(u0)["a"]
    assert a.count == 2 and a.f == pytest.approx(200 / 3)  # 2 of the 3 known, not 2 of 4 (= 50)
    assert a.base_rate == 50.0 and a.enrichment == pytest.approx(4 / 3)
    # P(X >= 2), X ~ HG(6, 3, 3) = (C(3,2) C(3,1) + C(3,3)) / C(6,3) = 10/20
    assert a.p == pytest.approx(0.5, rel=1e-12)
    assert u0.names == ("a",)  # b: 1 of 3 = 33% < 50
    assert (u1.k, u1.n_valid, u1.n_failed, u1.names) == (4, 0, 4, ())
    assert not (res.tested.unit == 1).any()
    # an empty (parsed) set is a valid sentence: it counts in N and k
    res2 = assign(sets[:6] + [set()] * 4, ex)
    assert res2.n_valid == 10 and by_name(res2.units[0])["a"].f == 50.0


def test_assign_on_rows_equals_assign_on_the_subset():
    rng = np.random.default_rng(5)
    names = list("abcdef")
    sets = [None if rng.random() < 0.1 else {c for c in names if rng.random() < 0.3} for _ in range(60)]
    rows = np.sort(rng.choice(60, 30, replace=False))
    ex = np.stack([rng.choice(rows, 6, replace=False) for _ in range(10)])
    full = assign(sets, ex, threshold=30, fdr=0.5, rows=rows)
    remap = {r: i for i, r in enumerate(rows.tolist())}
    sub = assign([sets[r] for r in rows], np.vectorize(remap.get)(ex), threshold=30, fdr=0.5,
                 vocabulary=full.descriptors)
    assert full.n_sentences == 30 and full.ranked() == sub.ranked()
    np.testing.assert_array_equal(full.tested.p, sub.tested.p)
    with pytest.raises(InvalidInput) as err:
        assign(sets, np.array([[r for r in range(60) if r not in set(rows.tolist())][:3]]), rows=rows)
    assert err.value.field == "exemplars"


# --------------------------------------------------------------------------- split half


def test_split_half_by_label_is_seeded_stratified_disjoint_covering():
    rng = np.random.default_rng(0)
    labels = rng.choice(["pos", "neg", "neutral"], size=101, p=[0.6, 0.3, 0.1])
    sets = [{"x"}] * 101
    a, b = split_half(sets, labels=labels, seed=7)
    a2, b2 = split_half(sets, labels=labels, seed=7)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    assert not np.array_equal(a, split_half(sets, labels=labels, seed=8)[0])
    assert np.intersect1d(a, b).size == 0
    assert np.array_equal(np.sort(np.concatenate([a, b])), np.arange(101))
    assert abs(a.size - b.size) <= 1 and np.all(np.diff(a) > 0)
    for c in ("pos", "neg", "neutral"):
        assert abs(int((labels[a] == c).sum()) - int((labels[b] == c).sum())) <= 1


def test_split_half_by_most_frequent_descriptor():
    rng = np.random.default_rng(1)
    names = ["common", "mid", "rare"]
    sets = []
    for i in range(200):
        if i % 17 == 0:
            sets.append(None)
        else:
            sets.append({"everywhere"} | {c for c, pr in zip(names, (0.5, 0.3, 0.1)) if rng.random() < pr})
    a, b = split_half(sets, seed=3)
    assert np.intersect1d(a, b).size == 0 and a.size + b.size == 200 and abs(a.size - b.size) <= 1

    def stratum(s):  # "everywhere" is in every valid sentence: skipped
        if s is None:
            return "<failed>"
        for c in names:  # most frequent first
            if c in s:
                return c
        return "<none>"

    strata = np.array([stratum(s) for s in sets])
    for c in set(strata.tolist()):
        assert abs(int((strata[a] == c).sum()) - int((strata[b] == c).sum())) <= 1, c
    assert np.array_equal(a, split_half(sets, seed=3)[0])


def test_split_half_single_class_label_errors():
    with pytest.raises(InvalidInput) as err:
        split_half([{"x"}] * 4, labels=[1, 1, 1, 1], seed=0)
    assert err.value.field == "label"
    with pytest.raises(InvalidInput) as err:
        split_half([{"x"}] * 4, labels=[1, 0, 1], seed=0)
    assert err.value.field == "label"
    with pytest.raises(InvalidInput) as err:
        split_half([{"x"}], seed=0)
    assert err.value.field == "descriptor_sets"


# --------------------------------------------------------------------------- consistency


def test_consistency_counts_both_empty_units_separately():
    a = [{"x", "y"}, set(), {"z"}, set(), {"w"}, {"p", "q", "r", "s", "t", "u", "v", "w", "x", "y"}]
    b = [{"x"}, set(), set(), {"d"}, {"w"}, {"p", "q", "r"}]
    res = consistency(a, b)
    np.testing.assert_array_equal(np.isnan(res.per_unit), [False, True, False, False, False, False])
    assert res.per_unit[[0, 2, 3, 4, 5]].tolist() == [0.5, 0.0, 0.0, 1.0, 0.3]
    assert res.n_both_empty == 1 and res.n_defined == 5 and res.n_units == 6 and res.n_one_side_empty == 2
    assert res.mean == pytest.approx((0.5 + 0 + 0 + 1 + 0.3) / 5)  # NOT counting the empty unit as 1
    assert res.histogram.tolist() == [2, 0, 0, 1, 0, 1, 0, 0, 0, 1]  # 3/10 lands in [0.3, 0.4)
    assert res.histogram.sum() == res.n_defined
    np.testing.assert_allclose(res.bin_edges, np.linspace(0, 1, 11))
    assert math.isnan(consistency([set()], [set()]).mean)
    d = res.to_dict()
    assert d["per_unit"][1] is None and d["n_both_empty"] == 1


def test_consistency_of_assignments():
    r1 = assign(SETS, EXEMPLARS)
    assert consistency(r1, r1).mean == 1.0 and consistency(r1, r1).n_both_empty == 1
    r2 = assign(SETS, EXEMPLARS, threshold=75)  # [a, b], [], []
    res = consistency(r1, r2)
    assert res.per_unit[:2].tolist() == [1.0, 0.0] and res.n_both_empty == 1 and res.mean == 0.5
    with pytest.raises(InvalidInput) as err:
        consistency(r1, [set()])
    assert err.value.field == "assigned_b"


# --------------------------------------------------------------------------- precision / recall at K


LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0])
LABEL_MAP = {1: "positive", 0: "negative"}
EX_PR = np.array([[0, 1, 2, 3],     # all positive
                  [4, 5, 6, 7],     # 3 negative, 1 positive
                  [8, 9, 3, 10],    # 2 positive, 2 negative
                  [0, 4, 9, 11]])   # 1 positive, 3 negative


def test_reference_sets():
    ref = reference_sets(LABELS, EX_PR, LABEL_MAP)
    assert ref == [{"positive"}, {"negative"}, {"positive", "negative"}, {"negative"}]
    assert reference_sets(LABELS, EX_PR, LABEL_MAP, threshold=60)[2] == frozenset()
    assert reference_sets(LABELS.astype(str), EX_PR, {"1": "positive", "0": "negative"}) == ref
    with pytest.raises(InvalidInput) as err:
        reference_sets(np.ones(12, int), EX_PR, LABEL_MAP)
    assert err.value.field == "label"
    with pytest.raises(InvalidInput) as err:
        reference_sets(LABELS, EX_PR, {1: "positive"})
    assert err.value.field == "label_map"


def test_precision_recall_at_k_constructed():
    ranked = [("positive", "battery"),   # P@1 1, P@2 1/2, R 1
              ("screen", "negative"),    # P@1 0, R@1 0; P@2 1/2, R@2 1
              ("positive",),             # P 1, R 1/2 (reference has both labels)
              ()]                        # no descriptor: does not count
    ref = reference_sets(LABELS, EX_PR, LABEL_MAP)
    res = precision_recall_at_k(ranked, ref)
    assert res.ks == (1, 2, 3) and res.n_units == 3 and res.n_recall_units == 3 and res.n_units_total == 4
    assert res.at(1) == pytest.approx((2 / 3, 1.5 / 3))
    assert res.at(2) == pytest.approx((2 / 3, 2.5 / 3))
    assert res.at(3) == pytest.approx((2 / 3, 2.5 / 3))  # no unit has a third descriptor
    assert res.hits[:, 1].tolist() == [1, 1, 1, 0] and res.n_top[:, 2].tolist() == [2, 2, 1, 0]
    assert res.n_reference.tolist() == [1, 1, 2, 1]
    # a unit whose reference is empty (no label at >= t% of its exemplars) is out of recall only
    ref60 = reference_sets(LABELS, EX_PR, LABEL_MAP, threshold=60)
    res60 = precision_recall_at_k(ranked, ref60, ks=[2])
    assert res60.n_units == 3 and res60.n_recall_units == 2
    assert res60.precision[0] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert res60.recall[0] == pytest.approx(1.0)
    assert res.to_dict()["n_units"] == 3


def test_precision_recall_from_an_assignment():
    # descriptors generated for the 12 labelled sentences: the label's descriptor and some noise
    sets = [{"positive", "battery"}, {"positive", "battery"}, {"positive"}, {"positive", "battery"},
            {"negative", "screen"}, {"negative", "screen"}, {"negative", "screen"}, {"positive"},
            {"positive"}, {"negative"}, {"negative"}, {"negative"}]
    res = assign(sets, EX_PR)
    # equal f: the rarer descriptor (smaller p) first; equal f and p: by name
    assert res.ranked() == [("positive", "battery"), ("screen", "negative"), ("negative", "positive"), ("negative",)]
    pr = precision_recall_at_k(res, reference_sets(LABELS, EX_PR, LABEL_MAP))
    assert pr.n_units == 4 and pr.n_recall_units == 4
    assert pr.at(1) == pytest.approx((3 / 4, (1 + 0 + 0.5 + 1) / 4))
    assert pr.at(2) == pytest.approx(((0.5 + 0.5 + 1 + 1) / 4, 1.0))


def test_precision_recall_bad_input():
    ref = [{"positive"}]
    for kwargs, name in [({"ks": (0,)}, "ks"), ({"ks": ()}, "ks"), ({"ks": (1.5,)}, "ks")]:
        with pytest.raises(InvalidInput) as err:
            precision_recall_at_k([("positive",)], ref, **kwargs)
        assert err.value.field == name
    with pytest.raises(InvalidInput) as err:
        precision_recall_at_k([("positive",), ()], ref)
    assert err.value.field == "reference"
    with pytest.raises(InvalidInput) as err:
        precision_recall_at_k([{"a", "b"}], ref)  # unranked
    assert err.value.field == "assigned:0"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("sets, ex, kwargs, name", [
    ([], [[0]], {}, "descriptor_sets"),
    ([{"a"}, "ab"], [[0]], {}, "descriptor_sets:1"),
    ([{"a"}, {3}], [[0]], {}, "descriptor_sets:1"),
    ([{"a"}, {"b"}], [[0]], {"vocabulary": ["a"]}, "descriptor_sets:1"),
    ([{"a"}, {"b"}], [[0]], {"vocabulary": ["a", "b", "a"]}, "vocabulary"),
    ([None, None], [[0]], {}, "descriptor_sets"),
    ([{"a"}, {"b"}], np.zeros((2, 0), int), {}, "exemplars"),  # k so small the set is empty
    ([{"a"}, {"b"}], np.zeros((0, 1), int), {}, "exemplars"),
    ([{"a"}, {"b"}], [[0, 2]], {}, "exemplars"),
    ([{"a"}, {"b"}], [[0, -1]], {}, "exemplars"),
    ([{"a"}, {"b"}], [[1, 1]], {}, "exemplars"),
    ([{"a"}, {"b"}], [[0.0, 1.0]], {}, "exemplars"),
    ([{"a"}, {"b"}], [0, 1], {}, "exemplars"),
    ([{"a"}, {"b"}], [[0]], {"threshold": 0}, "threshold"),
    ([{"a"}, {"b"}], [[0]], {"threshold": 101}, "threshold"),
    ([{"a"}, {"b"}], [[0]], {"threshold": float("nan")}, "threshold"),
    ([{"a"}, {"b"}], [[0]], {"fdr": 1.0}, "fdr"),
    ([{"a"}, {"b"}], [[0]], {"fdr": 0}, "fdr"),
    ([{"a"}, {"b"}], [[0]], {"family": "units"}, "family"),
    ([{"a"}, {"b"}], [[0]], {"rows": []}, "rows"),
])
def test_assign_bad_input_names_the_field(sets, ex, kwargs, name):
    with pytest.raises(InvalidInput) as err:
        assign(sets, np.asarray(ex) if not isinstance(ex, np.ndarray) else ex, **kwargs)
    assert err.value.field == name


def test_split_assign_consistency_end_to_end():
    """Planted units: unit 0 fires on "battery", unit 1 on "screen", unit 2 is noise."""
    rng = np.random.default_rng(11)
    n = 400
    has_b, has_s = rng.random(n) < 0.2, rng.random(n) < 0.2
    sets = [{"review"} | ({"battery"} if b else set()) | ({"screen"} if s else set()) for b, s in zip(has_b, has_s)]
    sets[5] = None
    resp = rng.standard_normal((n, 3))
    resp[:, 0] += 4 * has_b
    resp[:, 1] += 4 * has_s
    calib, valid = split_half(sets, seed=0)
    halves = []
    for rows in (calib, valid):
        top = rows[np.argsort(-resp[rows], axis=0, kind="stable")[:10]].T  # (units, k) global rows
        halves.append(assign(sets, top, fdr=0.05, rows=rows))
    assert halves[0].ranked()[:2] == [("battery",), ("screen",)] == halves[1].ranked()[:2]
    assert all("review" not in s for h in halves for s in h.assigned_sets())  # everywhere: never significant
    res = consistency(*halves)
    assert res.per_unit[:2].tolist() == [1.0, 1.0]
    assert res.n_defined + res.n_both_empty == 3
