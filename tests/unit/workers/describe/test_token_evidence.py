"""Token-level evidence of the describe job (docs/methods.md#b3, format: docs/atlas.md): per-token
values that pool back to the stored responses, spans that index the text, quantile samples
ordered by level, the exact mean and the display histogram, on tiny models and constructed data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuroscribe.workers.activations import capture_responses
from neuroscribe.workers.describe.exemplar_stream import (N_BINS, ExemplarsArtefact, ResponseHistogram, bin_ceiling,
                                                          first_occurrences, stream_exemplars)
from neuroscribe.workers.describe.token_evidence import (LEVELS, TokenEvidence, quantile_samples, sample_rows,
                                                         token_evidence)
from neuroscribe.workers.describe.unit_summary import HIST_BINS, UnitMoments, display_histogram
from tiny_models import VOCAB, tiny_subject

WORDS = "the a my cat dog bus phone battery screen is was very good bad great poor works broke".split()


def _texts(n=60, seed=0):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(n)]
    texts[5] = "The  cat is VERY good ."  # upper case and spaces: spans must still index the text
    texts[11] = "the cat is very good ."  # the same sentence as row 5? no: case differs, a distinct text
    texts[40] = texts[3] + " "  # a repeat of row 3 (whitespace): never an exemplar nor a sample
    return texts


def _evidence(arch: str, pooling: str, texts=None, **kw):
    subject = tiny_subject(arch)
    texts = _texts() if texts is None else texts
    ex = stream_exemplars(subject, texts, top_percent=10, pooling=pooling, batch_size=4, window=16, progress=False)
    art = ExemplarsArtefact(ex.layers, ex.units_per_layer, ex.k, ex.rows, ex.values, ex.halves, {}, ex.firing, None,
                            ex.summary)
    return texts, art, token_evidence(subject, texts, art, site="mlp_post", pooling=pooling, batch_size=5,
                                      progress=False, **kw)


@pytest.fixture(scope="module")
def bert_max():
    return _evidence("bert", "max")


@pytest.mark.parametrize("arch,pooling", [("bert", "max"), ("bert", "mean"), ("llama", "max"), ("llama", "last"),
                                          ("gpt2", "mean")])
def test_per_token_values_pool_to_the_response(arch, pooling):
    _, art, ev = _evidence(arch, pooling)
    n, e = ev.rows.shape
    assert n == art.rows.shape[0] and e == art.k + len(LEVELS)
    np.testing.assert_array_equal(ev.rows[:, :art.k], art.rows)  # top exemplars first, in the stream's order
    np.testing.assert_array_equal(ev.activation[:, :art.k], art.values)
    pool = {"max": np.max, "mean": np.mean, "last": lambda t: t[-1]}[pooling]
    for i in range(n):
        for j in range(e):
            t = ev.tokens(i, j).astype(np.float64)
            assert t.size == ev.length[i, j] > 0
            # float16 precision: exact for max and last (rounding commutes), one float16 step for the mean
            tol = 0.0 if pooling != "mean" else 2.0 ** -10 * max(1.0, float(np.abs(t).max()))
            assert abs(pool(t) - ev.activation[i, j]) <= tol, (i, j)


def test_format_shapes_and_dtypes(bert_max):
    texts, art, ev = bert_max
    n, upl = art.rows.shape[0], art.units_per_layer
    e = art.k + len(LEVELS)
    expect = {"layer": (np.int32, (n,)), "unit": (np.int32, (n,)), "rows": (np.int32, (n, e)),
              "kind": (np.int8, (n, e)), "activation": (np.float32, (n, e)), "offset": (np.int64, (n, e)),
              "length": (np.int32, (n, e)), "mean": (np.float32, (n,)), "hist_counts": (np.int32, (n, HIST_BINS)),
              "hist_edges": (np.float32, (n, HIST_BINS + 1))}
    for name, (dtype, shape) in expect.items():
        a = getattr(ev, name)
        assert a.dtype == dtype and a.shape == shape, name
    assert ev.values.dtype == np.float16 and ev.values.size == int(ev.length.sum())
    assert ev.layer.tolist() == [la for la in art.layers for _ in range(upl)]
    assert ev.unit.tolist() == list(range(upl)) * len(art.layers)
    assert (ev.kind == [0] * art.k + list(range(1, len(LEVELS) + 1))).all()
    assert (ev.rows >= 0).all() and not np.isin(ev.rows, [40]).any()  # distinct sentences only
    # memory: each (unit, sentence) holds that sentence's real tokens only, laid out one after the other
    np.testing.assert_array_equal(ev.offset.ravel(), np.concatenate([[0], np.cumsum(ev.length.ravel())[:-1]]))
    # the pass ran over the union of the rows named, a subset of the distinct sentences
    assert set(ev.spans) == set(ev.rows.ravel().tolist()) and set(ev.spans) <= set(first_occurrences(texts).tolist())
    assert (ev.site, ev.pooling, ev.max_length, ev.levels) == ("mlp_post", "max", 128, LEVELS)


def test_spans_index_the_text_and_count_the_real_tokens(bert_max):
    texts, _, ev = bert_max
    for i in range(ev.rows.shape[0]):
        for j in range(ev.rows.shape[1]):
            assert len(ev.spans[int(ev.rows[i, j])]) == ev.length[i, j]
    for row, spans in ev.spans.items():
        text = texts[row]
        words = [text[s:e] for s, e in spans]
        assert all(0 <= s < e <= len(text) for s, e in spans)
        assert [w.lower() for w in words] == text.lower().split()  # [CLS] and [SEP] are not real tokens
        assert all(w.lower() in VOCAB for w in words)
    if 5 in ev.spans:
        assert [texts[5][s:e] for s, e in ev.spans[5]][:4] == ["The", "cat", "is", "VERY"]


def test_quantile_samples_are_ordered_by_level(bert_max):
    texts, art, ev = bert_max
    fs = art.firing
    cols = [fs.levels.index(q) for q in LEVELS]
    q = fs.quantiles[:, cols]
    spread = np.flatnonzero((np.diff(q, axis=1) > 0.05 * np.abs(q).max(axis=1, keepdims=True)).all(axis=1))
    assert spread.size > 10
    samples = ev.activation[:, art.k:]
    assert (np.diff(samples[spread], axis=1) >= 0).all()  # nearest to increasing targets: never decreasing
    assert (np.diff(samples, axis=1) >= 0).all()
    # every sample is the sampled sentence nearest its target
    drawn = sample_rows(texts, 200, 0)
    dense = capture_responses(tiny_subject("bert"), [texts[r] for r in drawn], pooling="max", batch_size=7,
                              progress=False).matrix().astype(np.float32)
    for u in spread[:20]:
        for j in range(len(LEVELS)):
            best = np.abs(dense[:, u] - q[u, j]).min()
            assert abs(samples[u, j] - q[u, j]) == pytest.approx(best, abs=1e-6)
            assert ev.rows[u, art.k + j] in drawn


def test_quantile_samples_pick_the_nearest_lower_index_on_ties():
    resp = np.array([[0.0, np.nan], [1.0, np.nan], [2.0, 1.0], [3.0, np.nan]], np.float32)
    got = quantile_samples(resp, np.array([[0.5, 1.6], [5.0, 0.0]], np.float32))
    assert got.tolist() == [[0, 2], [2, 2]]


def test_sample_is_seeded_and_distinct():
    texts = [f"s {i % 300}" for i in range(400)]
    a, b = sample_rows(texts, 200, 3), sample_rows(texts, 200, 3)
    assert np.array_equal(a, b) and a.size == 200 and (a < 300).all() and (np.diff(a) > 0).all()
    assert not np.array_equal(a, sample_rows(texts, 200, 4))
    assert sample_rows(texts[:50], 200, 3).tolist() == list(range(50))


def test_mean_and_histogram_over_the_distinct_sentences(bert_max):
    texts, art, ev = bert_max
    dense = capture_responses(tiny_subject("bert"), texts, pooling="max", progress=False).matrix()
    d = dense[first_occurrences(texts)]
    np.testing.assert_allclose(ev.mean, d.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ev.hist_edges[:, 0], d.min(axis=0).astype(np.float32))
    np.testing.assert_array_equal(ev.hist_edges[:, -1], d.max(axis=0).astype(np.float32))
    assert (ev.hist_counts.sum(axis=1) == len(d)).all()


def test_display_histogram_is_within_one_fixed_bin_of_the_exact_one():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3000, 40)) * rng.uniform(0.1, 20, 40) + rng.normal(0, 5, 40)).astype(np.float16)
    x[:, 0] = 1.5  # constant
    x[:, 1] = np.maximum(x[:, 1], 0)
    h, m = ResponseHistogram(40), UnitMoments(40)
    for s in range(0, 3000, 512):
        h.update(x[s:s + 512])
        m.update(x[s:s + 512])
    s = m.summary(h.counts, _all_ceilings(), x.max(axis=0).astype(np.float32))
    xf = x.astype(np.float64)
    np.testing.assert_allclose(s.mean, xf.mean(axis=0), rtol=1e-6)
    assert (s.hist_counts.sum(axis=1) == 3000).all() and s.hist_counts[0, -1] == 3000
    for u in range(1, 40):
        edges = s.hist_edges[u].astype(np.float64)
        exact = np.histogram(xf[:, u], bins=edges)[0]
        err = np.abs(np.cumsum(s.hist_counts[u]) - np.cumsum(exact))[:-1]
        # a value can cross a display edge only when its fixed bin (<= 2^-5 of the value wide) straddles it
        near = [(np.abs(xf[:, u] - e) <= np.abs(e) / 16 + 1e-3).sum() for e in edges[1:-1]]
        assert (err <= near).all(), u
        assert np.abs(s.hist_counts[u] - exact).sum() <= 0.1 * 3000  # typically ~1% (each misplaced count twice)


def _all_ceilings() -> np.ndarray:
    """The largest float16 value of each fixed bin (-inf: a bin with none, NaN: bin 0), found through
    ``ResponseHistogram`` itself: each float16 value is one unit's only response."""
    values = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    out = np.full(N_BINS, -np.inf, np.float32)
    for s in range(0, values.size, 1024):
        h = ResponseHistogram(1024)
        h.update(values[None, s:s + 1024])
        np.maximum.at(out, h.counts.argmax(axis=1), np.nan_to_num(values[s:s + 1024].astype(np.float32), nan=-np.inf))
    out[0] = np.nan
    return out


