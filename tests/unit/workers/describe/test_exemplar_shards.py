"""The describe job's exemplars pass in shards of sentences: every shard count and merge order gives
what the unsharded ``stream_exemplars`` gives, array for array (tiny BERT and Llama, both firing
rules, duplicates and exact ties across shards, with and without halves); constructed float16 data
with ties, -0.0 and NaN; shards saved and loaded; merges of shards that do not belong together
refused."""

from __future__ import annotations

import json
import random
from fractions import Fraction

import numpy as np
import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations import capture_responses
from neuroscribe.workers.describe.exemplar_shards import (ExemplarShard, merge_exemplar_shards, partial_exemplars,
                                                          shard_ranges)
from neuroscribe.workers.describe.exemplar_state import ExemplarAccumulator, ExemplarPlan, merge_shards
from neuroscribe.workers.describe.exemplar_stream import ExemplarsArtefact, first_occurrences, stream_exemplars
from neuroscribe.workers.describe.exemplars import TopKExemplars, dense_topk, merge_candidates, n_exemplars
from neuroscribe.workers.describe.unit_summary import UnitMoments
from tiny_models import tiny_subject

WORDS = "the a my cat dog bus phone battery screen is was very good bad great poor works broke".split()
# words outside the tiny tokenizer's vocabulary: each sentence below is "[CLS] [UNK] [UNK] [SEP]",
# distinct texts with identical responses -- exact ties, spread over every shard
TIED = [5, 17, 18, 29, 40, 44, 51]
DUPLICATE = (3, 33)  # row 33 repeats row 3 (another shard): never an exemplar, not in the statistics


def _texts(n=56, seed=0):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(n)]
    for i, r in enumerate(TIED):
        texts[r] = f"zebra{i} okapi{i}"
    texts[DUPLICATE[1]] = "  " + texts[DUPLICATE[0]]
    return texts


