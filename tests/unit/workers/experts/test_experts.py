"""Expert units: vectorised AP against sklearn (ties included), ap_matrix, concept_experts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import average_precision_score

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import ConceptExperts, ConceptSpec
from neuroscribe.workers.experts.ap import ap_matrix, average_precision, concept_experts

FEW = [-2.0, -1.0, -0.0, 0.0, 0.25, 0.5, 1.0, 3.0]  # small value sets: many ties, -0.0 == 0.0


def sk(labels, scores) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    return np.array([average_precision_score(labels, scores[:, j]) for j in range(scores.shape[1])])


@st.composite
def problems(draw, max_abs: float = 1e300):
    n = draw(st.integers(2, 40))
    n_units = draw(st.integers(1, 6))
    if draw(st.booleans()):
        values = st.sampled_from(FEW[: draw(st.integers(1, len(FEW)))])
    else:  # continuous, any magnitude (wide spans exercise the 64-bit and rank fallbacks)
        values = st.floats(-max_abs, max_abs, allow_nan=False, allow_infinity=False)
    scores = draw(hnp.arrays(np.float64, (n, n_units), elements=values))
    labels = draw(hnp.arrays(np.bool_, n)).copy()
    labels[draw(st.integers(0, n - 1))] = True
    labels[draw(st.integers(0, n - 1).filter(lambda i: labels.sum() > 1 or not labels[i]))] = False
    return scores, labels


@settings(max_examples=150, deadline=None)
@given(problems())
def test_float64_equals_sklearn_with_ties(problem):
    scores, labels = problem
    assert labels.any() and not labels.all()
    got = average_precision(scores, labels)
    assert got.dtype == np.float64 and got.shape == (scores.shape[1],)
    np.testing.assert_allclose(got, sk(labels, scores), rtol=0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(problems(max_abs=6e4), st.sampled_from([np.float32, np.float16]))
def test_narrow_floats_equal_sklearn_on_the_same_values(problem, dtype):
    scores, labels = problem
    narrow = scores.astype(dtype)
    expected = sk(labels, narrow.astype(np.float64))
    np.testing.assert_allclose(average_precision(narrow, labels), expected, rtol=0, atol=1e-9)
    tensor = torch.from_numpy(narrow)
    np.testing.assert_allclose(average_precision(tensor, torch.from_numpy(labels)), expected, rtol=0, atol=1e-9)


def test_constructed_units():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    separating = np.where(labels, 2.0, -1.0)
    constant = np.full(8, 0.7)
    reversed_ = np.arange(8.0)  # positives get the lowest scores
    ap = average_precision(np.stack([separating, constant, reversed_], axis=1), labels.astype(int))
    n_pos, n_neg = 3, 5
    reversed_ap = sum(i / (n_neg + i) for i in range(1, n_pos + 1)) / n_pos
    np.testing.assert_allclose(ap, [1.0, n_pos / 8, reversed_ap], rtol=0, atol=1e-12)


def test_bfloat16_tensor_widens_exactly():
    rng = np.random.default_rng(0)
    t = torch.from_numpy(rng.standard_normal((50, 7))).to(torch.bfloat16)  # many ties
    labels = rng.random(50) < 0.5
    expected = sk(labels, t.float().numpy())
    np.testing.assert_allclose(average_precision(t, labels), expected, rtol=0, atol=1e-9)


def test_chunks_threads_and_every_tie_regime():
    """Several chunks, 1 vs 2 threads; continuous units, a few ties, dead and constant units."""
    rng = np.random.default_rng(1)
    n, n_units = 300, 1000  # about 437 units per chunk: 3 chunks
    x = rng.standard_normal((n, n_units)).astype(np.float32)
    x[rng.integers(0, n, 40), rng.integers(0, n_units, 40)] = x[0, 0]  # a few ties
    x[:, 10] = 0.0  # a dead unit: every positive tied
    x[:, 11] = np.where(rng.random(n) < 0.5, 0.0, x[:, 11])  # ReLU-like mass at 0
    x[:, 900:] = np.maximum(x[:, 900:], 0).round(1)  # a chunk full of ties
    x[:, 12] = -x[:, 12] * 1e30  # a huge span (64-bit keys for this chunk)
    labels = rng.random(n) < 0.3
    one = average_precision(x, labels, threads=1)
    np.testing.assert_array_equal(average_precision(x, labels, threads=2), one)
    cols = np.r_[0:20, 430:445, 990:1000]
    np.testing.assert_allclose(one[cols], sk(labels, x[:, cols]), rtol=0, atol=1e-9)


def test_float64_key_paths():
    """True float64 values: non-negative, tiny mixed-sign (64-bit keys) and wide mixed-sign (ranks)."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((120, 3)).round(1) + 1e-12  # not exact in float32; ties
    labels = rng.random(120) < 0.5
    for x in (np.abs(base), base * 1e-300, base * 1e6):
        assert x.dtype == np.float64 and not np.array_equal(x.astype(np.float32), x)
        np.testing.assert_allclose(average_precision(x, labels), sk(labels, x), rtol=0, atol=1e-9)
    # magnitudes from the smallest subnormal to near the largest, both signs: keys need more bits
    for dtype, big in ((np.float32, 3e38), (np.float64, 1e300)):
        tiny = np.finfo(dtype).smallest_subnormal
        x = rng.choice(np.array([-big, -1.0, -tiny, 0.0, tiny, 2.0, big], dtype), size=(120, 4))
        np.testing.assert_allclose(average_precision(x, labels), sk(labels, x), rtol=0, atol=1e-9)


