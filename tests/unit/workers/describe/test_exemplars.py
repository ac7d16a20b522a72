"""Exemplars: streaming top-k equals the dense answer (ties, NaN, any chunking), n_exemplars, memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.describe.exemplars import TopKExemplars, dense_topk, n_exemplars, row_chunks, top_exemplars

FEW = [-np.inf, -2.0, -0.5, -0.0, 0.0, 0.1, 0.5, 1.0, 65504.0, np.inf, np.nan]  # many ties, -0.0 == 0.0


def stream(matrix, k, sizes, order=None):
    """TopKExemplars over chunks of the given sizes (cycled), in the given order of chunks."""
    bounds, start, i = [], 0, 0
    while start < matrix.shape[0]:
        b = sizes[i % len(sizes)]
        bounds.append((start, min(start + b, matrix.shape[0])))
        start, i = start + b, i + 1
    if order is not None:
        bounds = [bounds[j] for j in order(len(bounds))]
    topk = TopKExemplars(matrix.shape[1], k)
    for a, b in bounds:
        topk.update(a, matrix[a:b])
        assert topk.buffer.shape == (matrix.shape[1], k)
    return topk.result()


def assert_same(got, ref):
    assert got[0].dtype == np.int64 and got[1].dtype == np.float32
    assert got[0].shape == got[1].shape == ref[0].shape
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])  # NaN == NaN here


def tied_responses(n, units, seed=0):
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((n, units)), -0.3).round(1)  # negatives, zeros, steps of 0.1
    return x.astype(np.float16)


# --------------------------------------------------------------------------- n_exemplars


@pytest.mark.parametrize(
    "n, k, expected",
    [(1000, 1, 10), (150, 1, 2), (50, 1, 1), (1, 1, 1), (20_000, 1, 200), (1000, 0.1, 1), (1000, 0.3, 3),
     (7, 100, 7), (199, 50, 100), (3, 1e-9, 1), (1000, 2.5, 25)],
)
def test_n_exemplars_rounds_up_exactly(n, k, expected):
    assert n_exemplars(n, k) == expected


def test_n_exemplars_default_is_one_percent():
    assert n_exemplars(1000) == 10


@pytest.mark.parametrize("k", [0, 0.0, -1, -0.5])
def test_k_so_small_the_set_is_empty_names_the_field_and_the_fix(k):
    with pytest.raises(InvalidInput) as err:
        n_exemplars(150, k)
    assert err.value.field == "top_percent"
    msg = err.value.message
    assert "150 sentences" in msg and "no exemplars" in msg
    assert "0.6667" in msg  # 100/150: any k up to it gives exactly one exemplar per unit
    assert "top_percent > 0" in msg


@pytest.mark.parametrize("k", [100.5, 1e9, float("nan"), float("inf"), "one"])
def test_top_percent_out_of_range(k):
    with pytest.raises(InvalidInput) as err:
        n_exemplars(100, k)
    assert err.value.field == "top_percent"


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_n_sentences_must_be_positive_integer(n):
    with pytest.raises(InvalidInput) as err:
        n_exemplars(n, 1)
    assert err.value.field == "n_sentences"


# --------------------------------------------------------------------------- streaming == dense


@pytest.mark.parametrize("k", [2, 5, 13])
def test_streaming_equals_dense_with_many_ties_whatever_the_chunking(k):
    x = tied_responses(103, 17)  # 103 is prime: no chunk size divides it
    assert len(np.unique(x)) < 40  # really many ties
    ref = dense_topk(x, k)
    for size in (1, 7, k - 1, k, k + 1, x.shape[0]):
        assert_same(stream(x, k, [size]), ref)
    assert_same(stream(x, k, [3, 1, 20, 2]), ref)  # uneven chunks
    rng = np.random.default_rng(k)
    assert_same(stream(x, k, [9], order=lambda m: rng.permutation(m)), ref)  # chunks out of order
    assert_same(stream(x, k, [4], order=lambda m: range(m - 1, -1, -1)), ref)  # backwards


def test_dense_reference_is_a_stable_argsort_of_minus_values():
    x = tied_responses(60, 5, seed=3)
    idx, val = dense_topk(x, 6)
    for u in range(5):
        col = x[:, u].astype(np.float64)
        expected = sorted(range(60), key=lambda i: (-col[i], i))[:6]
        assert idx[u].tolist() == expected
        np.testing.assert_array_equal(val[u], col[expected].astype(np.float32))


def test_ties_go_to_the_lower_row():
    x = np.array([[1.0], [2.0], [2.0], [1.0], [2.0], [2.0]], np.float16)
    idx, val = stream(x, 3, [1])
    assert idx.tolist() == [[1, 2, 4]] and val.tolist() == [[2.0, 2.0, 2.0]]
    idx, _ = stream(x, 3, [2], order=lambda m: range(m - 1, -1, -1))
    assert idx.tolist() == [[1, 2, 4]]


def test_minus_zero_ties_with_zero():
    x = np.array([[-0.0], [0.0], [-0.0], [-1.0]], np.float32)
    idx, val = stream(x, 3, [1])
    assert idx.tolist() == [[0, 1, 2]]
    assert val.tolist() == [[0.0, 0.0, 0.0]]
    assert_same((idx, val), dense_topk(x, 3))


def test_all_negative_values():
    rng = np.random.default_rng(1)
    x = (-rng.random((50, 6)) * 10).round(1).astype(np.float32)
    ref = dense_topk(x, 4)
    assert (ref[1] < 0).all()
    for size in (1, 3, 4, 5, 50):
        assert_same(stream(x, 4, [size]), ref)
    np.testing.assert_array_equal(ref[1], -np.sort(-x, axis=0)[:4].T)


def test_nan_ranks_below_every_number_and_is_never_chosen_first():
    x = np.array([[np.nan, np.nan], [-np.inf, np.nan], [np.nan, np.nan], [-5.0, np.nan], [np.nan, 1.0]], np.float16)
    idx, val = stream(x, 4, [2])
    assert idx[0].tolist() == [3, 1, 0, 2]  # -5, -inf, then NaNs by row
    np.testing.assert_array_equal(val[0], [-5.0, -np.inf, np.nan, np.nan])
    assert idx[1].tolist() == [4, 0, 1, 2]
    assert_same((idx, val), dense_topk(x, 4))
    idx, val = stream(x, 2, [1])
    assert not np.isnan(val[0]).any()


def test_dtypes_same_values_same_answer():
    x16 = tied_responses(40, 7, seed=5)
    ref = dense_topk(x16, 3)
    for arr in (x16, x16.astype(np.float32), x16.astype(np.float64), torch.from_numpy(x16)):
        topk = TopKExemplars(7, 3)
        topk.update(0, arr)
        assert_same(topk.result(), ref)
    ints = np.arange(24).reshape(8, 3) % 5
    assert_same(stream(ints, 2, [3]), dense_topk(ints.astype(np.float32), 2))


@st.composite
def problems(draw):
    n = draw(st.integers(1, 30))
    units = draw(st.integers(1, 5))
    k = draw(st.integers(1, n))
    values = st.sampled_from(FEW[: draw(st.integers(2, len(FEW)))])
    if draw(st.booleans()):
        values = st.floats(-1e4, 1e4, width=16) | values
    dtype = draw(st.sampled_from([np.float16, np.float32]))
    x = draw(hnp.arrays(np.float16, (n, units), elements=values)).astype(dtype)
    sizes = draw(st.lists(st.integers(1, n + 2), min_size=1, max_size=4))
    perm = draw(st.permutations(range(64)))
    return x, k, sizes, perm


@settings(max_examples=200, deadline=None)
@given(problems())
def test_streaming_equals_dense_property(problem):
    x, k, sizes, perm = problem
    order = lambda m: [j for j in perm if j < m] if m <= 64 else range(m)  # noqa: E731
    assert_same(stream(x, k, sizes, order=order), dense_topk(x, k))


# --------------------------------------------------------------------------- memory


def test_never_holds_more_than_k_plus_chunk_rows_per_unit():
    x = tied_responses(500, 9, seed=7)
    k = 12
    for size in (1, 5, 12, 40, 500):
        topk = TopKExemplars(9, k)
        for offset, chunk in row_chunks(x, size):
            topk.update(offset, chunk)
            assert topk.buffer.shape == (9, k)
            assert topk.peak_width <= k + size
        assert topk.rows_seen == 500
        assert_same(topk.result(), dense_topk(x, k))
    assert not topk.buffer.flags.writeable


def test_later_chunks_touch_only_competing_entries():
    x = np.sort(tied_responses(300, 4, seed=2), axis=0)[::-1].copy()  # best rows first
    topk = TopKExemplars(4, 3)
    for offset, chunk in row_chunks(x, 50):
        topk.update(offset, chunk)
    assert topk.peak_width == 3 + 50  # only the first chunk competed in full
    assert_same(topk.result(), dense_topk(x, 3))


# --------------------------------------------------------------------------- one pass, helpers, bad input


def test_top_exemplars_over_a_memory_mapped_layer(tmp_path):
    x = tied_responses(250, 11, seed=9)
    np.save(tmp_path / "layer_000.npy", x)
    mm = np.load(tmp_path / "layer_000.npy", mmap_mode="r")
    idx, val = top_exemplars(row_chunks(mm, 64), 250, top_percent=2)  # ceil(5) = 5 per unit
    assert idx.shape == (11, 5)
    assert_same((idx, val), dense_topk(x, 5))
    with pytest.raises(InvalidInput, match="rows given, expected 300"):
        top_exemplars(row_chunks(mm, 64), 300)
    with pytest.raises(InvalidInput, match="more than n_sentences"):
        top_exemplars(row_chunks(mm, 64), 100)
    with pytest.raises(InvalidInput):
        top_exemplars(iter(()), 10)


def test_bad_chunks_are_rejected():
    topk = TopKExemplars(3, 2)
    topk.update(0, np.zeros((4, 3), np.float16))
    for offset in (0, 3, 2):
        with pytest.raises(InvalidInput) as err:
            topk.update(offset, np.zeros((2, 3), np.float16))
        assert err.value.field == "offset"
    with pytest.raises(InvalidInput, match="outside"):
        topk.update(-1, np.zeros((1, 3), np.float16))
    with pytest.raises(InvalidInput, match="units"):
        topk.update(10, np.zeros((1, 4), np.float16))
    with pytest.raises(InvalidInput):
        topk.update(10, np.zeros(3, np.float16))
    with pytest.raises(InvalidInput, match="float32 cannot hold"):
        topk.update(10, np.full((1, 3), 0.1, np.float64))
    topk.update(4, np.zeros((0, 3), np.float16))  # empty chunk: fine
    topk.update(6, np.ones((1, 3), np.float16))  # gap before: fine, rows keep their numbers
    topk.update(5, np.ones((1, 3), np.float16))  # fills the gap
    assert topk.result()[0].tolist() == [[5, 6]] * 3


def test_fewer_rows_than_k():
    topk = TopKExemplars(2, 5)
    topk.update(0, np.ones((3, 2), np.float32))
    with pytest.raises(InvalidInput) as err:
        topk.result()
    assert err.value.field == "k"
    with pytest.raises(InvalidInput):
        TopKExemplars(0, 1)
    with pytest.raises(InvalidInput):
        TopKExemplars(2, 0)
    with pytest.raises(InvalidInput):
        dense_topk(np.ones((3, 2), np.float16), 4)
