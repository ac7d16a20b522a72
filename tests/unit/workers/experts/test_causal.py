"""Causal check (neuroscribe.workers.experts.causal) on tiny random decoders with their LM heads."""

import numpy as np
import pytest
import torch

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations.sites import get_site
from neuroscribe.workers.experts.causal import (causal_effect, concept_logprob, fixed_units, load_causal_lm,
                                        word_token_ids)
from tiny_models import capture_site, tiny_model_dir

DECODERS = ("gpt_neox", "gpt2", "llama")
PROMPTS = ["i love my", "the bus was very", "this phone is", "we like the sound of the", "my"]
WORDS = ["cat", "dog"]
_LM: dict = {}


def lm(arch):
    if arch not in _LM:
        _LM[arch] = load_causal_lm(str(tiny_model_dir(arch)), device="cpu")
    return _LM[arch]


_capture = capture_site


def _inputs(tok):
    return dict(tok(["i love my cat and my dog"], return_tensors="pt"))


@pytest.mark.parametrize("arch", DECODERS)
@pytest.mark.parametrize("site_name", ["mlp_post", "residual"])
def test_fixed_units_sets_units_and_leaves_the_rest(arch, site_name):
    model, tok = lm(arch)
    inputs = _inputs(tok)
    clean, clean_logits = _capture(model, arch, site_name, [0, 1], **inputs)
    idx, vals = torch.tensor([0, 5, 11]), torch.tensor([3.0, -2.5, 0.75])
    with fixed_units(model, arch, site_name, {1: (idx, vals)}):
        fixed, fixed_logits = _capture(model, arch, site_name, [0, 1], **inputs)
    torch.testing.assert_close(fixed[0], clean[0], rtol=0, atol=0)  # layer 0 untouched
    got = fixed[1]
    assert torch.equal(got[..., idx], vals.expand(*got.shape[:-1], 3))  # every position
    rest = torch.ones(got.shape[-1], dtype=torch.bool)
    rest[idx] = False
    torch.testing.assert_close(got[..., rest], clean[1][..., rest], rtol=0, atol=0)
    assert not torch.allclose(fixed_logits, clean_logits)
    # hooks removed afterwards: a clean run again
    _, after = _capture(model, arch, site_name, [], **inputs)
    assert torch.equal(after, clean_logits)


def test_fixed_units_removes_hooks_after_an_error():
    model, tok = lm("gpt_neox")
    with pytest.raises(RuntimeError, match="boom"):
        with fixed_units(model, "gpt_neox", "mlp_post", {0: ([1], [9.0])}):
            raise RuntimeError("boom")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_fixing_zero_units_changes_nothing():
    model, tok = lm("gpt2")
    inputs = _inputs(tok)
    _, clean = _capture(model, "gpt2", "mlp_post", [], **inputs)
    with fixed_units(model, "gpt2", "mlp_post", {0: ([], []), 1: (torch.tensor([], dtype=torch.long), [])}):
        _, same = _capture(model, "gpt2", "mlp_post", [], **inputs)
    assert torch.equal(same, clean)
    r = causal_effect(model, tok, experts=[], unit_value=lambda L, u: 1.0, prompts=PROMPTS, words=WORDS, n_random=2)
    assert r.n_units == 0 and np.all(r.delta_experts == 0) and np.all(r.delta_random == 0)


@pytest.mark.parametrize("arch", DECODERS)
def test_concept_logprob_matches_manual_and_padding(arch):
    model, tok = lm(arch)
    ids = word_token_ids(tok, WORDS)
    assert ids == [tok.convert_tokens_to_ids(w) for w in WORDS]  # word-level vocab: one token each
    enc = tok("we like the sound of the", return_tensors="pt")
    with torch.inference_mode():
        logp = torch.log_softmax(model(**enc).logits[0, -1].double(), -1)
    manual = float(torch.log(logp[ids].exp().sum()))
    alone = concept_logprob(model, tok, ["we like the sound of the"], WORDS)
    assert alone.shape == (1,) and alone[0] == pytest.approx(manual, abs=1e-5)
    for side in ("right", "left"):  # the tokenizer's padding side must not matter
        tok.padding_side = side
        batch = concept_logprob(model, tok, PROMPTS, WORDS, batch_size=3)
        singles = np.array([concept_logprob(model, tok, [p], WORDS)[0] for p in PROMPTS])
        np.testing.assert_allclose(batch, singles, atol=1e-5)
        assert batch[3] == pytest.approx(manual, abs=1e-5)
    tok.padding_side = "right"
    # duplicated words count once
    np.testing.assert_allclose(concept_logprob(model, tok, PROMPTS, ["cat", "CAT", "dog"]),
                               concept_logprob(model, tok, PROMPTS, WORDS), atol=1e-6)


