"""VLLMBackend without vllm: the clear error, and the mappings against a fake ``vllm`` module."""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass, field

import pytest

from neuroscribe.errors import GenerationError
from neuroscribe.jobs import GeneratorSpec, SamplingSpec
from neuroscribe.workers.generate import GenerationRequest, make_backend

SPEC = GeneratorSpec(backend="vllm", model="org/some-model", sampling=SamplingSpec(seed=5), trust_remote_code=True)


def test_module_imports_without_vllm_and_construction_explains(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    mod = importlib.import_module("neuroscribe.workers.generate.vllm_backend")
    with pytest.raises(GenerationError, match=r"vllm is not installed: pip install 'neuroscribe\[vllm\]'"):
        mod.VLLMBackend(SPEC)
    with pytest.raises(GenerationError, match="vllm is not installed"):
        make_backend(SPEC)


class FakeTokenizer:
    chat_template = "{{ fake }}"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        assert not tokenize and add_generation_prompt
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False
        return {"input_ids": [ord(c) for c in text]}


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    repetition_penalty: float = 1.0
    seed: int | None = None


@dataclass
class Completion:
    text: str
    token_ids: list
    finish_reason: str


@dataclass
class RequestOutput:
    outputs: list = field(default_factory=list)


class LLM:
    instances: list["LLM"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        LLM.instances.append(self)

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append((prompts, sampling_params, use_tqdm))
        out = []
        for p, sp in zip(prompts, sampling_params):
            n = min(sp.max_tokens, 4)
            text = f" seed={sp.seed} prompt_len={len(p['prompt_token_ids'])} "
            out.append(RequestOutput([Completion(text, list(range(n)),
                                                 "length" if n == sp.max_tokens else "stop")]))
        return out


def _online(monkeypatch):
    """As if the machine were online (CI runs with HF_HUB_OFFLINE=1, which huggingface_hub reads at import)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams, mod.__version__ = LLM, SamplingParams, "0.0-fake"
    LLM.instances.clear()
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


def test_requests_map_to_sampling_params_and_back(fake_vllm, monkeypatch):
    _online(monkeypatch)  # "org/some-model" is not cached: vllm would download it
    b = make_backend(SPEC)
    (llm,) = LLM.instances
    assert llm.kwargs == {"model": "org/some-model", "seed": 5, "trust_remote_code": True}
    reqs = [
        GenerationRequest("a", ({"role": "user", "content": "hello"},),
                          SamplingSpec(temperature=0.7, top_p=0.9, max_new_tokens=3, repetition_penalty=1.2, seed=11)),
        GenerationRequest("b", ({"role": "system", "content": "s"}, {"role": "user", "content": "bye"}),
                          SamplingSpec(temperature=0.0, max_new_tokens=10, seed=12)),
    ]
    gens = b.generate(reqs, progress=False)
    prompts, params, use_tqdm = llm.calls[0]
    assert use_tqdm is False
    assert params == [SamplingParams(0.7, 0.9, 3, 1.2, 11), SamplingParams(0.0, SamplingSpec().top_p, 10, SamplingSpec().repetition_penalty, 12)]
    assert "".join(map(chr, prompts[1]["prompt_token_ids"])) == "<system>s<user>bye<assistant>"
    assert [g.key for g in gens] == ["a", "b"]
    assert gens[0].text == f"seed=11 prompt_len={len('<user>hello<assistant>')}"  # stripped
    assert (gens[0].finish_reason, gens[0].n_tokens) == ("length", 3)
    assert (gens[1].finish_reason, gens[1].n_tokens) == ("stop", 4)
    assert gens[0].sampling["seed_used"] == 11 and gens[0].sampling["seeding"] == "per_request"
    assert gens[1].sampling["seeding"] == "greedy" and gens[1].sampling["batch_size"] == 2
    assert gens[0].generator == {"backend": "vllm", "model": "org/some-model", "revision": None,
                                 "weight_sha256": None, "vllm_version": "0.0-fake"}


def test_engine_failure_becomes_generation_error(fake_vllm, monkeypatch):
    _online(monkeypatch)
    b = make_backend(SPEC)

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory")

    b.llm.generate = boom
    with pytest.raises(GenerationError, match="CUDA out of memory"):
        b.generate([GenerationRequest("a", ({"role": "user", "content": "x"},), SamplingSpec())], progress=False)
