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
