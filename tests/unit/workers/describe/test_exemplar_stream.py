"""The streaming pass of the describe job against the dense responses: distinct exemplars (a
duplicated sentence counts once), firing statistics (max, quantiles, threshold, density) and the
held-out half's responses, on a tiny BERT and on constructed float16 data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroscribe.workers.activations import capture_responses
from neuroscribe.workers.describe.exemplar_stream import (N_BINS, QUANTILE_LEVELS, ExemplarsArtefact, FiringStats,
                                                          ResponseHistogram, bin_ceiling, first_occurrences,
                                                          firing_rule, occurrences, stream_exemplars, text_key)
from neuroscribe.workers.describe.exemplars import dense_topk, n_exemplars
from tiny_models import tiny_subject

WORDS = "the a my cat dog bus phone battery screen is was very good bad great poor works broke".split()


def _texts(n=45, seed=0):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 8)))) for _ in range(n)]
    texts[7] = "i love this phone ."
    texts[20] = "i  love this phone .  "  # the same sentence as row 7 (whitespace)
    texts[33] = "i love this phone ."
    return texts


def _order_stat(x: np.ndarray, q: float) -> np.ndarray:
    """Per column, the ceil(q n)-th smallest value, NaN below every number (as the exemplars rank it)."""
    x = x.astype(np.float32)
    s = np.sort(np.where(np.isnan(x), -np.inf, x), axis=0)
    s[np.arange(x.shape[0])[:, None] < np.isnan(x).sum(axis=0)] = np.nan
    return s[max(1, math.ceil(q * x.shape[0])) - 1]


def _expected_firing(dense: np.ndarray, rule: str):
    """Firing statistics computed from the dense (distinct rows, units) float16 matrix."""
    quant = np.stack([bin_ceiling(_order_stat(dense, q)) for q in QUANTILE_LEVELS], axis=1)
    if rule == "zero":
        thr = np.zeros(dense.shape[1], np.float32)
    else:
        q1, q3 = (bin_ceiling(_order_stat(dense, q)).astype(np.float64) for q in (0.25, 0.75))
        thr = bin_ceiling((q3 + 1.5 * (q3 - q1)).astype(np.float16))
    n_fire = (dense.astype(np.float32) > thr).sum(axis=0)
    return thr, n_fire, dense.astype(np.float32).max(axis=0), quant


# --------------------------------------------------------------------------- histogram


def test_histogram_quantiles_and_counts_equal_the_dense_matrix():
    rng = np.random.default_rng(3)
    u = 1030  # more than one slab of units
    x = (rng.standard_normal((500, u)) * rng.uniform(0.01, 50, u) + rng.normal(0, 5, u)).astype(np.float16)
    x[:50, 0] = -0.0
    x[50:, 0] = 0.0  # a unit that is 0 almost everywhere
    x[:, 1] = np.maximum(x[:, 1], 0)  # ReLU-like: half zeros
    x[3, 2] = np.nan
    h = ResponseHistogram(u)
    for s in range(0, 500, 64):  # in chunks
        h.update(x[s:s + 64])
    assert h.n == 500 and h.counts.shape == (u, N_BINS) and (h.counts.sum(axis=1) == 500).all()
    for rule in ("zero", "fence"):
        f = FiringStats.from_histogram(h, np.nanmax(x.astype(np.float32), axis=0), rule)
        thr, n_fire, _, quant = _expected_firing(x, rule)
        np.testing.assert_array_equal(f.quantiles, quant)
        np.testing.assert_array_equal(f.threshold, thr)
        np.testing.assert_array_equal(f.n_firing, n_fire)
        np.testing.assert_allclose(f.density, n_fire / 500)
    exact = _order_stat(x, 0.5)
    ok = np.isfinite(exact)
    got = h.quantiles([0.5])[:, 0]
    assert (got[ok] >= exact[ok]).all() and (got[ok] - exact[ok] <= np.abs(exact[ok]) / 32 + 1e-7).all()
    assert f.n_firing[0] == 0 and FiringStats.from_histogram(h, x.max(axis=0), "zero").threshold[0] == 0.0


def test_bins_keep_zero_alone_and_order():
    v = np.array([-65504, -1, -1e-7, -0.0, 0.0, 6e-8, 1e-3, 1, 65504], np.float16)
    c = bin_ceiling(v)
    assert c[3] == 0.0 and c[4] == 0.0 and c[2] < 0 and c[5] > 0  # 0 is its bin's largest value
    assert (np.diff(c) >= 0).all() and (c >= v.astype(np.float32)).all()
    assert np.isnan(bin_ceiling(np.array([np.nan], np.float16))[0])


def test_firing_rule_per_site():
    assert firing_rule("bert", "mlp_post") == "zero" and firing_rule("gpt_neox", "mlp_post") == "zero"
    assert firing_rule("bert", "residual") == "fence" and firing_rule("llama", "mlp_post") == "fence"


def test_distinct_rows_and_counts():
    texts = ["a b", "a  b ", "c", "a b", "c "]
    assert first_occurrences(texts).tolist() == [0, 2]
    assert first_occurrences(texts, [1, 3, 4]).tolist() == [1, 4]
    assert occurrences(texts).tolist() == [3, 3, 2, 3, 2] and text_key(" a\tb ") == "a b"


# --------------------------------------------------------------------------- the stream on a tiny BERT


@pytest.fixture(scope="module")
def bert():
    return tiny_subject("bert")


@pytest.mark.parametrize("site,pooling", [("mlp_post", "cls"), ("mlp_post", "max"), ("residual", "mean")])
def test_stream_equals_dense(bert, site, pooling, tmp_path):
    texts = _texts()
    n = len(texts)
    rng = np.random.default_rng(1)
    perm = rng.permutation(n)
    halves = [np.sort(perm[: n // 2]), np.sort(perm[n // 2:])]
    ex = stream_exemplars(bert, texts, top_percent=20, halves=halves, site=site, pooling=pooling, batch_size=1,
                          window=7, keep_half=1, progress=False)
    dense = capture_responses(bert, texts, site=site, pooling=pooling, batch_size=1, progress=False).matrix()
    distinct = first_occurrences(texts)
    assert len(distinct) == n - 2 and 20 not in distinct and 33 not in distinct
    # exemplars: the top k of the distinct rows, ties to the lower row
    k = n_exemplars(len(distinct), 20)
    idx, vals = dense_topk(dense[distinct], k)
    assert ex.k == k
    np.testing.assert_array_equal(ex.rows, distinct[idx])
    np.testing.assert_array_equal(ex.values, vals)
    assert not np.isin(ex.rows, [20, 33]).any()  # the repeats of row 7 never take a slot
    assert all(len({text_key(texts[r]) for r in row}) == k for row in ex.rows)
    for h, (rows, values) in zip(halves, ex.halves):
        d = first_occurrences(texts, h)
        i, v = dense_topk(dense[d], n_exemplars(len(d), 20))
        np.testing.assert_array_equal(rows, d[i])
        np.testing.assert_array_equal(values, v)
    # firing statistics over the distinct sentences
    rule = firing_rule("bert", site)
    thr, n_fire, mx, quant = _expected_firing(dense[distinct], rule)
    f = ex.firing
    assert f.rule == rule and f.n_sentences == len(distinct) and f.levels == QUANTILE_LEVELS
    np.testing.assert_array_equal(f.threshold, thr)
    np.testing.assert_array_equal(f.n_firing, n_fire)
    np.testing.assert_array_equal(f.maximum, mx)
    np.testing.assert_array_equal(f.quantiles, quant)
    np.testing.assert_allclose(f.density, n_fire / len(distinct))
    # the held-out half: every unit on every row of halves[1], duplicates included, in its order
    assert ex.heldout.dtype == np.float16 and ex.heldout.shape == (len(halves[1]), dense.shape[1])
    np.testing.assert_array_equal(ex.heldout, dense[halves[1]])
    # saved and loaded with the other arrays
    art = ExemplarsArtefact(ex.layers, ex.units_per_layer, ex.k, ex.rows, ex.values, ex.halves, {"site": site},
                            ex.firing, ex.heldout)
    art.save(tmp_path / "ex")
    assert (tmp_path / "ex" / ExemplarsArtefact.HELDOUT_FILE).is_file()
    back = ExemplarsArtefact.load(tmp_path / "ex")
    np.testing.assert_array_equal(back.heldout, ex.heldout)
    assert back.heldout.dtype == np.float16
    np.testing.assert_array_equal(np.load(tmp_path / "ex" / ExemplarsArtefact.HELDOUT_FILE, allow_pickle=False),
                                  dense[halves[1]])
    for a in ("threshold", "n_firing", "maximum", "quantiles"):
        np.testing.assert_array_equal(getattr(back.firing, a), getattr(f, a))
    assert (back.firing.rule, back.firing.n_sentences, back.firing.levels) == (f.rule, f.n_sentences, f.levels)


def test_stream_without_halves_keeps_no_matrix(bert):
    ex = stream_exemplars(bert, _texts()[:12], top_percent=50, progress=False)
    assert ex.heldout is None and ex.halves == [] and ex.firing.n_sentences == 12