def test_errors_name_the_field():
    x = np.zeros((4, 2))
    for labels, words in [([0, 0, 0, 0], "no positives"), ([1, 1, 1, 1], "no negatives"), ([1, 0, 1], "shape")]:
        with pytest.raises(InvalidInput, match=words) as err:
            average_precision(x, labels)
        assert err.value.field == "labels"
    with pytest.raises(InvalidInput, match="0/1") as err:
        average_precision(x, [0, 2, 1, 0])
    assert err.value.field == "labels"
    for bad in (np.zeros(4), np.zeros((4, 2), complex)):
        with pytest.raises(InvalidInput) as err:
            average_precision(bad, [1, 0, 1, 0])
        assert err.value.field == "scores"
    for dtype in (np.float64, np.float32):
        nan = np.ones((4, 3), dtype)
        nan[2, 1] = np.nan
        with pytest.raises(InvalidInput, match="NaN.*unit 1") as err:
            average_precision(nan, [1, 0, 1, 0])
        assert err.value.field == "scores"


def test_ap_matrix_groups_use_their_own_rows():
    rng = np.random.default_rng(2)
    responses = {3: rng.integers(0, 4, (30, 5)).astype(np.float32), 1: torch.from_numpy(rng.standard_normal((30, 2)))}
    rows_a, rows_b = np.arange(0, 20), np.array([29, 3, 5, 7, 11, 13, 17, 19, 23])
    lab_a, lab_b = rng.random(20) < 0.5, np.array([1, 0, 1, 0, 1, 1, 0, 0, 1])
    lab_a[:2] = [True, False]
    layers, index, ap = ap_matrix(responses, {"cat": (rows_a, lab_a), "bus": (rows_b, lab_b)})
    np.testing.assert_array_equal(layers, [1, 1, 3, 3, 3, 3, 3])
    np.testing.assert_array_equal(index, [0, 1, 0, 1, 2, 3, 4])
    assert ap.shape == (7, 2) and ap.dtype == np.float64
    full = np.concatenate([responses[1].numpy(), responses[3]], axis=1).astype(np.float64)
    np.testing.assert_allclose(ap[:, 0], sk(lab_a, full[rows_a]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ap[:, 1], sk(lab_b, full[rows_b]), rtol=0, atol=1e-9)
    with pytest.raises(InvalidInput) as err:
        ap_matrix(responses, {"dog": (rows_a, np.zeros(20))})
    assert err.value.field == "groups[dog].labels"
    with pytest.raises(InvalidInput) as err:
        ap_matrix(responses, {"dog": (np.array([0, 30]), [0, 1])})
    assert err.value.field == "groups[dog]"
    with pytest.raises(InvalidInput) as err:
        ap_matrix({0: np.zeros((3, 2)), 1: np.zeros((4, 2))}, {})
    assert err.value.field == "responses"


def test_concept_experts_sorted_counted_and_validated():
    ap = np.array([0.95, 0.5, 0.99, 0.95, 0.91, 0.2, 0.95])
    layers = np.array([2, 0, 1, 0, 2, 1, 0])
    units = np.array([7, 1, 4, 9, 0, 3, 2])
    spec = ConceptSpec.from_string("cat:animal")
    ce = concept_experts(spec, ap, layers, units, [0, 1, 2, 5], tau=0.9, top_n=6, n_pos=20, n_neg=30)
    assert isinstance(ce, ConceptExperts) and (ce.concept, ce.category, ce.n_pos, ce.n_neg) == ("cat", "animal", 20, 30)
    assert [(u.layer, u.unit, u.ap) for u in ce.experts] == [
        (1, 4, 0.99), (0, 2, 0.95), (0, 9, 0.95), (2, 7, 0.95), (2, 0, 0.91)
    ]
    assert ce.counts_per_layer == {0: 2, 1: 1, 2: 2, 5: 0}
    assert [(u.layer, u.unit) for u in ce.top] == [(1, 4), (0, 2), (0, 9), (2, 7), (2, 0), (0, 1)]
    ce = concept_experts(spec, ap, layers, units, [0, 1, 2], tau=1.0, top_n=2, n_pos=1, n_neg=1)
    assert ce.experts == () and ce.counts_per_layer == {0: 0, 1: 0, 2: 0} and len(ce.top) == 2
    for tau in (0.0, -0.1, 1.5, math.nan):
        with pytest.raises(InvalidInput) as err:
            concept_experts(spec, ap, layers, units, [0, 1, 2], tau=tau, top_n=3, n_pos=1, n_neg=1)
        assert err.value.field == "tau"
    with pytest.raises(InvalidInput) as err:
        concept_experts(spec, ap, layers, units, [0, 1], tau=0.9, top_n=3, n_pos=1, n_neg=1)
    assert err.value.field == "layers"
    with pytest.raises(InvalidInput) as err:
        concept_experts(spec, ap[:3], layers, units, [0, 1, 2], tau=0.9, top_n=3, n_pos=1, n_neg=1)
    assert err.value.field == "ap"