def _halves(n, seed=1):
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(perm[: n // 2]), np.sort(perm[n // 2:])]


def _artefact_files(ex, folder):
    """The exemplars stage's saved artefact: json text and every array."""
    ExemplarsArtefact(ex.layers, ex.units_per_layer, ex.k, ex.rows, ex.values, ex.halves, {"n_saturated": ex.n_saturated},
                      ex.firing, ex.heldout, ex.summary).save(folder)
    with np.load(folder / "exemplars.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    held = folder / ExemplarsArtefact.HELDOUT_FILE
    return (folder / "exemplars.json").read_text(), arrays, np.load(held) if held.is_file() else None


def assert_same_result(got, ref, tmp_path):
    """Every array equal (NaN == NaN), every field equal, the saved artefacts equal byte for byte."""
    assert (got.layers, got.units_per_layer, got.k, got.n_saturated) == (ref.layers, ref.units_per_layer, ref.k,
                                                                         ref.n_saturated)
    assert len(got.halves) == len(ref.halves)
    for (gr, gv), (rr, rv) in zip(got.halves, ref.halves):
        assert np.array_equal(gr, rr) and np.array_equal(gv, rv, equal_nan=True)
    assert got.firing.meta() == ref.firing.meta()
    g_json, g_arrays, g_held = _artefact_files(got, tmp_path / "got")
    r_json, r_arrays, r_held = _artefact_files(ref, tmp_path / "ref")
    assert g_json == r_json and set(g_arrays) == set(r_arrays)
    for name in r_arrays:
        assert g_arrays[name].dtype == r_arrays[name].dtype, name
        assert np.array_equal(g_arrays[name], r_arrays[name], equal_nan=True), name
    assert (g_held is None) == (r_held is None) and (g_held is None or np.array_equal(g_held, r_held, equal_nan=True))


# --------------------------------------------------------------------------- ranges


def test_shard_ranges_tile_the_rows_on_window_boundaries():
    assert shard_ranges(50, 3, window=8) == [range(0, 24), range(24, 40), range(40, 50)]
    assert shard_ranges(50, 1, window=8) == [range(0, 50)]
    assert shard_ranges(10, 4, window=8) == [range(0, 8), range(8, 10)]  # two windows: two shards
    assert shard_ranges(50, rows_per_shard=20, window=8) == [range(0, 24), range(24, 48), range(48, 50)]
    for n, s, w in [(1, 1, 1), (2049, 4, 2048), (20_000, 4, 2048), (7, 7, 1), (100, 6, 7)]:
        rs = shard_ranges(n, s, window=w)
        assert [x for r in rs for x in r] == list(range(n)) and all(len(r) for r in rs)
        assert all(r.start % w == 0 for r in rs) and len(rs) == min(s, -(-n // w))
        assert max(len(r) for r in rs) - min(len(r) for r in rs[:-1] or rs) <= w
    for kwargs, field in [(dict(n_rows=0, n_shards=2), "n_rows"), (dict(n_rows=5, n_shards=0), "n_shards"),
                          (dict(n_rows=5), "n_shards"), (dict(n_rows=5, n_shards=2, rows_per_shard=2), "n_shards"),
                          (dict(n_rows=5, n_shards=2, window=0), "window"), (dict(n_rows=5, rows_per_shard=-1),
                                                                             "rows_per_shard")]:
        with pytest.raises(InvalidInput) as e:
            shard_ranges(**kwargs)
        assert e.value.field == field


# --------------------------------------------------------------------------- tiny models


CASES = {  # arch, site, pooling -> the firing rule it gets
    "bert-zero": ("bert", "mlp_post", "cls", "zero"),
    "llama-fence": ("llama", "mlp_post", "max", "fence"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("with_halves", [True, False])
def test_shards_merge_to_the_unsharded_result(case, with_halves, tmp_path):
    arch, site, pooling, rule = CASES[case]
    subject = tiny_subject(arch)
    texts = _texts()
    n = len(texts)
    opts = dict(top_percent=20, site=site, pooling=pooling, batch_size=3, window=8, progress=False)
    if with_halves:
        opts.update(halves=_halves(n), keep_half=1)
    ref = stream_exemplars(subject, texts, **opts)
    assert ref.firing.rule == rule
    # the data does what the test needs: exact ties spread over the shards, a duplicate in another shard
    dense = capture_responses(subject, texts, site=site, pooling=pooling, progress=False).matrix()
    assert all(np.array_equal(dense[r], dense[TIED[0]]) for r in TIED)
    assert not np.isin(ref.rows, DUPLICATE[1]).any() and ref.firing.n_sentences == n - 1
    assert any(np.isin(row, TIED).sum() >= 2 for row in ref.rows)  # tied rows side by side among the exemplars
    assert any(row[-1] in TIED and not set(TIED) <= set(row) for row in ref.rows)  # a tie split by the k-th slot
    rng = random.Random(7)
    for n_shards in (1, 2, 3, 4):
        ranges = shard_ranges(n, n_shards, window=8)
        assert len(ranges) == n_shards
        shards = [partial_exemplars(subject, texts, r, **opts) for r in ranges]
        for _ in range(2):
            rng.shuffle(shards)
            assert_same_result(merge_exemplar_shards(shards), ref, tmp_path / f"{n_shards}-{rng.random()}")


def test_a_shard_round_trips_and_merges_from_folders(tmp_path):
    subject = tiny_subject("bert")
    texts = _texts()
    opts = dict(top_percent=20, halves=_halves(len(texts)), keep_half=1, batch_size=4, window=8, progress=False)
    ranges = shard_ranges(len(texts), 3, window=8)
    shards = [partial_exemplars(subject, texts, r, **opts) for r in ranges]
    for i, s in enumerate(shards):
        s.save(tmp_path / f"s{i}")
    assert sorted(p.name for p in (tmp_path / "s0").iterdir()) == ["exemplar_shard.json", "exemplar_shard.npz"]
    back = ExemplarShard.load(tmp_path / "s1")
    s = shards[1]
    assert back.meta() == s.meta() and back.rows == (ranges[1].start, ranges[1].stop)
    for (br, bv), (sr, sv) in zip(back.candidates, s.candidates):
        assert br.dtype == np.int64 and np.array_equal(br, sr) and np.array_equal(bv, sv, equal_nan=True)
    assert np.array_equal(back.histogram.counts, s.histogram.counts) and np.array_equal(back.kept, s.kept)
    for name, a in s.moments.arrays().items():
        assert np.array_equal(back.moments.arrays()[name], a, equal_nan=True)
    ref = stream_exemplars(subject, texts, **opts)
    assert_same_result(merge_exemplar_shards([tmp_path / "s2", tmp_path / "s0", tmp_path / "s1"]), ref, tmp_path)


# --------------------------------------------------------------------------- refusals


@pytest.fixture(scope="module")
def bert_shards():
    subject = tiny_subject("bert")
    texts = _texts()
    opts = dict(top_percent=20, halves=_halves(len(texts)), keep_half=1, batch_size=4, window=8, progress=False)
    return subject, texts, opts, [partial_exemplars(subject, texts, r, **opts) for r in shard_ranges(56, 3, window=8)]


def _refused(shards, *words):
    with pytest.raises(InvalidInput) as e:
        merge_exemplar_shards(shards)
    assert e.value.field == "shards" and all(w in e.value.message for w in words), e.value.message


def test_merging_shards_that_do_not_belong_together_is_refused(bert_shards):
    subject, texts, opts, (a, b, c) = bert_shards
    _refused([], "no shards")
    _refused([a, b], "rows 40..55 are in no shard")
    _refused([a, c], "rows 24..39 are in no shard")
    _refused([a, b, c, b], "overlaps")
    whole = partial_exemplars(subject, texts, range(0, 56), **opts)
    _refused([a, whole], "overlaps")
    other_k = partial_exemplars(subject, texts, (24, 40), **{**opts, "top_percent": 50})
    _refused([a, other_k, c], "ks", "top_percent")
    other_layers = partial_exemplars(subject, texts, (24, 40), **{**opts, "layers": [1]})
    _refused([a, other_layers, c], "layers is [1] there, [0, 1] here")
    other_texts = partial_exemplars(subject, texts[:-1] + ["a different last sentence"], (24, 40), **opts)
    _refused([a, other_texts, c], "data_sha256")
    other_rule = partial_exemplars(subject, texts, (24, 40), **{**opts, "rule": "fence"})
    _refused([a, other_rule, c], "rule is 'fence' there")
    no_halves = partial_exemplars(subject, texts, (24, 40), **{**opts, "halves": (), "keep_half": None})
    _refused([a, no_halves, c], "half")
    assert merge_exemplar_shards([c, a, b]).k == n_exemplars(len(first_occurrences(texts)), 20)  # the right ones merge


def test_a_shard_off_the_window_grid_or_out_of_range_is_refused(bert_shards):
    subject, texts, opts, _ = bert_shards
    for rows in [(4, 16), (0, 12), (0, 57), (8, 8), range(0, 16, 2), "0-16", (0.0, 8)]:
        with pytest.raises(InvalidInput) as e:
            partial_exemplars(subject, texts, rows, **opts)
        assert e.value.field == "rows"
    assert partial_exemplars(subject, texts, (48, 56), **opts).rows == (48, 56)  # ends at the last row: fine


def test_a_tampered_or_foreign_shard_file_is_refused(bert_shards, tmp_path):
    _, _, _, (a, b, c) = bert_shards
    for i, s in enumerate((a, b, c)):
        s.save(tmp_path / f"s{i}")
    meta_path = tmp_path / "s1" / "exemplar_shard.json"
    meta = json.loads(meta_path.read_text())
    meta["rows"] = [24, 44]
    meta_path.write_text(json.dumps(meta))
    _refused([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"], "overlaps")
    meta_path.write_text(json.dumps({**meta, "rows": [24, 40], "seen": meta["seen"][:1]}))
    _refused([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"], "not an exemplar shard")
    b.save(tmp_path / "s1")
    arrays = dict(np.load(tmp_path / "s1" / "exemplar_shard.npz"))
    arrays["set0_rows"] = arrays["set0_rows"][:, :-1]
    np.savez(tmp_path / "s1" / "exemplar_shard.npz", **arrays)
    _refused([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"], "set 0's candidates")
    (tmp_path / "s1" / "exemplar_shard.npz").write_bytes(b"not a zip")
    _refused([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"], "cannot read the arrays")
    (tmp_path / "s1" / "exemplar_shard.json").write_text("{not json")
    _refused([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"], "cannot read the exemplar shard")
    with pytest.raises(FileNotFoundError):  # a shard never written: the storage's problem, not the job's
        merge_exemplar_shards([tmp_path / "s0", tmp_path / "nowhere"])


# --------------------------------------------------------------------------- constructed float16 data


FEW = np.array([-np.inf, -2.0, -0.5, -0.0, 0.0, 0.5, 1.0, 65504.0, np.nan], np.float16)  # ties, -0.0, NaN


def _plan(distinct, n, halves, keep_half, top_percent, rule, window):
    sets = [distinct] + list(halves)
    ks = [n_exemplars(len(d), top_percent) for d in sets]
    job = {"n_rows": n, "ks": ks, "set_sizes": [len(d) for d in sets], "half_sizes": [len(h) for h in halves],
           "keep_half": keep_half, "rule": rule, "layers": [0], "window": window}
    return ExemplarPlan(tuple(sets), tuple(ks), tuple(halves), keep_half, (0,), rule, window, job)


def _fold(plan, x, rows, window):
    acc = ExemplarAccumulator(plan, rows)
    starts = list(range(rows.start, rows.stop, window))
    random.Random(rows.start).shuffle(starts)  # windows in any order
    for s in starts:
        acc.add(s, x[s:min(s + window, rows.stop)])
    return acc.shard()


@pytest.mark.parametrize("seed", range(4))
def test_merge_keeps_the_trackers_order_on_ties_zeros_and_nan(seed, tmp_path):
    rng = np.random.default_rng(seed)
    n, units, window = 203, 13, 7
    x = rng.choice(FEW, size=(n, units))
    x[:, 0] = np.float16(0.5)  # one value everywhere: only the row order decides
    halves = _halves(n, seed)
    distinct = np.setdiff1d(np.arange(n), np.arange(14, 35))  # as if rows 14..34 repeated earlier rows
    plan = _plan(distinct, n, halves, 0, 10, "fence" if seed % 2 else "zero", window)
    ref = merge_shards([_fold(plan, x, range(n), window)])
    for setrows, (rows, values) in zip([distinct] + halves, [(ref.rows, ref.values)] + ref.halves):
        idx, vals = dense_topk(x[setrows], rows.shape[1])
        assert np.array_equal(rows, setrows[idx]) and np.array_equal(values, vals, equal_nan=True)
    assert ref.rows[0].tolist() == distinct[:ref.k].tolist() and ref.firing.n_sentences == len(distinct)
    for n_shards in (2, 3, 5, 29):  # 29: shards of 7 rows, three of them with no distinct row
        ranges = shard_ranges(n, n_shards, window=window)
        shards = [_fold(plan, x, r, window) for r in ranges]
        random.Random(n_shards).shuffle(shards)
        assert_same_result(merge_shards(shards), ref, tmp_path / str(n_shards))


def test_candidates_of_disjoint_rows_merge_and_overlaps_are_refused():
    x = np.random.default_rng(3).choice(FEW, size=(40, 6)).astype(np.float32)
    a, b = TopKExemplars(6, 5), TopKExemplars(6, 5)
    a.update(0, x[:3])  # fewer rows than k: every one is a candidate
    b.update(3, x[3:])
    assert a.candidates()[0].shape == (6, 3)
    got = merge_candidates([b.candidates(), a.candidates()], 5)
    ref = dense_topk(x, 5)
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1], equal_nan=True)
    with pytest.raises(InvalidInput, match="overlap"):
        merge_candidates([b.candidates(), b.candidates()], 5)
    with pytest.raises(InvalidInput, match="5 exemplars per unit asked"):
        merge_candidates([a.candidates()], 5)


def test_moments_are_exact_whatever_the_order_of_the_rows():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.full((12_000, 3), 60000, np.float16),  # sums past 2^29: a float64 running sum rounds
                        rng.uniform(-1, 1, (5_000, 3)).astype(np.float16)])
    x[12_000:12_040, :2] = np.float16(2 ** -24)  # the smallest float16: lost by a float64 sum past 2^29
    x[7, 2] = np.nan
    orders = [np.arange(len(x)), rng.permutation(len(x)), rng.permutation(len(x))]
    totals, means = [], []
    for i, order in enumerate(orders):
        m = UnitMoments(3)
        parts = np.array_split(order, [1, 1000, 9000, 9001] if i else [len(x)])
        for p in parts:
            part = UnitMoments(3)
            part.update(x[p])
            m.add(part)
        totals.append(m.total)
        means.append(m.mean)
    assert all(np.array_equal(t, totals[0], equal_nan=True) for t in totals)
    exact = [sum(Fraction(float(v)) for v in x[:, u]) for u in range(2)]
    assert totals[0][:2].tolist() == [float(e) for e in exact]  # the exact sum, rounded once
    assert means[0][:2].tolist() == [float(np.float32(float(e) / len(x))) for e in exact] and np.isnan(means[0][2])
