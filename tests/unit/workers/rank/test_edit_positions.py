"""Edits at the attribute-bearing word only (issue 16, item 3): a position mask confines an
intervention to the marked tokens, the scorers mark each example's target word, and a planted unit
edited at the word alone still moves the model's output as predicted."""

import warnings

import numpy as np
import pytest
import torch

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations.edits import PositionMask, at_positions
from neuroscribe.workers.rank.edit_modes import intervene
from neuroscribe.workers.rank.effect_runs import EncoderTask, LabelTask, MaskedTask, ranked_vs_random
from neuroscribe.workers.rank.lm_scoring import LabelScorer, MaskedScorer
from tiny_models import capture_site, tiny_model_dir

N_UNITS = 37
UNITS = np.array([0, 5, 11])
MEANS = np.linspace(-1.0, 1.0, N_UNITS)
SRC, TGT = np.linspace(0.0, 0.5, N_UNITS), np.linspace(1.0, -1.0, N_UNITS)
_MODELS: dict = {}


def load(arch):
    if arch not in _MODELS:
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

        auto = AutoModelForMaskedLM if arch == "bert" else AutoModelForCausalLM
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = auto.from_pretrained(tiny_model_dir(arch)).eval()
        tok = AutoTokenizer.from_pretrained(tiny_model_dir(arch))
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        _MODELS[arch] = model, tok
    return _MODELS[arch]


@pytest.mark.parametrize("arch, site_name", [("gpt2", "mlp_post"), ("llama", "mlp_post"), ("bert", "mlp_post"),
                                             ("gpt_neox", "residual")])
@pytest.mark.parametrize("mode", ["zero", "mean", "translate"])
def test_a_masked_edit_changes_the_marked_position_only(arch, site_name, mode):
    model, tok = load(arch)
    inputs = dict(tok(["i love my cat and my dog", "the bus was bad"], return_tensors="pt", padding=True))
    clean, clean_logits = capture_site(model, arch, site_name, [1], **inputs)
    mask = torch.zeros(inputs["input_ids"].shape, dtype=torch.bool)
    mask[0, 3] = True  # one position of the first sentence; none of the second
    n = clean[1].shape[-1]
    means, src, tgt = (np.resize(a, n) for a in (MEANS, SRC, TGT))
    with intervene(model, arch, site_name, {1: UNITS}, mode, values={1: means}, source_mean={1: src},
                   target_mean={1: tgt}, beta=2.0, mask=mask):
        got, got_logits = capture_site(model, arch, site_name, [1], **inputs)
    assert torch.equal(got[1][~mask], clean[1][~mask])  # every other position keeps its values, at the edited layer
    rest = np.setdiff1d(np.arange(n), UNITS)
    assert torch.equal(got[1][0, 3, rest], clean[1][0, 3, rest])  # and the other units at the marked one
    chosen = got[1][0, 3, UNITS]
    want = {"zero": torch.zeros_like(chosen), "mean": torch.tensor(means[UNITS], dtype=chosen.dtype),
            "translate": clean[1][0, 3, UNITS] + torch.tensor(2.0 * (tgt - src)[UNITS], dtype=chosen.dtype)}[mode]
    torch.testing.assert_close(chosen, want)
    assert not torch.equal(chosen, clean[1][0, 3, UNITS])
    assert torch.equal(got_logits[1], clean_logits[1])  # the unmarked sentence is untouched
    if arch != "bert":  # causal: the tokens before the edited one cannot see it
        assert torch.equal(got_logits[0, :3], clean_logits[0, :3])
    assert not torch.allclose(got_logits[0], clean_logits[0])


def test_a_position_mask_follows_the_batches_and_checks_its_shape():
    pm = PositionMask()
    with pytest.raises(RuntimeError, match="no positions"):
        pm()
    pm.set([[1, 2], [], [0]], 4)
    assert pm().tolist() == [[False, True, True, False], [False] * 4, [True, False, False, False]]
    x = torch.arange(24.0).reshape(3, 4, 2)
    out = at_positions(x, -x, pm())
    assert torch.equal(out[0, 1], -x[0, 1]) and torch.equal(out[1], x[1]) and torch.equal(out[0, 3], x[0, 3])
    with pytest.raises(ValueError, match="position mask"):
        at_positions(x, -x, torch.ones(3, 5, dtype=torch.bool))


def test_the_scorers_mark_every_token_of_the_target_word():
    model, tok = load("llama")  # a BOS token first: word w is token w + 1
    texts = ["i love my cat , and my dog", "the cat, a dog"]
    sc = LabelScorer(model, tok, texts, ["pos", "neg"], {"pos": " great", "neg": " terrible"}, " it was", 4,
                     word_index=[3, 1])
    assert sc.word_positions == [[[4]] * 2, [[2, 3]] * 2]  # "cat," is two tokens: both are the word's
    assert LabelScorer(model, tok, texts, ["pos", "neg"], {"pos": " a", "neg": " b"}, "", 4).word_positions is None
    with pytest.raises(InvalidInput) as e:
        LabelScorer(model, tok, texts, ["pos", "neg"], {"pos": " a", "neg": " b"}, "", 4, word_index=[9, 1])
    assert e.value.field == "word_index:0"
    bert, btok = load("bert")
    ms = MaskedScorer(bert, btok, ["the cat is good", "my dog , it was bad"], [1, 1], 4)
    assert ms.word_positions == [[2], [2]]  # the one [MASK] that stands for the word, after [CLS]


