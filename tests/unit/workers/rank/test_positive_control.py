"""Interventions that can be believed (issue 16): a planted unit whose translation must move the
model's output in the predicted direction, and the translate sign checked against the authors'
definition (Antverg & Belinkov's ``interventions.py``: ``h[:, units] -= alpha * avg[label];
h[:, units] += alpha * avg[next_label]``), written here from that definition, not from the project."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from neuroscribe.workers.activations.sites import get_site
from neuroscribe.workers.rank.effect_runs import LabelTask, ranked_vs_random
from neuroscribe.workers.rank.edit_modes import intervene
from tiny_models import VOCAB, capture_site, make_tiny_model

UNIT = 7
TEXTS = ["the cat is good .", "my phone works .", "the dog was bad .", "a guitar is great .",
         "the screen broke .", "this product is poor .", "i love the sound .", "the case is terrible ."]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A tiny GPT-2 whose last-layer MLP unit UNIT writes, through its output row, a residual direction
    that the LM head reads as ' great' (up) and ' terrible' (down): raising the unit must raise the
    log-odds of ' great' against ' terrible' after any text."""
    path = make_tiny_model("gpt2", tmp_path_factory.mktemp("pc") / "m", seed=3)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        d = torch.zeros(model.config.n_embd)
        d[0] = 1.0
        model.transformer.h[-1].mlp.c_proj.weight[UNIT] = 3.0 * d  # Conv1D: (inner, embd), row = the unit's output
        model.transformer.ln_f.weight[0] = 1.0
        head = model.lm_head.weight  # tied to the token embeddings
        head[VOCAB["great"], 0] = 4.0
        head[VOCAB["terrible"], 0] = -4.0
    return model, AutoTokenizer.from_pretrained(path)


def test_translating_the_planted_unit_moves_the_label_log_odds_as_predicted(planted):
    model, tok = planted
    labels = ["pos", "neg"] * (len(TEXTS) // 2)
    task = LabelTask(TEXTS, labels, {"pos": " great", "neg": " terrible"})
    n_units = model.config.n_inner
    # the unit bears the attribute as the model uses it: high on "pos" examples (mean 1), low on "neg" (0),
    # and high values favour " great". Translating an example toward the other class's mean must lower
    # the log-odds of its own label, for both classes.
    means = {"pos": {1: np.zeros(n_units)}, "neg": {1: np.zeros(n_units)}}
    means["pos"][1][UNIT] = 1.0
    order = np.r_[UNIT, np.setdiff1d(np.arange(n_units), [UNIT])]
    eff = ranked_vs_random(model, tok, task, {"planted": {1: order}}, [1], modes=["translate"],
                           class_means=means, beta=8.0, n_random=19, seed=0)["planted"]
    e = eff["translate", 1]
    assert (e.ranked < -0.5).all(), e.ranked
    assert np.abs(e.random_draws).max() < 1e-9  # the other units' means are equal: translating them is a no-op
    p = (1 + np.count_nonzero(np.abs(e.random_draws.mean(1) - e.random_draws.mean())
                              >= abs(e.mean_ranked - e.random_draws.mean()))) / 20
    assert p == pytest.approx(1 / 20)  # beyond all 19 random sets: the floor 1 / (19 + 1) < 0.05


def test_translate_sign_follows_the_authors_definition(planted):
    model, tok = planted
    site = get_site("gpt2", "mlp_post")
    n_units = model.config.n_inner
    rng = np.random.default_rng(0)
    avg = {"a": rng.normal(size=n_units), "b": rng.normal(size=n_units)}  # per-class means, the authors' avg
    units = [3, UNIT, 11]
    enc = tok(TEXTS[0], return_tensors="pt")
    clean = capture_site(model, "gpt2", site.name, [1], **enc)[0][1]
    # an example of class "a": the authors' translate moves it toward the next label, "b"
    with intervene(model, "gpt2", "mlp_post", {1: units}, "translate", source_mean={1: avg["a"]},
                   target_mean={1: avg["b"]}, beta=8.0):
        edited = capture_site(model, "gpt2", site.name, [1], **enc)[0][1]
    alpha = 8.0
    want = clean.clone()
    want[..., units] -= alpha * torch.tensor(avg["a"][units], dtype=want.dtype)
    want[..., units] += alpha * torch.tensor(avg["b"][units], dtype=want.dtype)
    torch.testing.assert_close(edited, want, rtol=1e-5, atol=1e-5)


def test_shared_random_sets_exclude_every_top_k_and_give_the_effects_of_separate_runs(planted):
    model, tok = planted
    n_units = model.config.n_inner
    rng = np.random.default_rng(1)
    orders = {"a": {1: rng.permutation(n_units)}, "b": {1: rng.permutation(n_units)}}
    task = LabelTask(TEXTS, ["pos", "neg"] * 4, {"pos": " great", "neg": " terrible"})
    shared = ranked_vs_random(model, tok, task, orders, [3], modes=["zero"], n_random=4, seed=5)
    union = set(orders["a"][1][:3]) | set(orders["b"][1][:3])
    draws = shared["a"].random_units[3]
    assert draws == shared["b"].random_units[3] and len(draws) == 4
    assert all(len(d[1]) == 3 and not set(d[1]) & union for d in draws)
    sets = {3: draws}
    for name, order in orders.items():
        alone = ranked_vs_random(model, tok, task, {name: order}, [3], modes=["zero"], n_random=4, seed=5,
                                 random_sets=sets)[name]
        np.testing.assert_array_equal(alone["zero", 3].ranked, shared[name]["zero", 3].ranked)
        np.testing.assert_array_equal(alone["zero", 3].random_draws, shared[name]["zero", 3].random_draws)
