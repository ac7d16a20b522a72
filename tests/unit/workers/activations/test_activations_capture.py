"""Capture: batching/padding/order invariance, the hooked values themselves, pooling of real tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.activations import ACT2FN

from neuroscribe.errors import InvalidInput, SiteNotFound
from neuroscribe.workers.activations import capture_responses
from neuroscribe.workers.activations.capture import token_values
from neuroscribe.workers.activations import capture as capture_mod
from tiny_models import TINY_ARCHS, tiny_subject

SENTS = [
    "the cat is good",
    "my phone broke after a week and the battery was very very bad , i hate it !",
    "dog",
    "this guitar has excellent sound quality but the case is poor",
    "a zebra and an okapi",  # unknown words
    "love it",
    "the bus was late so we did not like it .",
]
POOLINGS = ("max", "mean", "last", "cls")


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_alone_equals_in_padded_batch_and_rows_in_input_order(arch):
    s = tiny_subject(arch)
    for pooling in POOLINGS:
        batched = capture_responses(s, SENTS, pooling=pooling, batch_size=3, progress=False)
        unsorted = capture_responses(s, SENTS, pooling=pooling, batch_size=3, sort_by_length=False,
                                     progress=False)
        assert batched.layers == [0, 1]
        for layer in batched.layers:
            assert batched.arrays[layer].dtype == np.float16
            assert batched.arrays[layer].shape == (len(SENTS), 37)
            close(batched.arrays[layer], unsorted.arrays[layer])
        for i in (0, 2, 4):  # short sentences, padded inside every batch they share
            alone = capture_responses(s, [SENTS[i]], pooling=pooling, progress=False)
            for layer in batched.layers:
                close(batched.arrays[layer][i], alone.arrays[layer][0])
        rev = capture_responses(s, SENTS[::-1], pooling=pooling, batch_size=2, progress=False)
        close(rev.arrays[1][::-1], batched.arrays[1])
        # the rows differ from one another (so the comparisons above mean something); with a BOS,
        # position 0 is the same token for every sentence of a causal model
        if not (pooling == "cls" and arch == "llama"):
            assert not np.allclose(batched.arrays[1][0], batched.arrays[1][2], atol=1e-2)


# Independent of the site registry: where each architecture's MLP input is, and the MLP maths.
_MLP = {
    "bert": ("encoder.layer.{i}.intermediate", lambda m, c, x: ACT2FN[c.hidden_act](m.dense(x))),
    "gpt_neox": ("layers.{i}.mlp", lambda m, c, x: ACT2FN[c.hidden_act](m.dense_h_to_4h(x))),
    "gpt2": ("h.{i}.mlp", lambda m, c, x: ACT2FN[c.activation_function](m.c_fc(x))),
    "llama": ("layers.{i}.mlp", lambda m, c, x: ACT2FN[c.hidden_act](m.gate_proj(x)) * m.up_proj(x)),
}


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_mlp_post_equals_manual_recomputation_per_token(arch):
    s = tiny_subject(arch)
    values, attn, _ = token_values(s, SENTS[:4], site="mlp_post")
    path, mlp = _MLP[arch]
    inputs, handles = {}, []
    for i in range(s.n_layers):
        module = s.model.get_submodule(path.format(i=i))
        handles.append(module.register_forward_pre_hook(
            lambda mod, args, i=i: inputs.__setitem__(i, (mod, args[0]))))
    try:
        enc = s.tokenizer(SENTS[:4], padding=True, return_tensors="pt", return_token_type_ids=False)
        with torch.inference_mode():
            s.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    finally:
        for h in handles:
            h.remove()
    assert torch.equal(enc["attention_mask"], attn)
    for i in range(s.n_layers):
        mod, x = inputs[i]
        with torch.inference_mode():
            expected = mlp(mod, s.config, x)
        assert values[i].shape == expected.shape == (4, attn.shape[1], 37)
        torch.testing.assert_close(values[i], expected.float(), atol=1e-5, rtol=1e-5)
        assert values[i].abs().max() > 0.1


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_residual_equals_block_output(arch):
    s = tiny_subject(arch)
    values, attn, _ = token_values(s, SENTS[:3], site="residual")
    with torch.inference_mode():
        hs = s.model(input_ids=s.tokenizer(SENTS[:3], padding=True, return_tensors="pt")["input_ids"],
                     attention_mask=attn, output_hidden_states=True).hidden_states
    # decoders apply a final norm to hidden_states[-1]; the residual site is the block output before it
    last = s.n_layers if arch == "bert" else s.n_layers - 1
    for i in range(last):
        torch.testing.assert_close(values[i], hs[i + 1].float(), atol=1e-5, rtol=1e-5)


# Which token positions are real (attended, not special) for a sentence of n tokens.
_REAL = {"bert": lambda n: range(1, n - 1), "llama": lambda n: range(1, n),
         "gpt2": lambda n: range(n), "gpt_neox": lambda n: range(n)}


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_pooling_uses_real_tokens_only(arch):
    s = tiny_subject(arch)
    values, attn, special = token_values(s, SENTS, layers=[1])
    v = values[1].numpy()
    pooled = {p: capture_responses(s, SENTS, pooling=p, layers=[1], progress=False).arrays[1] for p in POOLINGS}
    for row in range(len(SENTS)):
        n = int(attn[row].sum())
        real = list(_REAL[arch](n))
        assert [j for j in range(n) if not special[row, j]] == real
        close(pooled["max"][row], v[row, real].max(axis=0))
        close(pooled["mean"][row], v[row, real].mean(axis=0))
        close(pooled["last"][row], v[row, real[-1]])
        close(pooled["cls"][row], v[row, 0])
    if arch in ("bert", "llama"):  # position 0 is special there: max over it differs somewhere
        with_special = np.stack([v[r, : int(attn[r].sum())].max(axis=0) for r in range(len(SENTS))])
        assert not np.allclose(with_special, pooled["max"], atol=1e-2)


def test_layers_subset_and_stop_early_give_same_values():
    s = tiny_subject("gpt2")
    full = capture_responses(s, SENTS, progress=False)
    first = capture_responses(s, SENTS, layers=[0], progress=False)
    assert first.layers == [0] and list(first.arrays) == [0]
    np.testing.assert_array_equal(first.arrays[0], full.arrays[0])
    assert full.meta.layers == [0, 1] and full.meta.units_per_layer == 37
    assert full.meta.n_sentences == len(SENTS) and full.meta.site == "mlp_post"


def test_truncation_to_max_length():
    s = tiny_subject("bert")
    long = " ".join(["good"] * 40) + " bad"
    a = capture_responses(s, [long], max_length=8, pooling="last", progress=False)
    b = capture_responses(s, [" ".join(["good"] * 6)], max_length=8, pooling="last", progress=False)
    np.testing.assert_array_equal(a.arrays[1], b.arrays[1])
    assert a.meta.max_length == 8


@pytest.mark.parametrize("kwargs, field, text", [
    (dict(layers=[9]), "layers", "layer 9 out of range 0..1"),
    (dict(layers=[-1]), "layers", "out of range"),
    (dict(layers=[0, 0]), "layers", "repeat"),
    (dict(pooling="median"), "pooling", "median"),
    (dict(batch_size=0), "batch_size", ">= 1"),
])
def test_invalid_arguments(kwargs, field, text):
    with pytest.raises(InvalidInput) as e:
        capture_responses(tiny_subject("bert"), SENTS, progress=False, **kwargs)
    assert e.value.field == field and text in str(e.value)


def test_unknown_site_lists_the_sites():
    with pytest.raises(SiteNotFound) as e:
        capture_responses(tiny_subject("llama"), SENTS, site="attn_out", progress=False)
    assert e.value.field == "site"
    assert "architecture llama has sites: mlp_post, residual" in str(e.value)


@pytest.mark.parametrize("texts, field", [([], "sentences"), ("one string", "sentences"),
                                          (["ok", "  "], "sentences:1")])
def test_bad_sentences(texts, field):
    with pytest.raises(InvalidInput) as e:
        capture_responses(tiny_subject("gpt2"), texts, progress=False)
    assert e.value.field == field


def test_hooks_removed_even_on_error(monkeypatch):
    s = tiny_subject("gpt_neox")

    def hooks():  # transformers 5 keeps its own output-capturing hooks once installed: compare
        return [(n, list(m._forward_hooks), list(m._forward_pre_hooks)) for n, m in s.model.named_modules()]

    before = hooks()

    class Boom:  # fails inside the hook, in the middle of the forward pass
        def __init__(self, *a):
            pass

        def __call__(self, values):
            raise RuntimeError("boom")

    monkeypatch.setattr(capture_mod, "Pooler", Boom)
    with pytest.raises(RuntimeError, match="boom"):
        capture_responses(s, SENTS, progress=False)
    assert hooks() == before