def test_attribute_positions_need_a_target_word():
    model, tok = load("gpt2")
    kw = dict(modes=["zero"], n_random=1, positions="attribute")
    task = LabelTask(["i love my cat", "the bus is bad"], ["pos", "neg"], {"pos": " great", "neg": " terrible"})
    with pytest.raises(InvalidInput) as e:
        ranked_vs_random(model, tok, task, {"r": {1: np.arange(N_UNITS)}}, [2], **kw)
    assert e.value.field == "positions" and "word_index" in e.value.message
    with pytest.raises(InvalidInput) as e:
        ranked_vs_random(model, tok, task, {"r": {1: np.arange(N_UNITS)}}, [2], modes=["zero"], positions="words")
    assert e.value.field == "positions"
    bert, btok = load("bert")
    enc = EncoderTask(["i love my cat", "the bus is bad"], ["pos", "neg"], {"pos": "good", "neg": "bad"})
    with pytest.raises(InvalidInput) as e:
        ranked_vs_random(bert, btok, enc, {"r": {1: np.arange(N_UNITS)}}, [2], **kw)
    assert e.value.field == "positions"


def test_masked_lm_effects_at_the_word_differ_from_every_position_and_are_cached_apart():
    model, tok = load("bert")
    texts = ["the cat is very good", "my phone broke after a week", "i love the sound", "we hate this bus"]
    task = MaskedTask(texts, [1, 1, 3, 3], ["a", "b", "a", "b"])
    store: dict = {}

    class Cache:
        hits = misses = 0

        def get(self, key):
            return store.get(key)

        def put(self, key, value):
            store[key] = value

    kw = dict(modes=["zero"], n_random=2, seed=0, cache=Cache())
    order = {"r": {0: np.arange(N_UNITS)}}
    every = ranked_vs_random(model, tok, task, order, [5], **kw)["r"]
    word = ranked_vs_random(model, tok, task, order, [5], positions="attribute", **kw)["r"]
    assert (every.positions, word.positions) == ("all", "attribute")
    assert word.random_units == every.random_units  # the same random sets for both
    assert not np.allclose(word["zero", 5].ranked, every["zero", 5].ranked)
    assert np.all(word["zero", 5].ranked != 0)  # the [MASK] position alone still moves the prediction
    assert len(store) == 2 * 3 and sum('"attribute"' in k for k in store) == 3  # keys hold the positions
    # in the last layer only the [MASK] position's own state reaches its prediction: the two agree
    last = {"r": {1: np.arange(N_UNITS)}}
    kw["cache"] = None
    np.testing.assert_allclose(ranked_vs_random(model, tok, task, last, [5], positions="attribute", **kw)["r"]
                               ["zero", 5].ranked, ranked_vs_random(model, tok, task, last, [5], **kw)["r"]
                               ["zero", 5].ranked, atol=1e-9)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The positive control's tiny GPT-2 (test_positive_control.py): last-layer MLP unit 7 writes the
    residual direction the LM head reads as ' great' (up) against ' terrible' (down)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tiny_models import VOCAB, make_tiny_model

    path = make_tiny_model("gpt2", tmp_path_factory.mktemp("pc") / "m", seed=3)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        d = torch.zeros(model.config.n_embd)
        d[0] = 1.0
        model.transformer.h[-1].mlp.c_proj.weight[7] = 3.0 * d
        model.transformer.ln_f.weight[0] = 1.0
        model.lm_head.weight[VOCAB["great"], 0] = 4.0
        model.lm_head.weight[VOCAB["terrible"], 0] = -4.0
    return model, AutoTokenizer.from_pretrained(path)


TEXTS = ["the cat is good", "my phone works", "the dog was bad", "a guitar is great", "the screen broke",
         "this product is poor"]


def test_the_planted_unit_edited_at_the_word_alone_moves_the_output_as_predicted(planted):
    """Translated toward the other class at the target word only: when the word is the last token
    (whose last-layer state predicts the continuation), the own label's log-odds fall for every
    example, beyond every random set; when the word is the first token, a last-layer edit there
    cannot reach the prediction at all (exactly 0), while editing every position does."""
    model, tok = planted
    labels = ["pos", "neg"] * 3
    means = {"pos": {1: np.zeros(N_UNITS)}, "neg": {1: np.zeros(N_UNITS)}}
    means["pos"][1][7] = 1.0
    order = {"planted": {1: np.r_[7, np.setdiff1d(np.arange(N_UNITS), [7])]}}
    kw = dict(modes=["translate"], class_means=means, beta=8.0, n_random=19, seed=0)
    conts = {"pos": " great", "neg": " terrible"}
    last = LabelTask(TEXTS, labels, conts, word_index=[len(t.split()) - 1 for t in TEXTS])
    e = ranked_vs_random(model, tok, last, order, [1], positions="attribute", **kw)["planted"]["translate", 1]
    assert (e.ranked < -0.5).all(), e.ranked
    assert np.abs(e.random_draws).max() < 1e-9  # the other units' class means are equal: a no-op
    first = LabelTask(TEXTS, labels, conts, word_index=[0] * len(TEXTS))
    at_first = ranked_vs_random(model, tok, first, order, [1], positions="attribute", **kw)["planted"]
    assert np.all(at_first["translate", 1].ranked == 0)
    everywhere = ranked_vs_random(model, tok, first, order, [1], **kw)["planted"]
    np.testing.assert_allclose(everywhere["translate", 1].ranked, e.ranked, atol=1e-9)  # the last token is edited too
