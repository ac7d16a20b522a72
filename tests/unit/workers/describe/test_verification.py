"""Held-out verification of unit descriptions: AUROC, AP, Mann-Whitney p, BH, permutation null."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import average_precision_score, roc_auc_score

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.describe import verification
from neuroscribe.workers.describe.verification import Verification, verify


def random_holds(rng, n, vocab, probs, failed=0.0):
    out = []
    for _ in range(n):
        if rng.random() < failed:
            out.append(None)
        else:
            out.append(frozenset(v for v, q in zip(vocab, probs) if rng.random() < q))
    return out


def planted(n=40):
    """Sentences 0, 2, 4, ... hold "cat"; unit 0 fires on them, unit 1 never fires, unit 2 fires on
    the others, unit 3 fires on "cat" with continuous noise (no ties)."""
    rng = np.random.default_rng(0)
    cat = np.arange(n) % 2 == 0
    holds = [frozenset({"cat", "x"}) if c else frozenset({"x"}) for c in cat]
    resp = np.zeros((n, 4), np.float32)
    resp[:, 0] = cat
    resp[:, 2] = ~cat
    resp[:, 3] = cat * 5.0 + rng.normal(size=n)
    return resp, holds


# --------------------------------------------------------------------------- known answers


def test_planted_unit_is_verified():
    resp, holds = planted()
    v = verify(resp, holds, [(0, "cat"), (3, "cat")])
    assert isinstance(v, Verification)
    assert v.auroc.tolist() == [1.0, 1.0]
    assert v.ap.tolist() == [1.0, 1.0]
    assert v.ap_chance.tolist() == [0.5, 0.5]
    assert v.n_pos.tolist() == [20, 20] and v.n_neg.tolist() == [20, 20]
    assert (v.p < 1e-6).all() and v.verified.all() and v.n_verified == 2
    assert not v.exact.any()  # 20 vs 20: the normal approximation


def test_silent_unit_is_not_verified():
    resp, holds = planted()
    v = verify(resp, holds, [(1, "cat"), (0, "cat")])
    assert v.auroc[0] == 0.5 and v.p[0] == 1.0  # all ties: U = mean, continuity correction
    assert v.verified.tolist() == [False, True]
    assert v.ap[0] == pytest.approx(0.5)  # one threshold: the base rate


@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
def test_opposite_unit_is_not_verified(alternative):
    resp, holds = planted()
    v = verify(resp, holds, [(2, "cat"), (0, "cat")], alternative=alternative)
    assert v.auroc[0] == 0.0
    if alternative == "greater":
        assert v.p[0] > 0.99
    else:
        assert v.p[0] < 1e-6  # significant, but the wrong way: still not a verification
    assert v.verified.tolist() == [False, True]


def test_failed_sentences_are_left_out():
    resp, holds = planted(40)
    holds = list(holds)
    for i in (0, 2, 4, 1):  # three positives and one negative fail
        holds[i] = None
    v = verify(resp, holds, [(0, "cat")])
    assert (v.n_pos[0], v.n_neg[0]) == (17, 19)
    assert v.n_sentences == 40 and v.n_failed == 4
    assert v.auroc[0] == 1.0 and v.verified[0]


def test_untestable_pairs():
    resp, holds = planted()
    v = verify(resp, holds, [(0, "dog"), (0, "x"), (0, "cat")])
    assert v.n_pos.tolist() == [0, 40, 20] and v.n_neg.tolist() == [40, 0, 20]
    assert v.testable.tolist() == [False, False, True]
    assert (v.n_pairs, v.n_testable, v.n_untestable, v.n_verified) == (3, 1, 2, 1)
    for field in (v.auroc, v.ap, v.ap_chance, v.p, v.q):
        assert np.isnan(field[:2]).all()
    assert v.verified.tolist() == [False, False, True]
    d = v.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["pairs"][0]["auroc"] is None and d["pairs"][0]["p"] is None and d["pairs"][2]["auroc"] == 1.0
    assert (d["n_pairs"], d["n_testable"], d["n_untestable"]) == (3, 1, 2)


def test_no_testable_pair_and_no_pair():
    resp, holds = planted()
    v = verify(resp, holds, [(0, "dog")])
    assert v.n_testable == 0 and v.n_verified == 0 and v.n_verified_null == 0
    v = verify(resp, holds, [])
    assert v.n_pairs == 0 and v.per_unit_best(4) == [None] * 4


def test_per_unit_best():
    resp, holds = planted()
    v = verify(resp, holds, [(2, "cat"), (1, "cat"), (1, "dog"), (3, "cat")])
    assert v.per_unit_best(5) == [None, 0.5, 0.0, 1.0, None]
    with pytest.raises(InvalidInput):
        v.per_unit_best(3)


# --------------------------------------------------------------------------- agreement with sklearn / scipy


def random_case(seed, n=80, units=12, failed=0.1):
    rng = np.random.default_rng(seed)
    resp = np.round(rng.normal(size=(n, units)), 1)  # many ties
    resp[:, : units // 3] = rng.normal(size=(n, units // 3))  # no ties: exact p for small groups
    vocab = ["a", "b", "c", "d", "e"]
    holds = random_holds(rng, n, vocab, [0.5, 0.08, 0.9, 0.04, 0.3], failed)
    pairs = [(u, d) for u in range(units) for d in vocab + ["zz"]]
    return resp, holds, pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_ap_match_sklearn(seed):
    resp, holds, pairs = random_case(seed)
    v = verify(resp, holds, pairs, null=None)
    known = np.array([h is not None for h in holds])
    checked = 0
    for i, (u, d) in enumerate(pairs):
        y = np.array([d in h for h in holds if h is not None])
        if y.all() or not y.any():
            assert np.isnan(v.auroc[i]) and not v.verified[i]
            continue
        s = resp[known, u]
        assert v.auroc[i] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert v.ap[i] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert v.ap_chance[i] == pytest.approx(y.mean())
        checked += 1
    assert checked > 40


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_p_values_match_scipy(alternative):
    resp, holds, pairs = random_case(3)
    v = verify(resp, holds, pairs, alternative=alternative, null=None)
    known = np.array([h is not None for h in holds])
    kinds = set()
    for i, (u, d) in enumerate(pairs):
        y = np.array([d in h for h in holds if h is not None])
        if y.all() or not y.any():
            continue
        s = resp[known, u]
        ref = mannwhitneyu(s[y], s[~y], alternative=alternative, method="auto").pvalue
        assert v.p[i] == pytest.approx(ref, rel=1e-10, abs=1e-300)
        kinds.add(bool(v.exact[i]))
    assert kinds == {True, False}  # both the exact and the asymptotic branch were checked


@pytest.mark.parametrize("n1, n2", [(1, 9), (3, 7), (8, 8), (2, 300), (8, 1000)])  # (8, 1000): Python ints
def test_exact_distribution_matches_scipy(n1, n2):
    rng = np.random.default_rng(n1 * n2)
    x = rng.normal(size=n1) + 1.0
    y = rng.normal(size=n2)
    resp = np.concatenate([x, y])[:, None]
    holds = [frozenset({"c"})] * n1 + [frozenset()] * n2
    v = verify(resp, holds, [(0, "c")], null=None)
    assert v.exact[0]
    ref = mannwhitneyu(x, y, alternative="greater", method="exact").pvalue
    assert v.p[0] == pytest.approx(ref, rel=1e-12)


def test_bh_family_is_the_testable_pairs():
    resp, holds, pairs = random_case(4)
    v = verify(resp, holds, pairs, null=None)
    t = v.testable
    p, q = v.p[t], v.q[t]
    order = np.argsort(p)
    m = p.size
    ref = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    assert np.allclose(q[order], np.minimum(ref, 1.0))
    assert (v.verified == (t & (np.nan_to_num(v.q, nan=2) <= v.fdr) & (np.nan_to_num(v.auroc) > 0.5))).all()


# --------------------------------------------------------------------------- the null


def null_case(seed, signal: float):
    """400 held-out sentences, 200 units, 10 descriptors, 2,000 pairs (every unit x every descriptor).
    With ``signal``, unit u responds by ``signal`` more on the sentences holding descriptor u % 10."""
    rng = np.random.default_rng(seed)
    n, units = 400, 200
    vocab = [f"d{j}" for j in range(10)]
    holds = random_holds(rng, n, vocab, np.linspace(0.03, 0.6, 10), failed=0.05)
    resp = rng.normal(size=(n, units))
    if signal:
        for u in range(units):
            hit = np.array([h is not None and vocab[u % 10] in h for h in holds])
            resp[hit, u] += signal
    pairs = [(u, d) for u in range(units) for d in vocab]
    return resp.astype(np.float32), holds, pairs


def test_null_calibrates_without_signal():
    resp, holds, pairs = null_case(5, signal=0.0)
    v = verify(resp, holds, pairs, fdr=0.05)
    assert v.n_testable == 2000
    assert v.n_verified <= 0.05 * 2000 and v.n_verified_null <= 0.05 * 2000
    assert v.n_verified <= 5 and v.n_verified_null <= 5  # BH under the global null: ~0
    assert np.mean(v.p < 0.05) < 0.1  # raw p-values are about uniform


def test_null_is_far_below_a_planted_signal():
    resp, holds, pairs = null_case(6, signal=1.5)
    v = verify(resp, holds, pairs, fdr=0.05)
    planted_pairs = np.array([d == f"d{u % 10}" for u, d in pairs])
    assert v.verified[planted_pairs].mean() > 0.9
    assert v.n_verified >= 180 and v.n_verified_null <= 10
    assert v.n_verified > 10 * max(v.n_verified_null, 1)


def test_null_skipped_and_deterministic():
    resp, holds, pairs = null_case(7, signal=0.5)
    a = verify(resp, holds, pairs, null_seed=3)
    b = verify(resp, holds, pairs, null_seed=3)
    assert a.n_verified_null == b.n_verified_null
    assert a.to_dict() == b.to_dict()
    c = verify(resp, holds, pairs, null=None)
    assert c.n_verified_null is None and c.to_dict()["n_verified_null"] is None
    assert np.array_equal(c.p, a.p) and np.array_equal(c.verified, a.verified)  # the null changes no real result


def test_float16_and_chunking(monkeypatch):
    resp, holds, pairs = random_case(8, n=120, units=30)
    half = resp.astype(np.float16)
    ref = verify(half.astype(np.float32), holds, pairs)
    monkeypatch.setattr(verification, "_CELLS", 200)  # one unit per chunk
    monkeypatch.setattr(verification, "_GATHER", 50)  # one pair per gather batch
    small = verify(half, holds, pairs)
    assert small.to_dict() == ref.to_dict()


# --------------------------------------------------------------------------- bad input


def test_bad_input():
    resp, holds = planted()
    with pytest.raises(InvalidInput, match="holds"):
        verify(resp, holds[:-1], [(0, "cat")])
    with pytest.raises(InvalidInput, match="pairs:0"):
        verify(resp, holds, [(4, "cat")])
    with pytest.raises(InvalidInput, match="pairs:1"):
        verify(resp, holds, [(0, "cat"), (0, 3)])
    with pytest.raises(InvalidInput, match="fdr"):
        verify(resp, holds, [(0, "cat")], fdr=0.0)
    with pytest.raises(InvalidInput, match="alternative"):
        verify(resp, holds, [(0, "cat")], alternative="bigger")
    with pytest.raises(InvalidInput, match="null"):
        verify(resp, holds, [(0, "cat")], null="shuffle")
    with pytest.raises(InvalidInput, match="responses"):
        verify(resp[:, 0], holds, [(0, "cat")])
    bad = resp.copy()
    bad[3, 0] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        verify(bad, holds, [(0, "cat")])


def test_a_rare_label_name_is_warned_about_and_a_common_or_absent_one_is_not():
    from neuroscribe.workers.describe.heldout import rare_label_warnings

    labels = ["0"] * 50 + ["1"] * 50
    sets = [frozenset({"negative"}) if i == 0 else frozenset({"bad"}) for i in range(50)] \
        + [frozenset({"positive"})] * 50
    warnings = rare_label_warnings(labels, sets, {"0": "negative", "1": "positive"})
    assert len(warnings) == 1 and "'negative'" in warnings[0] and "1 of 50" in warnings[0]
    assert rare_label_warnings(labels, [frozenset({"x"})] * 100, {"0": "negative"}) == []  # absent: warned elsewhere
