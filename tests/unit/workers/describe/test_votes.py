"""Self-consistency (docs/methods.md#b1): a sentence keeps a vocabulary name only when at least
min_votes of its descriptor samples hold it; too few successful samples make it a failure."""

import pytest
from pydantic import ValidationError

from neuroscribe.jobs import DescribeJob
from neuroscribe.workers.describe.artefacts import DescriptorsArtefact, vote


def _names(d):
    return {x.split()[-1] for x in d}  # stands for the vocabulary: "great sound" and "sound" share "sound"


def test_a_name_needs_min_votes_samples():
    samples = [
        [["great sound", "battery"], ["sound"], ["clear sound", "price"]],  # sound 3/3, battery 1, price 1
        [["price"]],  # one successful sample of three
        [],  # every sample failed
    ]
    sets, dropped = vote(samples, _names, 2)
    assert sets == [["sound"], None, None]
    assert dropped == 2  # battery and price of the first sentence
    union, none_dropped = vote(samples, _names, 1)
    assert union == [["battery", "price", "sound"], ["price"], None] and none_dropped == 0


def test_a_name_twice_in_one_sample_is_one_vote():
    sets, _ = vote([[["loud sound", "soft sound"], ["battery"]]], _names, 2)
    assert sets == [[]]


def test_single_sample_artefact_votes_on_its_one_list():
    a = DescriptorsArtefact([["x"], None], {"empty": 1}, {"backend": "fake"})
    assert a.sample_lists() == [[["x"]], []]
    again = DescriptorsArtefact.from_json(a.to_json())
    assert again.sample_lists() == [[["x"]], []] and again.n_samples == 1


def test_job_refuses_more_votes_than_samples():
    with pytest.raises(ValidationError, match="min_votes"):
        DescribeJob(dataset={"name": "d", "texts": ["a b", "c d"]}, samples=2, min_votes=3)
