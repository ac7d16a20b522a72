"""FakeBackend, CachedBackend and the backend registry: pure Python, no model."""

from __future__ import annotations

import json
import re
import sys

import pytest

from neuroscribe.errors import GenerationError, InvalidInput
from neuroscribe.jobs import GeneratorSpec, SamplingSpec
from neuroscribe.workers.generate import (
    CachedBackend,
    FakeBackend,
    Generation,
    GenerationRequest,
    LLMBackend,
    make_backend,
    register_backend,
)
from neuroscribe.workers.generate.fake import fake_sentences


def req(key: str, text: str = "hello", seed: int = 0, meta: dict | None = None, **sampling) -> GenerationRequest:
    return GenerationRequest(key, ({"role": "user", "content": text},), SamplingSpec(seed=seed, **sampling), meta or {})


def concept_meta(concept="cat", polarity="pos", style="fact", n=8) -> dict:
    return {"concept": concept, "polarity": polarity, "style": style, "n": n}


def numbered(text: str) -> list[str]:
    lines = text.splitlines()
    assert all(re.match(rf"{i}\. \S", line) for i, line in enumerate(lines, 1)), text
    return [line.split(". ", 1)[1] for line in lines]


# --------------------------------------------------------------------------- FakeBackend


def test_fake_scripted_callable_and_sequence():
    b = FakeBackend(lambda r: r.messages[-1]["content"].upper())
    assert [g.text for g in b.generate([req("a", "x y"), req("b", "z")])] == ["X Y", "Z"]
    seq = FakeBackend(["one", "two", "three"])
    assert [g.text for g in seq.generate([req("a"), req("b")])] == ["one", "two"]
    assert [g.text for g in seq.generate([req("c")])] == ["three"]
    with pytest.raises(GenerationError, match="exhausted"):
        seq.generate([req("d")])
    assert [len(c) for c in seq.calls] == [2, 1, 1] and seq.n_generated == 4


def test_fake_result_fields_and_order():
    b = FakeBackend()
    reqs = [req(f"k{i}", f"prompt {i}", seed=i) for i in range(5)]
    gens = b.generate(reqs)
    assert [g.key for g in gens] == [r.key for r in reqs]
    g = gens[3]
    assert g.generator["backend"] == "fake" and g.generator["model"] == "fake"
    assert g.sampling == SamplingSpec(seed=3).model_dump() | {"seed_used": 3, "seeding": "per_request", "batch_size": 5}
    assert g.finish_reason == "stop" and g.n_tokens == len(g.text.split())
    assert b.generate(reqs)[3].text == g.text  # deterministic
    assert len({x.text for x in gens}) == 5


def test_fake_truncates_to_max_new_tokens():
    (g,) = FakeBackend().generate([req("a", meta=concept_meta(n=10), max_new_tokens=7)])
    assert g.finish_reason == "length" and g.n_tokens == 7 and len(g.text.split()) == 7


@pytest.mark.parametrize("style", ["fact", "story"])
def test_fake_default_sentences(style):
    b = FakeBackend()
    pos, neg, pos_other_seed = b.generate([
        req("p", seed=1, meta=concept_meta("guitar", "pos", style, 12)),
        req("n", seed=1, meta=concept_meta("guitar", "neg", style, 12)),
        req("p2", seed=2, meta=concept_meta("guitar", "pos", style, 12)),
    ])
    p, n = numbered(pos.text), numbered(neg.text)
    assert len(p) == len(set(p)) == 12 and len(n) == len(set(n)) == 12
    assert all("guitar" in s.lower() for s in p)
    assert any("guitars" in s.lower() for s in p + numbered(pos_other_seed.text))  # varied forms
    assert not any("guitar" in s.lower() for s in n)
    assert all(4 <= len(s.split()) <= 40 for s in p + n)
    assert pos_other_seed.text != pos.text
    assert b.generate([req("p", seed=1, meta=concept_meta("guitar", "pos", style, 12))])[0].text == pos.text


def test_fake_sentences_many_and_short_concepts():
    assert len(set(fake_sentences("bus", "neg", "story", 150, seed=0))) == 150
    assert not any(re.search(r"\bbus", s.lower()) for s in fake_sentences("bus", "neg", "fact", 60, seed=3))


def test_request_validation():
    with pytest.raises(InvalidInput):
        GenerationRequest("a", ({"role": "robot", "content": "x"},), SamplingSpec())
    with pytest.raises(InvalidInput):
        GenerationRequest("a", (), SamplingSpec())
    r = GenerationRequest("a", [{"role": "user", "content": "x"}], SamplingSpec())
    assert isinstance(r.messages, tuple) and r.meta == {}


# --------------------------------------------------------------------------- CachedBackend


