"""Interventions on ranked units (neuroscribe.workers.rank.interventions) on tiny random models with heads."""

import warnings

import numpy as np
import pytest
import torch

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.rank.edit_modes import intervene, random_units, response_means
from neuroscribe.workers.rank.encoder_scoring import embedding_config, sentence_embeddings
from neuroscribe.workers.rank.interventions import (EncoderTask, LabelTask, MaskedTask, embedding_label_delta,
                                                    intervention_effects, label_logprob_delta,
                                                    masked_prediction_delta)
from neuroscribe.workers.rank.lm_scoring import continuation_logprob
from tiny_models import capture_site, tiny_model_dir

N_UNITS = 37  # intermediate size of every tiny model
TEXTS = ["i love my phone", "the sound quality is bad", "this guitar is very good", "my dog hates the bus"]
LABELS = ["pos", "neg", "pos", "neg"]
CONTS = {"pos": " great", "neg": " terrible"}
MASKED = ["the cat is very good", "my phone broke after a week", "i love the sound", "we hate this bus"]
_MODELS: dict = {}


def load(arch):
    if arch not in _MODELS:
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

        auto = AutoModelForMaskedLM if arch == "bert" else AutoModelForCausalLM
        path = tiny_model_dir(arch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = auto.from_pretrained(path).eval()
        tok = AutoTokenizer.from_pretrained(path)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        _MODELS[arch] = model, tok
    return _MODELS[arch]


_capture = capture_site


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


MEANS = np.linspace(-1.0, 1.0, N_UNITS)
SRC, TGT = np.linspace(0.0, 0.5, N_UNITS), np.linspace(1.0, -1.0, N_UNITS)


@pytest.mark.parametrize("arch, site_name", [("gpt_neox", "mlp_post"), ("llama", "mlp_post"), ("bert", "mlp_post"),
                                             ("gpt2", "residual")])
@pytest.mark.parametrize("mode", ["zero", "mean", "translate"])
def test_intervention_changes_only_the_chosen_units(arch, site_name, mode):
    model, tok = load(arch)
    inputs = dict(tok(["i love my cat and my dog"], return_tensors="pt"))
    clean, clean_logits = _capture(model, arch, site_name, [0, 1], **inputs)
    n = clean[1].shape[-1]
    idx = np.array([0, 5, 11])
    means, src, tgt = (np.resize(a, n) for a in (MEANS, SRC, TGT))
    with intervene(model, arch, site_name, {1: idx}, mode, values={1: means}, source_mean={1: src},
                   target_mean={1: tgt}, beta=2.0):
        got, got_logits = _capture(model, arch, site_name, [0, 1], **inputs)
    assert torch.equal(got[0], clean[0])  # the layer before is untouched
    rest = np.setdiff1d(np.arange(n), idx)
    assert torch.equal(got[1][..., rest], clean[1][..., rest])  # only the chosen units change
    chosen = got[1][..., idx]
    want = {"zero": torch.zeros_like(chosen),
            "mean": torch.tensor(means[idx], dtype=chosen.dtype).expand_as(chosen),
            "translate": clean[1][..., idx] + torch.tensor(2.0 * (tgt - src)[idx], dtype=chosen.dtype)}[mode]
    torch.testing.assert_close(chosen, want)  # at every position
    assert not torch.allclose(got_logits, clean_logits)
    assert _no_hooks(model)
    _, after = _capture(model, arch, site_name, [], **inputs)
    assert torch.equal(after, clean_logits)  # hooks removed: the clean run again


def test_values_aligned_with_the_units_or_per_unit_agree():
    model, tok = load("gpt_neox")
    inputs = dict(tok(["the dog was very bad"], return_tensors="pt"))
    idx = [3, 30]
    with intervene(model, None, "mlp_post", {0: idx}, "mean", values={0: MEANS}):
        _, full = _capture(model, "gpt_neox", "mlp_post", [], **inputs)
    with intervene(model, None, "mlp_post", {0: idx}, "mean", values={0: MEANS[idx]}):
        _, aligned = _capture(model, "gpt_neox", "mlp_post", [], **inputs)
    assert torch.equal(full, aligned)


def test_hooks_removed_after_an_error_inside():
    model, tok = load("llama")
    inputs = dict(tok(["i love my cat"], return_tensors="pt"))
    _, clean = _capture(model, "llama", "mlp_post", [], **inputs)
    for mode in ("zero", "translate"):
        with pytest.raises(RuntimeError, match="boom"):
            with intervene(model, "llama", "mlp_post", {0: [1, 2], 1: [4]}, mode, source_mean={0: SRC, 1: SRC},
                           target_mean={0: TGT, 1: TGT}):
                model(**inputs)
                raise RuntimeError("boom")
        assert _no_hooks(model)
        _, after = _capture(model, "llama", "mlp_post", [], **inputs)
        assert torch.equal(after, clean)


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
def test_continuation_logprob_matches_manual_and_batching(arch):
    model, tok = load(arch)
    ids = tok("this phone is", return_tensors="pt")["input_ids"][0].tolist()
    cont = [tok.convert_tokens_to_ids(w) for w in ("very", "good")]
    with torch.inference_mode():
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids + cont])).logits[0].double(), -1)
    manual = float(lp[len(ids) - 1, cont[0]] + lp[len(ids), cont[1]])
    texts = ["this phone is", "i love my", "we like the sound of the"]
    batch = continuation_logprob(model, tok, texts, [" very good", " cat", " guitar"], batch_size=2)
    assert batch[0] == pytest.approx(manual, abs=1e-5)
    singles = [continuation_logprob(model, tok, [t], [c])[0] for t, c in zip(texts, [" very good", " cat", " guitar"])]
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_zeroing_a_layer_changes_the_label_logprob_and_no_units_change_nothing():
    model, tok = load("gpt_neox")
    kw = dict(suffix=" it was")
    none = label_logprob_delta(model, tok, TEXTS, LABELS, CONTS, {0: []}, "zero", **kw)
    for m in ("logprob", "logodds", "accuracy"):
        assert np.all(none[m] == 0)
    full = label_logprob_delta(model, tok, TEXTS, LABELS, CONTS, {0: np.arange(N_UNITS)}, "zero", **kw)
    assert full.delta_logprob.shape == (4,) and np.all(full.delta_logprob != 0)
    assert np.any(full.delta_logodds != 0)
    # the measures themselves: logodds = log P(own) - log P(other) for two labels
    own = continuation_logprob(model, tok, [t + " it was" for t in TEXTS], [CONTS[y] for y in LABELS])
    other = continuation_logprob(model, tok, [t + " it was" for t in TEXTS],
                                 [CONTS["neg" if y == "pos" else "pos"] for y in LABELS])
    np.testing.assert_allclose(full.base["logprob"], own, atol=1e-6)
    np.testing.assert_allclose(full.base["logodds"], own - other, atol=1e-6)
    np.testing.assert_array_equal(full.base["accuracy"], (own > other).astype(float))