@pytest.mark.parametrize("arch", ["gpt_neox", "llama"])
def test_causal_effect_ci_and_determinism(arch):
    model, tok = lm(arch)
    site = get_site(arch, "mlp_post")
    n_units = site.units(model.config)
    responses = {L: np.random.default_rng(L).normal(2.0, 1.0, size=(20, n_units)) for L in (0, 1)}
    experts = [(0, 3), (1, 7), (1, 8)]
    kw = dict(experts=experts, unit_value=responses, prompts=PROMPTS, words=WORDS, n_random=4, seed=1)
    r = causal_effect(model, tok, **kw)
    assert (r.n_units, r.n_prompts, r.n_random) == (3, 5, 4)
    assert r.delta_random_draws.shape == (4, 5)
    for mean, (lo, hi) in [(r.mean_experts, r.ci_experts), (r.mean_random, r.ci_random),
                           (r.mean_difference, r.ci_difference)]:
        assert lo <= mean <= hi
    assert r.mean_difference == pytest.approx(r.mean_experts - r.mean_random)
    assert r.mean_experts != 0
    again = causal_effect(model, tok, **kw)
    np.testing.assert_array_equal(again.delta_experts, r.delta_experts)
    np.testing.assert_array_equal(again.delta_random_draws, r.delta_random_draws)
    other = causal_effect(model, tok, **{**kw, "seed": 2})
    np.testing.assert_array_equal(other.delta_experts, r.delta_experts)
    assert not np.array_equal(other.delta_random_draws, r.delta_random_draws)
    # the medians of the responses are the default values; explicit values agree
    med = [float(np.median(responses[L][:, u])) for L, u in experts]
    explicit = causal_effect(model, tok, **{**kw, "values": med})
    np.testing.assert_allclose(explicit.delta_experts, r.delta_experts, atol=1e-6)
    assert set(r.summary()) >= {"mean_experts", "ci_difference", "n_prompts", "n_units"}


def _bad(**over):
    model, tok = lm("gpt_neox")
    kw = dict(experts=[(0, 1)], unit_value=lambda L, u: 1.0, prompts=PROMPTS, words=WORDS, n_random=1)
    return causal_effect(model, tok, **{**kw, **over})


@pytest.mark.parametrize("over, field", [
    (dict(experts=[(0, 1), (1, 37)]), "experts:1"),
    (dict(experts=[(2, 0)]), "experts:0"),
    (dict(experts=[(0, -1)]), "experts:0"),
    (dict(experts=[(0, 1), (0, 1)]), "experts:1"),
    (dict(prompts=[]), "prompts"),
    (dict(prompts=["i love", "  "]), "prompts:1"),
    (dict(words=[]), "words"),
    (dict(words=["cat", ""]), "words:1"),
    (dict(words=["zebra"]), "words:0"),
    (dict(values=[1.0, 2.0]), "values"),
    (dict(n_random=0), "n_random"),
    (dict(values=[float("nan")]), "values"),
    (dict(unit_value={0: np.ones((4, 5))}), "unit_value"),
    (dict(unit_value={1: np.ones((4, 37))}), "unit_value"),
    (dict(site="attention"), "site"),
])
def test_bad_input_names_the_field(over, field):
    with pytest.raises(InvalidInput) as e:
        _bad(**over)
    assert e.value.field == field


def test_fixed_units_bad_input():
    model, _ = lm("gpt2")
    for units, field in [({5: ([0], [1.0])}, "units:5"), ({0: ([37], [1.0])}, "units:0"),
                         ({0: ([1, 2], [1.0])}, "units:0"), ({0: ([1, 1], [1.0, 2.0])}, "units:0")]:
        with pytest.raises(InvalidInput) as e:
            with fixed_units(model, "gpt2", "mlp_post", units):
                pass
        assert e.value.field == field


def test_encoder_model_is_refused():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = load_causal_lm(str(tiny_model_dir("bert")))
    with pytest.raises(InvalidInput) as e:
        causal_effect(model, tok, experts=[(0, 1)], unit_value=lambda L, u: 1.0, prompts=PROMPTS, words=WORDS)
    assert e.value.field == "model_type"
