"""Bootstrap intervals of precision@K / recall@K and of P@K minus its chance row, on constructed
rankings with known answers."""

import numpy as np

from neuroscribe.workers.describe.intervals import difference_intervals, pr_intervals
from neuroscribe.workers.describe.quality import precision_recall_at_k


def _pr(n_units: int, n_hit: int):
    """n_units units with one descriptor each; the first n_hit match their reference."""
    assigned = [["positive"]] * n_units
    reference = [frozenset({"positive"})] * n_hit + [frozenset({"negative"})] * (n_units - n_hit)
    return precision_recall_at_k(assigned, reference, ks=(1,))


def test_all_hits_give_a_point_interval_and_half_hits_cover_one_half():
    assert pr_intervals(_pr(50, 50)).precision == ((1.0, 1.0),)
    lo, hi = pr_intervals(_pr(400, 200)).precision[0]
    assert lo < 0.5 < hi
    # the normal approximation of a proportion's interval: 1.96 * sqrt(.25 / 400) = 0.049
    assert 0.07 < hi - lo < 0.13


def test_the_interval_narrows_with_more_units():
    small = pr_intervals(_pr(40, 20)).precision[0]
    big = pr_intervals(_pr(4000, 2000)).precision[0]
    assert big[1] - big[0] < (small[1] - small[0]) / 5


def test_difference_to_chance_says_which_side():
    good, chance, bad = pr_intervals(_pr(300, 270)), pr_intervals(_pr(300, 150), seed=1), pr_intervals(_pr(300, 60))
    (lo, hi), = difference_intervals(good, chance)
    assert lo > 0 and abs((lo + hi) / 2 - 0.4) < 0.05
    (lo, hi), = difference_intervals(bad, chance)
    assert hi < 0
    (lo, hi), = difference_intervals(pr_intervals(_pr(300, 150), seed=5), chance)
    assert lo < 0 < hi


def test_no_described_unit_has_no_interval():
    pr = precision_recall_at_k([[]] * 3, [frozenset({"x"})] * 3, ks=(1, 2))
    iv = pr_intervals(pr)
    assert iv.precision == (None, None) and np.isnan(iv.precision_draws).all()