def test_cache_second_call_generates_nothing(tmp_path):
    inner = FakeBackend()
    cached = CachedBackend(inner, tmp_path)
    reqs = [req(f"k{i}", f"prompt {i}", seed=i) for i in range(4)]
    first = cached.generate(reqs)
    assert len(inner.calls) == 1 and inner.n_generated == 4
    assert len(list(tmp_path.rglob("*.json"))) == 4 and not list(tmp_path.rglob("*.tmp"))
    renamed = [GenerationRequest(f"other{i}", r.messages, r.sampling) for i, r in enumerate(reqs)]
    second = cached.generate(renamed)
    assert len(inner.calls) == 1  # nothing generated
    assert [g.text for g in second] == [g.text for g in first]
    assert [g.key for g in second] == [f"other{i}" for i in range(4)]  # the caller's keys, not the cached ones
    assert cached.info == inner.info and isinstance(cached, LLMBackend)


def test_cache_partial_generates_only_missing(tmp_path):
    inner = FakeBackend()
    cached = CachedBackend(inner, tmp_path)
    reqs = [req(f"k{i}", f"prompt {i}", seed=i) for i in range(5)]
    cached.generate([reqs[1], reqs[3]])
    gens = cached.generate(reqs)
    assert [len(c) for c in inner.calls] == [2, 3]
    assert [r.key for r in inner.calls[1]] == ["k0", "k2", "k4"]
    assert [g.key for g in gens] == [r.key for r in reqs]
    assert [g.text for g in gens] == [g.text for g in FakeBackend().generate(reqs)]
    assert (cached.hits, cached.misses) == (2, 5)


def test_cache_key_covers_sampling_messages_info_and_meta(tmp_path):
    inner = FakeBackend()
    cached = CachedBackend(inner, tmp_path)
    cached.generate([req("a", "hello", seed=1)])
    for changed in (req("a", "hello", seed=2), req("a", "hello!", seed=1), req("a", "hello", seed=1, top_p=0.5),
                    req("a", "hello", seed=1, meta=concept_meta())):
        n = inner.n_generated
        cached.generate([changed])
        assert inner.n_generated == n + 1, changed
    other_model = FakeBackend()
    other_model.info = dict(other_model.info, model="fake-2")
    CachedBackend(other_model, tmp_path).generate([req("a", "hello", seed=1)])
    assert other_model.n_generated == 1


def test_cache_duplicates_in_one_call_generate_once(tmp_path):
    inner = FakeBackend()
    gens = CachedBackend(inner, tmp_path).generate([req("a", seed=1), req("b", seed=1), req("c", seed=2)])
    assert inner.n_generated == 2 and [g.key for g in gens] == ["a", "b", "c"] and gens[0].text == gens[1].text


def test_cache_corrupt_file_is_a_miss(tmp_path):
    inner = FakeBackend()
    cached = CachedBackend(inner, tmp_path)
    (good,) = cached.generate([req("a", seed=1)])
    (path,) = tmp_path.rglob("*.json")
    path.write_text('{"generation": {"key": "a", "te')  # a crash mid-write by some other tool
    (again,) = cached.generate([req("a", seed=1)])
    assert inner.n_generated == 2 and again.text == good.text
    assert Generation.from_dict(json.loads(path.read_text())["generation"]).text == good.text
    path.write_text(json.dumps({"generation": {"key": "a"}}))  # parses, but is not a Generation
    cached.generate([req("a", seed=1)])
    assert inner.n_generated == 3


def test_cache_chunks_save_progress_before_a_crash(tmp_path):
    class Flaky(FakeBackend):
        def generate(self, requests, *, progress=True):
            if len(self.calls) == 1:
                raise GenerationError("server died")
            return super().generate(requests, progress=progress)

    inner = Flaky()
    reqs = [req(f"k{i}", seed=i) for i in range(4)]
    with pytest.raises(GenerationError):
        CachedBackend(inner, tmp_path, chunk_size=2).generate(reqs)
    resumed = FakeBackend()
    CachedBackend(resumed, tmp_path, chunk_size=2).generate(reqs)
    assert [r.key for c in resumed.calls for r in c] == ["k2", "k3"]


# --------------------------------------------------------------------------- registry


def test_make_backend_fake_and_unknown():
    b = make_backend(GeneratorSpec.from_string("fake"))
    assert isinstance(b, FakeBackend) and b.generate([req("a")])[0].key == "a"
    with pytest.raises(InvalidInput, match=r"unknown backend 'nope'; known: .*fake.*transformers"):
        make_backend(GeneratorSpec.model_construct(backend="nope"))


def test_register_backend():
    from neuroscribe.workers import generate

    original, made = generate._REGISTRY["fake"], []
    register_backend("fake", lambda spec, **options: made.append(spec) or FakeBackend(["scripted"]))
    try:
        assert make_backend(GeneratorSpec.from_string("fake")).generate([req("a")])[0].text == "scripted"
        assert len(made) == 1
    finally:
        register_backend("fake", original)


def test_package_import_is_light():
    import subprocess

    code = ("import sys, neuroscribe.workers.generate; "
            "print(sorted(m for m in ('torch', 'transformers', 'httpx', 'vllm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
