"""Descriptor generation per sentence: batched requests, duplicates asked once, failures counted
(never descriptors), per-sentence seeds, and the cache making a re-run free."""

from collections import Counter

import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.describe.descriptors import generate_descriptors
from neuroscribe.workers.generate import CachedBackend, FakeBackend


def _script(req):
    s = req.meta["sentence"]
    if "broken" in s:
        return "I am sorry, I cannot help with that."
    if "empty" in s:
        return ""
    words = [w.strip(".,!").lower() for w in s.split()][:3]
    return "\n".join(f"{i}. {w}" for i, w in enumerate(words, 1))


class Counting(FakeBackend):
    def __init__(self, script):
        super().__init__(script)
        self.requests = []

    def generate(self, requests, *, progress=True):
        self.requests += list(requests)
        return super().generate(requests, progress=progress)


SENTENCES = ["Great sound quality.", "The battery died.", "Great  sound quality.", "broken output here",
             "empty answer please", "The battery died."]


def test_descriptors_per_sentence_with_failures_counted():
    b = Counting(_script)
    got = generate_descriptors(b, SENTENCES, progress=False)
    assert len(b.requests) == 4  # whitespace-normalised duplicates asked once
    assert got.descriptors[0] == ("great", "sound", "quality") == got.descriptors[2]
    assert got.descriptors[1] == got.descriptors[5] == ("the", "battery", "died")
    assert got.descriptors[3] is None and got.descriptors[4] is None
    assert got.failures == Counter({"no list items": 1, "empty": 1}) and got.n_failed == 2
    assert got.prompt_version == "descriptors-v1" and got.generator["backend"] == "fake"


def test_seeds_depend_on_the_sentence_not_on_its_neighbours():
    a, b = Counting(_script), Counting(_script)
    generate_descriptors(a, ["one sentence", "two sentence"], seed=3, progress=False)
    generate_descriptors(b, ["two sentence"], seed=3, progress=False)
    seed_a = {r.meta["sentence"]: r.sampling.seed for r in a.requests}
    assert seed_a["two sentence"] == b.requests[0].sampling.seed != seed_a["one sentence"]


def test_rerun_is_served_by_the_cache(tmp_path):
    first = Counting(_script)
    generate_descriptors(CachedBackend(first, tmp_path), SENTENCES, progress=False)
    second = Counting(_script)
    again = generate_descriptors(CachedBackend(second, tmp_path), SENTENCES, progress=False)
    assert second.requests == [] and again.descriptors[0] == ("great", "sound", "quality")


def test_empty_dataset_is_an_error():
    with pytest.raises(InvalidInput, match="dataset"):
        generate_descriptors(FakeBackend(_script), [], progress=False)


def test_each_sample_has_its_own_seed_and_sample_zero_keeps_the_single_sample_seed():
    one, three = Counting(_script), Counting(_script)
    generate_descriptors(one, ["a sentence here"], seed=5, progress=False)
    got = generate_descriptors(three, ["a sentence here"], seed=5, samples=3, progress=False)
    seeds = [r.sampling.seed for r in three.requests]
    assert len(seeds) == len(set(seeds)) == 3
    assert one.requests[0].sampling.seed == seeds[0]  # a 1-sample run's cache serves sample 0
    assert len(got.samples[0]) == 3 and got.descriptors[0] == ("a", "sentence", "here")


def _flaky(req):
    """Fails on the first attempt of every sample (seed parity stands for a sampling accident),
    except for sentences that always fail."""
    if "broken" in req.meta["sentence"]:
        return "I am sorry, I cannot help with that."
    return "1. word" if req.key.endswith(".1") else ""


def test_failed_generations_are_retried_with_another_seed():
    b = Counting(_flaky)
    got = generate_descriptors(b, ["fine sentence", "broken sentence"], retries=1, progress=False)
    assert got.descriptors == [("word",), None]
    assert got.n_retried == 2 and got.n_recovered == 1
    assert got.failures == Counter({"no list items": 1})  # counted by its last reason
    first, retry = b.calls[0], b.calls[1]
    assert {r.meta["sentence"] for r in retry} == {"fine sentence", "broken sentence"}
    assert {r.sampling.seed for r in retry}.isdisjoint({r.sampling.seed for r in first})
    none = generate_descriptors(Counting(_flaky), ["fine sentence"], retries=0, progress=False)
    assert none.descriptors == [None] and none.failures == Counter({"empty": 1})


def test_samples_and_retries_must_be_sane():
    with pytest.raises(InvalidInput, match="samples"):
        generate_descriptors(FakeBackend(_script), ["x y"], samples=0, progress=False)
    with pytest.raises(InvalidInput, match="retries"):
        generate_descriptors(FakeBackend(_script), ["x y"], retries=-1, progress=False)
