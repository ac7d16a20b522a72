"""Valid exemplars on constructed artefacts with known answers: a unit is described only from
distinct sentences it fires on whose descriptors are known, and from at least the minimum of them;
the others get a status (too few valid exemplars, rare, dead, no descriptor passed), counted in the
result with the duplicates collapsed and the hub sentences; an older result still parses."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import hypergeom

from neuroscribe.jobs import DescribeJob, DescribeResult, Pooling, SubjectModelSpec, parse_result
from neuroscribe.jobs.describe import DatasetSpec
from neuroscribe.service.describe.files import format_describe_summary
from neuroscribe.workers.describe.descriptions import assign, exemplar_hubs, min_valid_exemplars, unit_statuses
from neuroscribe.workers.describe.exemplar_stream import QUANTILE_LEVELS, ExemplarsArtefact, FiringStats
from neuroscribe.workers.describe.stages import DescriptorsArtefact, VocabularyArtefact, analysis_stage
from neuroscribe.workers.describe.vocabulary import Vocabulary

# 21 rows, 20 distinct sentences: row 20 repeats row 3. Descriptors: rows 0-9 "a", 10-14 "b", 15-19 failed.
TEXTS = tuple(f"sentence {i}" for i in range(20)) + ("sentence  3 ",)
SETS = [["a"]] * 10 + [["b"]] * 5 + [None] * 5 + [["a"]]
LABELS = tuple("1" if i < 10 or i == 20 else "0" for i in range(21))
K = 10  # 50% of the 20 distinct sentences
ROWS = np.array([
    list(range(10)),  # 0 described: fires on 9 (row 9 is <= 0), all "a"
    [15, 16, 17, 18, 19, 10, 0, 1, 2, 3],  # 1 fires on 6, but 5 of them failed: one valid exemplar
    list(range(10)),  # 2 dead
    [11, 12, 0, 1, 2, 3, 4, 5, 6, 7],  # 3 rare: fires on 2
    [5, 6, 7, 8, 9, 10, 11, 12, 13, 14],  # 4 fires on 10, half "a" half "b": nothing reaches t = 60%
])
VALUES = np.array([
    [10, 9, 8, 7, 6, 5, 4, 3, 2, -1],
    [6, 5, 4, 3, 2, 1, 0, -0.05, -0.1, -0.15],
    [0, -0.01, -0.02, -0.03, -0.04, -0.05, -0.06, -0.07, -0.08, -0.09],
    [2, 1, 0, -1, -2, -3, -4, -5, -6, -7],
    [10, 9, 8, 7, 6, 5, 4, 3, 2, 1],
], np.float32)
N_FIRING = np.array([9, 6, 0, 2, 10])


def _job(**kw):
    data = DatasetSpec(name="t", texts=TEXTS, labels=LABELS, label_names={"1": "a", "0": "b"})
    return DescribeJob(dataset=data, model=SubjectModelSpec(name="tiny", pooling=Pooling.max), top_k_percent=50,
                       threshold=60, consistency=False, **kw)


def _artefacts():
    d = DescriptorsArtefact([None if s is None else list(s) for s in SETS], {"empty": 5}, {"backend": "fake"})
    v = VocabularyArtefact(Vocabulary({"a": "a", "b": "b"}, [], [("a", 11), ("b", 5)], {}), SETS, [])
    firing = FiringStats("zero", 20, np.zeros(5, np.float32), N_FIRING, VALUES[:, 0].copy(),
                         np.zeros((5, len(QUANTILE_LEVELS)), np.float32))
    subject = {"model_id": "tiny", "revision": None, "weight_sha256": "0" * 64, "model_type": "bert",
               "site": "mlp_post", "pooling": "max", "environment": {}, "n_saturated": 0}
    e = ExemplarsArtefact([0], 5, K, ROWS, VALUES, [], subject, firing, None)
    return d, v, e


@pytest.fixture(scope="module")
def result():
    return analysis_stage(_job(), *_artefacts(), neuroscribe_version="test")


def test_statuses_and_f_over_valid_exemplars_only(result):
    u = result.units
    assert [x.status for x in u] == ["described", "too few valid exemplars", "dead", "rare", "no descriptor passed"]
    (a,) = u[0].descriptors
    assert (a.descriptor, a.count, a.f) == ("a", 9, 100.0) and u[0].n_valid == 9  # row 9 does not fire
    assert a.base_rate == pytest.approx(100 * 10 / 15)  # population: distinct sentences with descriptors
    assert a.p == pytest.approx(hypergeom.sf(8, 15, 10, 9), rel=1e-9)
    assert u[1].n_valid == 1 and u[1].descriptors == () and u[1].n_firing == 6  # described from one? never
    assert u[2].descriptors == () and u[2].n_firing == 0 and u[2].firing_density == 0.0
    assert u[3].descriptors == () and u[4].descriptors == () and u[4].n_valid == 10
    assert result.n_described == 1
    assert u[0].reference == ("a",) and u[2].reference == ()  # labels of the exemplars it fires on
    assert u[1].n_failed == 5 and u[0].n_failed == 0


def test_duplicates_counts_and_hubs(result):
    v = result.validity
    assert v.n_duplicates_collapsed == 1 and result.descriptors.n_distinct_sentences == 20
    assert result.units[0].exemplar_counts == (1, 1, 1, 2, 1, 1, 1, 1, 1, 1)  # "sentence 3" occurs twice
    assert (v.n_firing, v.n_dead, v.n_rare, v.n_too_few_valid, v.n_no_descriptor, v.n_described) == (4, 1, 1, 1, 1, 1)
    assert v.min_valid == 5 and v.min_valid_fraction == 0.5 and v.min_valid_exemplars == 5
    # fired-on exemplars: rows 5-8 (units 0, 4), 10 (1, 4), 11-12 (3, 4) twice; 0-4, 13-19 once
    assert [(h.row, h.n_units) for h in v.hubs] == [(5, 2), (6, 2), (7, 2), (8, 2), (10, 2), (11, 2), (12, 2),
                                                     (0, 1), (1, 1), (2, 1)]
    assert v.hubs[0].text == "sentence 5" and v.n_hub_sentences == 20  # 5% of 5 units: any exemplar
    line = next(x for x in format_describe_summary(result).splitlines() if "units fire" in x)
    assert "4 of 5 units fire, 1 dead, 1 rare, 1 too few valid exemplars (< 5)" in line
    assert "1 described; 1 duplicate sentences collapsed; 20 hub sentences" in line


def test_minimum_follows_the_parameters():
    assert min_valid_exemplars(10) == 5 and min_valid_exemplars(30) == 15 and min_valid_exemplars(3) == 5
    assert min_valid_exemplars(10, 1, 0.0) == 1 and min_valid_exemplars(7, 2, 0.5) == 4
    lax = analysis_stage(_job(min_valid=1, min_valid_fraction=0.1), *_artefacts(), neuroscribe_version="test")
    u = lax.units
    assert [x.status for x in u] == ["described", "described", "dead", "described", "no descriptor passed"]
    assert [d.descriptor for d in u[1].descriptors] == ["b"] and u[1].descriptors[0].f == 100.0
    assert lax.validity.min_valid_exemplars == 1
    strict = analysis_stage(_job(min_valid=10), *_artefacts(), neuroscribe_version="test")
    assert [x.status for x in strict.units] == ["rare", "rare", "dead", "rare", "no descriptor passed"]
    assert any("fewer than the 11" in w for w in analysis_stage(_job(min_valid=11), *_artefacts(),
                                                                  neuroscribe_version="test").warnings)


def test_masked_assignment_leaves_small_units_out_of_the_tests():
    sets = [{"a"}] * 6 + [{"b"}] * 6
    ex = np.array([[0, 1, 2, 3], [0, 6, 7, 8], [6, 7, 8, 9]])
    mask = np.array([[True, True, True, False], [True, False, False, False], [True] * 4])
    a = assign(sets, ex, mask=mask, min_valid=2, threshold=50, family="all")
    assert [u.k for u in a.units] == [3, 1, 4] and [u.n_valid for u in a.units] == [3, 1, 4]
    assert [u.names for u in a.units] == [("a",), (), ("b",)]
    assert set(a.tested.unit.tolist()) == {0, 2} and a.n_tests == 2 * 2  # unit 1 is not tested
    assert a.units[0].descriptors[0].count == 3  # row 3 is masked
    plain = assign(sets, ex, threshold=50)
    assert [u.k for u in plain.units] == [4, 4, 4] and plain.units[1].names == ("b",)


def test_statuses_and_hubs_helpers():
    assert unit_statuses([0, 3, 9, 9, 9], [0, 3, 4, 9, 9], [0, 0, 0, 0, 2], 5) == [
        "dead", "rare", "too few valid exemplars", "no descriptor passed", "described"]
    hubs, n = exemplar_hubs(np.array([[0, 1], [1, 2], [1, 0]]), np.array([[True, True], [True, False],
                                                                         [True, True]]), 4, top=2, share=0.5)
    assert hubs == [(1, 3), (0, 2)] and n == 2


def test_a_result_without_the_new_fields_still_parses(result):
    data = json.loads(result.model_dump_json())
    del data["validity"]
    new = ("status", "n_valid", "exemplar_counts", "firing_threshold", "n_firing", "firing_density",
           "max_activation", "quantiles")
    for u in data["units"]:
        for key in new:
            del u[key]
    old = parse_result(json.dumps(data))
    assert isinstance(old, DescribeResult) and old.validity is None
    assert old.units[0].status is None and old.units[0].quantiles == () and old.units[0].descriptors
    assert "units fire" not in format_describe_summary(old)
    assert parse_result(result.model_dump_json()) == result