def test_display_histogram_of_nan_units_is_empty():
    counts = np.zeros((2, N_BINS), np.uint32)
    counts[0, 0] = 10  # NaN responses: bin 0
    hc, he = display_histogram(counts, np.full(N_BINS, np.nan, np.float32), np.array([np.nan, 0.0]),
                               np.array([np.nan, 1.0]), 4)
    assert hc.tolist() == [[0] * 4, [0] * 4] and np.isnan(he[0]).all() and he[1].tolist() == [0, 0.25, 0.5, 0.75, 1]


def test_save_load_round_trip_and_json_format(bert_max, tmp_path):
    texts, art, ev = bert_max
    ev.save(tmp_path)
    meta = json.loads((tmp_path / "token_evidence.json").read_text())
    assert list(meta) == ["levels", "site", "pooling", "max_length", "sentences"]
    assert meta["levels"] == list(LEVELS) and all(isinstance(k, str) for k in meta["sentences"])
    with np.load(tmp_path / "token_evidence.npz") as z:
        assert set(z.files) == set(TokenEvidence.ARRAYS)
    back = TokenEvidence.load(tmp_path)
    for name in TokenEvidence.ARRAYS:
        np.testing.assert_array_equal(getattr(back, name), getattr(ev, name))
    assert back.spans == ev.spans and back.levels == ev.levels and TokenEvidence.load(tmp_path / "none") is None
    # the exemplars artefact keeps the summary between the stages
    art.save(tmp_path / "ex")
    again = ExemplarsArtefact.load(tmp_path / "ex")
    np.testing.assert_array_equal(again.summary.hist_counts, art.summary.hist_counts)
    np.testing.assert_array_equal(again.summary.mean, art.summary.mean)
