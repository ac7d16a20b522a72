"""The evaluation lines of the describe summary: "below chance" whenever P@K is under its chance
row, and the bootstrap interval of the difference saying whether the two can be told apart."""

from neuroscribe.jobs.describe import EvaluationReport
from neuroscribe.service.describe.files import chance_lines


def _report(precision, baseline, diffs):
    return EvaluationReport(label_names={"1": "positive"}, ks=(1, 2), precision=precision, recall=(0.5, 0.5),
                            n_units=10, n_recall_units=10, n_units_total=20, baseline_sets=1000,
                            baseline_precision=baseline, baseline_recall=(0.5, 0.5), bootstrap=1000,
                            precision_minus_chance_ci=diffs)


def test_below_chance_is_said_with_the_interval_of_the_difference():
    lines = chance_lines(_report((0.70, 0.78), (0.79, 0.79), ((-0.12, -0.06), (-0.04, 0.02))))
    assert lines[0].strip().startswith("below chance: P@1, P@2")
    assert "P@1 below chance (-12.0 to -6.0 points)" in lines[1]
    assert "P@2 not told apart from chance (-4.0 to +2.0 points)" in lines[1]


def test_above_chance_is_not_called_below():
    lines = chance_lines(_report((0.95, 0.90), (0.79, 0.79), ((0.10, 0.20), (0.05, 0.17))))
    assert len(lines) == 1 and "below chance" not in lines[0] and "P@1 above chance" in lines[0]


def test_an_older_result_without_intervals_still_says_below_chance():
    lines = chance_lines(_report((0.70, 0.80), (0.79, 0.79), ()))
    assert lines == ["  below chance: P@1 (the descriptions match the labels less often than random exemplar sets do)"]