def test_masked_delta_zero_without_units_nonzero_when_a_layer_is_zeroed():
    model, tok = load("bert")
    none = masked_prediction_delta(model, tok, MASKED, [1, 1, 3, 3], {1: []}, "zero")
    assert np.all(none.delta_logprob == 0) and np.all(none.delta_accuracy == 0)
    full = masked_prediction_delta(model, tok, MASKED, 1, {1: np.arange(N_UNITS)}, "zero")
    assert np.all(full.delta_logprob != 0)
    # base = log P(original word) at a single [MASK] in its place
    enc = tok(["the [MASK] is very good"], return_tensors="pt")
    with torch.inference_mode():
        lp = torch.log_softmax(model(**enc).logits[0, 2].double(), -1)
    assert full.base["logprob"][0] == pytest.approx(float(lp[tok.convert_tokens_to_ids("cat")]), abs=1e-6)


def test_random_units_exclude_the_ranked_and_are_seed_reproducible():
    ranked = {0: [1, 2, 3], 1: np.arange(10)}
    a = random_units(ranked, N_UNITS, n_random=5, seed=3)
    assert len(a) == 5
    for draw in a:
        assert len(draw[0]) == 3 and len(draw[1]) == 10
        assert not set(draw[0]) & {1, 2, 3} and not set(draw[1]) & set(range(10))
        assert len(set(draw[1])) == 10 and max(draw[1]) < N_UNITS
    b = random_units(ranked, N_UNITS, n_random=5, seed=3)
    assert all(np.array_equal(x[L], y[L]) for x, y in zip(a, b) for L in (0, 1))
    c = random_units(ranked, N_UNITS, n_random=5, seed=4)
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))
    with pytest.raises(InvalidInput) as e:
        random_units({0: np.arange(20)}, N_UNITS)
    assert e.value.field == "layer_units:0"


