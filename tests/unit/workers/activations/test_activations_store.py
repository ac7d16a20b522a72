"""On-disk responses, dataset hashing and pooling on synthetic tensors (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations import (
    Responses, ResponsesMeta, dataset_sha256, load_responses, save_responses,
)
from neuroscribe.workers.activations import store
from neuroscribe.workers.activations.pooling import POOLINGS, pool, real_token_mask


def make_responses(n=5, units=7, layers=(0, 2), seed=0) -> Responses:
    rng = np.random.default_rng(seed)
    arrays = {layer: rng.normal(size=(n, units)).astype(np.float16) for layer in layers}
    meta = ResponsesMeta(model_id="org/m", revision="abc", weight_sha256="0" * 64, model_type="bert",
                         site="mlp_post", pooling="max", data_sha256=dataset_sha256(["x"] * n),
                         n_sentences=n, units_per_layer=units, layers=list(layers), max_length=128)
    return Responses(layers=list(layers), arrays=arrays, meta=meta)


def test_round_trip_mmap(tmp_path):
    resp = make_responses()
    save_responses(resp, tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["layer_000.npy", "layer_002.npy", "meta.json"]
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["format_version"] == 1 and meta["dtype"] == "float16" and meta["layers"] == [0, 2]
    back = load_responses(tmp_path / "r")
    assert back.meta == resp.meta and back.layers == [0, 2]
    for layer in resp.layers:
        assert isinstance(back.arrays[layer], np.memmap) and back.arrays[layer].dtype == np.float16
        np.testing.assert_array_equal(back.arrays[layer], resp.arrays[layer])
    eager = load_responses(tmp_path / "r", mmap=False)
    assert not isinstance(eager.arrays[0], np.memmap)
    assert np.load(tmp_path / "r" / "layer_002.npy", mmap_mode="r").shape == (5, 7)
    assert back.matrix().shape == (5, 14)


def test_failed_write_leaves_no_partial_files(tmp_path, monkeypatch):
    calls = []
    real = np.save

    def flaky(fh, arr):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real(fh, arr)

    monkeypatch.setattr(store.np, "save", flaky)
    with pytest.raises(OSError, match="disk full"):
        save_responses(make_responses(), tmp_path / "r")
    assert list((tmp_path / "r").iterdir()) == []


def test_overwrite_removes_stale_layers(tmp_path):
    save_responses(make_responses(layers=(0, 1, 2)), tmp_path)
    save_responses(make_responses(layers=(3,), seed=1), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer_003.npy", "meta.json"]
    assert load_responses(tmp_path).layers == [3]


def test_load_validates(tmp_path):
    with pytest.raises(InvalidInput, match="no meta.json"):
        load_responses(tmp_path)
    save_responses(make_responses(), tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "format_version": 2}))
    with pytest.raises(InvalidInput, match="format_version 2"):
        load_responses(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "units_per_layer": 8}))
    with pytest.raises(InvalidInput, match="expected float16"):
        load_responses(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "layer_002.npy").unlink()
    with pytest.raises(InvalidInput, match="missing"):
        load_responses(tmp_path)


def test_save_rejects_wrong_shape(tmp_path):
    resp = make_responses()
    resp.arrays[0] = resp.arrays[0][:3]
    with pytest.raises(ValueError):
        save_responses(resp, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_dataset_sha256_order_and_framing():
    assert dataset_sha256(["ab", "c"]) != dataset_sha256(["a", "bc"])
    assert dataset_sha256(["a", "b"]) != dataset_sha256(["b", "a"])
    assert dataset_sha256([""]) != dataset_sha256([])
    assert dataset_sha256(["café"]) == dataset_sha256(("café",)) and len(dataset_sha256([])) == 64


def test_pooling_by_hand():
    x = torch.tensor([[[1.0], [5.0], [3.0], [9.0], [100.0]]])  # [CLS] a b [SEP] <pad>
    attn = torch.tensor([[1, 1, 1, 1, 0]])
    special = torch.tensor([[1, 0, 0, 1, 0]])
    real = real_token_mask(attn, special)
    assert pool(x, real, "max").item() == 5.0
    assert pool(x, real, "mean").item() == 4.0
    assert pool(x, real, "last").item() == 3.0
    assert pool(x, real, "cls").item() == 1.0
    all_special = real_token_mask(attn, torch.tensor([[1, 1, 1, 1, 0]]))  # falls back to attended
    assert pool(x, all_special, "max").item() == 9.0


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), extra=st.integers(0, 3),
       pad_value=st.floats(-1e4, 1e4), seed=st.integers(0, 2**16))
def test_padding_never_changes_pooled_values(lengths, extra, pad_value, seed):
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    attn = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    special = (torch.rand(len(lengths), width, generator=g) < 0.3).long() * attn
    x = torch.randn(len(lengths), width, 3, generator=g)
    wide_attn = torch.cat([attn, torch.zeros(len(lengths), extra, dtype=torch.long)], 1)
    wide_special = torch.cat([special, torch.zeros(len(lengths), extra, dtype=torch.long)], 1)
    wide_x = torch.cat([x.masked_fill(~attn.bool()[..., None], pad_value),
                        torch.full((len(lengths), extra, 3), pad_value)], 1)
    for name in POOLINGS:
        a = pool(x, real_token_mask(attn, special), name)
        b = pool(wide_x, real_token_mask(wide_attn, wide_special), name)
        torch.testing.assert_close(a, b)


def test_responses_beyond_float16_saturate_and_are_counted(monkeypatch):
    """A pooled value beyond ±65504 is stored as ±65504 (not inf) and counted in the meta."""
    import warnings

    import torch

    from tiny_models import tiny_subject
    from neuroscribe.workers.activations import capture as capture_mod

    subject = tiny_subject("bert")
    real_pooler = capture_mod.Pooler

    class HugePooler(real_pooler):
        def __call__(self, values):
            out = super().__call__(values)
            out[:, 0] = 1e6
            out[:, 1] = -1e6
            return out

    monkeypatch.setattr(capture_mod, "Pooler", HugePooler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resp = capture_mod.capture_responses(subject, ["a cat", "the dog ran"], layers=[0], progress=False)
    a = resp.arrays[0]
    assert np.isfinite(a).all()
    assert (a[:, 0] == np.float16(65504)).all() and (a[:, 1] == np.float16(-65504)).all()
    assert resp.meta.n_saturated == 4
    assert any("float16" in str(w.message) for w in caught)


def test_cached_capture_hits_and_recomputes_a_corrupt_entry(tmp_path):
    from tiny_models import tiny_subject
    from neuroscribe.workers.activations import cached_capture, responses_key

    subject = tiny_subject("gpt2")
    texts = ["a cat sat", "the bus was late", "rain"]
    first, hit = cached_capture(subject, texts, tmp_path, layers=[1], progress=False)
    assert not hit
    again, hit = cached_capture(subject, texts, tmp_path, layers=[1], progress=False)
    assert hit and np.array_equal(np.asarray(again.arrays[1]), first.arrays[1])
    _, hit = cached_capture(subject, texts[:2], tmp_path, layers=[1], progress=False)
    assert not hit  # other sentences, other key
    key = responses_key(subject, texts, site="mlp_post", pooling="max", layers=[1], max_length=128)
    (tmp_path / key[:2] / key / "meta.json").write_text("{not json")
    redone, hit = cached_capture(subject, texts, tmp_path, layers=[1], progress=False)
    assert not hit and np.array_equal(redone.arrays[1], first.arrays[1])
    assert cached_capture(subject, texts, tmp_path, layers=[1], progress=False)[1]
