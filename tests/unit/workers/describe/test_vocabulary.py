"""The descriptor vocabulary: HDBSCAN on synthetic blobs (known clusters), naming, noise, keep."""

import numpy as np
import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.describe.vocabulary import build_vocabulary

# three tight blobs far apart + two isolated points; each descriptor's vector is fixed by its name
CENTRES = {"battery": 0, "sound": 1, "price": 2}
BLOBS = {
    "battery": ["battery", "batteries", "battery life", "bad battery", "charge", "charging"],
    "sound": ["sound", "audio", "sound quality", "great sound", "volume"],
    "price": ["price", "cost", "cheap", "expensive", "value"],
}
LONERS = ["kindness in action", "car engine"]


def _embed(words):
    rng = np.random.default_rng(0)
    out = []
    for w in words:
        v = np.zeros(16)
        blob = next((b for b, ms in BLOBS.items() if w in ms), None)
        if blob is None:
            v[8 + LONERS.index(w) * 3] = 40.0 if w in LONERS else 0.0  # far from everything
            v[9:] += np.random.default_rng(abs(hash(w)) % 1000).normal(0, 0.01, 7)
        else:
            v[CENTRES[blob] * 2] = 10.0
            v += rng.normal(0, 0.05, 16)
        out.append(v)
    return np.array(out)


def _lists():
    # frequencies: "battery" is the most frequent member of its blob, "sound quality" of its blob
    lists = [["battery", "charge"]] * 5 + [["battery"], ["batteries"], ["battery life"], ["bad battery"], ["charging"]]
    lists += [["sound quality", "volume"]] * 4 + [["sound quality"], ["sound"], ["audio"], ["great sound"]]
    lists += [["price", "cheap"], ["cost"], ["expensive"], ["value"], ["price"]]
    lists += [["kindness in action"], ["car engine"], None]  # None: a failed generation
    return lists


def test_blobs_become_clusters_named_by_their_most_frequent_member():
    v = build_vocabulary(_lists(), _embed, min_cluster_size=3)
    assert {c.name for c in v.clusters} == {"battery", "sound quality", "price"}
    for blob, name in (("battery", "battery"), ("sound", "sound quality"), ("price", "price")):
        assert {v.mapping[d] for d in BLOBS[blob]} == {name}
    assert {d for d, _ in v.noise} == set(LONERS) and all(v.mapping[d] == d for d in LONERS)
    battery = next(c for c in v.clusters if c.name == "battery")
    assert battery.members[:2] == (("battery", 6), ("charge", 5)) and battery.size == 6 and battery.count == 15
    assert v.names(["charge", "car engine"]) == {"battery", "car engine"}
    assert v.clusters[0].count >= v.clusters[-1].count  # most frequent first


def test_keep_leaves_descriptors_outside_clusters():
    v = build_vocabulary(_lists(), _embed, min_cluster_size=3, keep=["cost", "absent"])
    assert v.mapping["cost"] == "cost" and v.mapping["price"] == "price" and "absent" not in v.mapping
    assert v.params["kept"] == ["cost"]


def test_pca_reduction_gives_the_same_clusters_here():
    a = build_vocabulary(_lists(), _embed, min_cluster_size=3)
    b = build_vocabulary(_lists(), _embed, min_cluster_size=3, reduce_to=4)
    assert a.mapping == b.mapping


def test_bad_input():
    with pytest.raises(InvalidInput, match="min_cluster_size"):
        build_vocabulary(_lists(), _embed, min_cluster_size=1)
    with pytest.raises(InvalidInput, match="descriptors"):
        build_vocabulary([None, [], None], _embed)
    small = build_vocabulary([["a"], ["b"]], _embed, min_cluster_size=5)  # too few: all noise, no error
    assert small.mapping == {"a": "a", "b": "b"} and small.clusters == []


def test_cluster_selection_is_recorded_and_checked():
    assert build_vocabulary(_lists(), _embed, min_cluster_size=3).params["selection"] == "leaf"
    assert build_vocabulary(_lists(), _embed, min_cluster_size=3, selection="eom").params["selection"] == "eom"
    with pytest.raises(InvalidInput) as e:
        build_vocabulary(_lists(), _embed, selection="best")
    assert e.value.field == "selection"