def test_intervention_effects_decoder():
    model, tok = load("gpt2")
    rng = np.random.default_rng(0)
    responses = {0: rng.normal(size=(4, N_UNITS)), 1: rng.normal(size=(4, N_UNITS))}
    unit_means, class_means = response_means(responses, LABELS)
    ranking = {1: rng.permutation(N_UNITS)}
    task = LabelTask(TEXTS, LABELS, CONTS, suffix=" it was")
    kw = dict(unit_means=unit_means, class_means=class_means, n_random=2, seed=1)
    r = intervention_effects(model, tok, task, ranking, [3, 10], **kw)
    assert r.measure == "logodds"
    assert {(mo, k) for mo, k, _ in r.effects} == {(mo, k) for mo in ("zero", "mean", "translate") for k in (3, 10)}
    e = r["zero", 10]
    assert e.ranked.shape == (4,) and e.random_draws.shape == (2, 4)
    for mean, (lo, hi) in [(e.mean_ranked, e.ci_ranked), (e.mean_random, e.ci_random),
                           (e.mean_difference, e.ci_difference)]:
        assert lo <= mean <= hi
    assert e.mean_difference == pytest.approx(e.mean_ranked - e.mean_random)
    # consistent with the single-intervention functions
    top = {1: ranking[1][:10]}
    one = label_logprob_delta(model, tok, TEXTS, LABELS, CONTS, top, "zero", suffix=" it was")
    np.testing.assert_allclose(e.ranked, one.delta_logodds, atol=1e-9)
    tr = r["translate", 3, "logprob"]
    pos = np.array([y == "pos" for y in LABELS])
    d = label_logprob_delta(model, tok, [t for t, p in zip(TEXTS, pos) if p], ["pos", "pos"], CONTS,
                            {1: ranking[1][:3]}, "translate", suffix=" it was",
                            source_mean=class_means["pos"], target_mean=class_means["neg"])
    np.testing.assert_allclose(tr.ranked[pos], d.delta_logprob, atol=1e-9)
    for k in (3, 10):  # random draws exclude the top-k, reproducibly
        assert all(not set(dr[1]) & set(r.top_units[k][1]) for dr in r.random_units[k])
    again = intervention_effects(model, tok, task, ranking, [3], modes=["mean"], **kw)
    np.testing.assert_array_equal(again["mean", 3].random_draws, r["mean", 3].random_draws)
    assert len(r.summary()) == 2 * 3 * 3


def test_intervention_effects_masked():
    model, tok = load("bert")
    task = MaskedTask(MASKED, [1, 1, 3, 3])
    r = intervention_effects(model, tok, task, {0: np.arange(N_UNITS)[::-1]}, [0, 8], modes=["zero"], n_random=2)
    assert r.measure == "logprob"
    assert np.all(r["zero", 0].ranked == 0) and np.all(r["zero", 0].random_draws == 0)
    assert np.any(r["zero", 8].ranked != 0)


@pytest.mark.parametrize("call, field", [
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [1]}, "scale"), "mode"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {1: [0, 37]}, "zero"), "layer_units:1"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [-1]}, "zero"), "layer_units:0"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {2: [0]}, "zero"), "layer_units:2"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [1, 1]}, "zero"), "layer_units:0"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [1]}, "zero", beta=float("nan")), "beta"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [1]}, "translate", beta=float("inf"),
                            source_mean={0: SRC}, target_mean={0: TGT}), "beta"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [1]}, "mean"), "values"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [1]}, "mean", values={1: MEANS}), "values:0"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [1]}, "mean", values={0: [1.0, 2.0]}), "values:0"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [1]}, "translate", target_mean={0: TGT}),
     "source_mean"),
    (lambda m, t: intervene(m, "gpt_neox", "mlp_post", {0: [1]}, "translate", source_mean={0: SRC}),
     "target_mean"),
    (lambda m, t: intervene(m, "gpt_neox", "attention", {0: [1]}, "zero"), "site"),
])
def test_bad_intervention_names_the_field(call, field):
    model, tok = load("gpt_neox")
    with pytest.raises(InvalidInput) as e:
        with call(model, tok):
            pass
    assert e.value.field == field
    assert _no_hooks(model)


def test_bad_measure_inputs_name_the_field():
    bert, btok = load("bert")
    neox, ntok = load("gpt_neox")
    cases = [
        (lambda: masked_prediction_delta(bert, btok, MASKED, 5, {0: [1]}, "zero"), "word_index"),
        (lambda: masked_prediction_delta(bert, btok, MASKED, [0, 1, 9, 0], {0: [1]}, "zero"), "word_index:2"),
        (lambda: masked_prediction_delta(bert, btok, MASKED, -1, {0: [1]}, "zero"), "word_index"),
        (lambda: masked_prediction_delta(bert, btok, MASKED, 1, {0: [1]}, "ablate"), "mode"),
        (lambda: masked_prediction_delta(neox, ntok, MASKED, 1, {0: [1]}, "zero"), "model_type"),
        (lambda: label_logprob_delta(bert, btok, TEXTS, LABELS, CONTS, {0: [1]}, "zero"), "model_type"),
        (lambda: label_logprob_delta(neox, ntok, TEXTS, ["pos", "meh", "pos", "neg"], CONTS, {0: [1]}, "zero"),
         "labels:1"),
        (lambda: label_logprob_delta(neox, ntok, TEXTS, LABELS, CONTS, {0: [1]}, "mean", values={0: MEANS},
                                     beta=float("nan")), "beta"),
        (lambda: intervention_effects(neox, ntok, LabelTask(TEXTS, LABELS, CONTS), {0: np.arange(N_UNITS)}, [3],
                                      modes=["mean"]), "unit_means"),
        (lambda: intervention_effects(neox, ntok, LabelTask(TEXTS, LABELS, CONTS), {0: np.arange(N_UNITS)}, [3],
                                      modes=["translate"]), "class_means"),
        (lambda: intervention_effects(neox, ntok, LabelTask(TEXTS, LABELS, CONTS), {0: np.arange(N_UNITS)}, [20],
                                      modes=["zero"]), "ks"),
        (lambda: intervention_effects(neox, ntok, LabelTask(TEXTS, LABELS, CONTS), {0: [0, 99]}, [1]), "ranking:0"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidInput) as e:
            call()
        assert e.value.field == field, (field, e.value)


def test_response_means_and_translate_to():
    responses = {0: np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])}
    means, by_class = response_means(responses, ["b", "a", "b"])
    np.testing.assert_allclose(means[0], [3.0, 5.0])
    np.testing.assert_allclose(by_class["b"][0], [3.0, 5.5])
    np.testing.assert_allclose(by_class["a"][0], [3.0, 4.0])
    assert response_means(responses)[1] is None
    model, tok = load("gpt_neox")
    cm = {c: {0: np.full(N_UNITS, v)} for c, v in (("pos", 1.0), ("neg", -1.0))}
    task = LabelTask(TEXTS, LABELS, CONTS)
    with pytest.raises(InvalidInput) as e:
        intervention_effects(model, tok, task, {0: np.arange(N_UNITS)}, [2], modes="translate", class_means=cm,
                             translate_to={"pos": "pos", "neg": "pos"}, n_random=1)
    assert e.value.field == "translate_to"
    with pytest.raises(InvalidInput) as e:
        intervention_effects(model, tok, task, {0: np.arange(N_UNITS)}, [2], modes="zero", seed=-1)
    assert e.value.field == "seed"


# ---------------------------------------------------------------- sentence encoders (EncoderTask)
DESCS = {"pos": "this product is very good", "neg": "this product is very bad"}


def load_encoder():
    """The tiny BERT as a base model without a head (as load_subject_model loads MiniLM)."""
    if "bert-base" not in _MODELS:
        from transformers import AutoModel, AutoTokenizer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModel.from_pretrained(tiny_model_dir("bert")).eval()
        _MODELS["bert-base"] = model, AutoTokenizer.from_pretrained(tiny_model_dir("bert"))
    return _MODELS["bert-base"]


def _hand_embed(model, tok, texts):
    """Mean over attended tokens of the last hidden state ([CLS]/[SEP] included), L2-normalised."""
    rows = []
    with torch.inference_mode():
        for t in texts:
            enc = tok([t], return_tensors="pt")
            h = model(**enc).last_hidden_state[0].double()
            e = h.mean(dim=0)
            rows.append((e / e.norm()).numpy())
    return np.stack(rows)


def _hand_scores(text_emb, desc_emb, labels, temperature=0.05):
    classes = list(DESCS)
    z = text_emb @ desc_emb.T / temperature
    lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    y = np.array([classes.index(v) for v in labels])
    own, other = lp[np.arange(len(y)), y], lp[np.arange(len(y)), 1 - y]
    return own, own - other, (own > other).astype(float)


def test_encoder_baseline_matches_the_softmax_over_cosines_and_no_units_change_nothing():
    model, tok = load_encoder()
    assert model.get_output_embeddings() is None and model.config.model_type == "bert"
    cfg = embedding_config(model, tok)
    assert cfg.pooling == ("mean",) and cfg.normalize
    none = embedding_label_delta(model, tok, TEXTS, LABELS, DESCS, {0: [], 1: []}, "zero", batch_size=3)
    assert none.measures == ("logodds", "logprob", "accuracy")
    for m in none.measures:
        assert np.all(none[m] == 0)  # exactly: the same batches, no edit
    texts = _hand_embed(model, tok, TEXTS)
    np.testing.assert_allclose(sentence_embeddings(model, tok, TEXTS, batch_size=3), texts, atol=1e-6)
    own, logodds, acc = _hand_scores(texts, _hand_embed(model, tok, list(DESCS.values())), LABELS)
    np.testing.assert_allclose(none.base["logprob"], own, atol=1e-5)
    np.testing.assert_allclose(none.base["logodds"], logodds, atol=1e-5)
    np.testing.assert_array_equal(none.base["accuracy"], acc)
    hot = embedding_label_delta(model, tok, TEXTS, LABELS, DESCS, {0: []}, "zero", temperature=1.0)
    np.testing.assert_allclose(hot.base["logodds"], logodds * 0.05, atol=1e-6)  # logits = cos / T


def test_encoder_zeroing_a_layer_moves_only_the_texts():
    model, tok = load_encoder()
    full = embedding_label_delta(model, tok, TEXTS, LABELS, DESCS, {1: np.arange(N_UNITS)}, "zero")
    assert np.all(full.delta_logprob != 0) and np.all(full.delta_logodds != 0)
    assert _no_hooks(model)
    clean_desc = _hand_embed(model, tok, list(DESCS.values()))
    with intervene(model, None, "mlp_post", {1: np.arange(N_UNITS)}, "zero"):
        texts = _hand_embed(model, tok, TEXTS)
        moved_desc = _hand_embed(model, tok, list(DESCS.values()))
    own, logodds, _ = _hand_scores(texts, clean_desc, LABELS)
    np.testing.assert_allclose(full.after["logprob"], own, atol=1e-5)  # descriptions embedded without it
    np.testing.assert_allclose(full.after["logodds"], logodds, atol=1e-5)
    wrong, _, _ = _hand_scores(texts, moved_desc, LABELS)
    assert not np.allclose(full.after["logprob"], wrong, atol=1e-3)  # (the test can tell the two apart)


def test_intervention_effects_encoder():
    model, tok = load_encoder()
    rng = np.random.default_rng(0)
    responses = {0: rng.normal(size=(4, N_UNITS)), 1: rng.normal(size=(4, N_UNITS))}
    unit_means, class_means = response_means(responses, LABELS)
    ranking = {0: rng.permutation(N_UNITS), 1: rng.permutation(N_UNITS)}
    task = EncoderTask(TEXTS, LABELS, DESCS)
    r = intervention_effects(model, tok, task, ranking, [3, 10], unit_means=unit_means, class_means=class_means,
                             n_random=2, seed=1)
    assert r.measure == "logodds"
    assert set(r.effects) == {(mo, k, m) for mo in ("zero", "mean", "translate") for k in (3, 10)
                              for m in ("logodds", "logprob", "accuracy")}
    for key in r.effects:
        e = r[key]
        assert e.ranked.shape == (4,) and e.random_draws.shape == (2, 4)
        assert np.isfinite(e.ranked).all() and np.isfinite(e.random_draws).all()
    assert np.any(r["zero", 10].ranked != 0)
    for k in (3, 10):  # random draws exclude the top-k
        for L in (0, 1):
            assert r.top_units[k][L] == ranking[L][:k].tolist()
            assert all(len(d[L]) == k and not set(d[L]) & set(r.top_units[k][L]) for d in r.random_units[k])
    one = embedding_label_delta(model, tok, TEXTS, LABELS, DESCS, {L: o[:10] for L, o in ranking.items()}, "mean",
                                values=unit_means)
    np.testing.assert_allclose(r["mean", 10].ranked, one.delta_logodds, atol=1e-9)
    np.testing.assert_allclose(r.baseline["logprob"], one.base["logprob"], atol=1e-9)
    neg = np.array([y == "neg" for y in LABELS])  # translate: each label's texts toward the next class
    d = embedding_label_delta(model, tok, [t for t, n in zip(TEXTS, neg) if n], ["neg", "neg"], DESCS,
                              {L: o[:3] for L, o in ranking.items()}, "translate",
                              source_mean=class_means["neg"], target_mean=class_means["pos"])
    np.testing.assert_allclose(r["translate", 3, "logprob"].ranked[neg], d.delta_logprob, atol=1e-6)
    assert _no_hooks(model)


def test_embedding_config_follows_the_sentence_transformers_files(tmp_path):
    import json
    import shutil

    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path / "st"
    shutil.copytree(tiny_model_dir("bert"), folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 5}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModel.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    cfg = embedding_config(model, tok)
    assert cfg.pooling == ("cls",) and not cfg.normalize and cfg.max_length == 5
    enc = tok(TEXTS[:1], return_tensors="pt", truncation=True, max_length=5)
    with torch.inference_mode():
        want = model(**enc).last_hidden_state[0, 0].double().numpy()
    np.testing.assert_allclose(sentence_embeddings(model, tok, TEXTS[:1])[0], want, atol=1e-6)
    assert embedding_config(model, tok, pooling="max").pooling == ("max",)
    (folder / "modules.json").write_text(json.dumps(modules + [
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    assert embedding_config(model, tok).normalize
    (folder / "modules.json").write_text(json.dumps(modules + [
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(InvalidInput) as e:
        embedding_config(model, tok)
    assert e.value.field == "model"


def test_bad_encoder_inputs_name_the_field():
    model, tok = load_encoder()
    call = lambda **kw: embedding_label_delta(model, tok, kw.pop("texts", TEXTS), kw.pop("labels", LABELS),  # noqa
                                              kw.pop("label_texts", DESCS), {0: [1]}, "zero", **kw)
    cases = [
        (dict(label_texts={"pos": "good"}), "label_texts"),
        (dict(label_texts={"pos": "good", "meh": "so so"}), "label_texts"),
        (dict(label_texts=["good", "bad"]), "label_texts"),
        (dict(label_texts={"pos": "good", "neg": " "}), "label_texts:neg"),
        (dict(labels=LABELS[:3]), "labels"),
        (dict(texts=["i love my phone", ""] + TEXTS[2:]), "texts:1"),
        (dict(temperature=0), "temperature"),
        (dict(temperature=-0.1), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(temperature="warm"), "temperature"),
        (dict(pooling="sum"), "pooling"),
    ]
    for kw, field in cases:
        with pytest.raises(InvalidInput) as e:
            call(**kw)
        assert e.value.field == field, (field, e.value)
    with pytest.raises(InvalidInput) as e:
        intervention_effects(model, tok, EncoderTask(TEXTS, LABELS, {"pos": "good"}), {0: np.arange(N_UNITS)}, [2])
    assert e.value.field == "label_texts"
    with pytest.raises(InvalidInput) as e:
        intervention_effects(model, tok, EncoderTask(TEXTS, LABELS, DESCS, temperature=0.0),
                             {0: np.arange(N_UNITS)}, [2])
    assert e.value.field == "temperature"
    with pytest.raises(InvalidInput) as e:
        intervention_effects(model, tok, object(), {0: np.arange(N_UNITS)}, [2])
    assert e.value.field == "task"
    assert _no_hooks(model)
