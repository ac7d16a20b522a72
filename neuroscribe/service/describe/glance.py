"""The describe page's results at a glance (``report.glance``): each key number beside its baseline.

* verified descriptions against the same test on permuted responses (the null);
* the share of units described against the share of random exemplar sets described (the chance
  baseline of the evaluation: k random sentences treated as a unit);
* P@K against the same for random exemplar sets, with the interval of their difference;
* the mean split-half Jaccard against the paper's (a reference, not chance);
* explanations (detection and embedding scores) against shuffled explanations.
"""

from __future__ import annotations

from neuroscribe.jobs import DescribeResult
from neuroscribe.service.describe.chance_text import pct_interval
from neuroscribe.service.report.glance import GlanceRow, difference_verdict, point_verdict

__all__ = ["describe_glance"]


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _verified(result: DescribeResult) -> list[GlanceRow]:
    vr = result.verification
    if vr is None:
        return []
    value = (f"{vr.n_verified:,} of {vr.n_pairs:,} descriptions ({vr.n_units_verified:,} units) predict the unit "
             f"on {vr.n_heldout:,} held-out sentences (FDR {vr.fdr:g})")
    if vr.n_verified_null is None:
        return [GlanceRow("verified descriptions", value, "responses permuted: not run",
                          "no comparison (the null was not run)", "summary")]
    words = ("above the permuted null", "below the permuted null", "")
    return [GlanceRow("verified descriptions", value, f"responses permuted across sentences: {vr.n_verified_null:,}",
                      point_verdict(vr.n_verified, vr.n_verified_null, words), "summary")]


def _described(result: DescribeResult) -> list[GlanceRow]:
    share = result.n_described / result.n_units if result.n_units else None
    value = f"{result.n_described:,} of {result.n_units:,} units ({_pct(share)})"
    e = result.evaluation
    if e is None or not e.baseline_sets:
        return [GlanceRow("units described", value, "random exemplar sets: not computed (the dataset has no labels)",
                          "no comparison (no chance baseline)", "units")]
    chance = e.baseline_n_units / e.baseline_sets
    return [GlanceRow("units described", value,
                      f"random exemplar sets of {result.n_exemplars} sentences: {e.baseline_n_units:,} of "
                      f"{e.baseline_sets:,} described ({_pct(chance)})", point_verdict(share, chance), "units")]


def _precision(result: DescribeResult) -> list[GlanceRow]:
    e = result.evaluation
    if e is None:
        return []
    rows = []
    none = (None,) * len(e.ks)
    for j, (k, p, b) in enumerate(zip(e.ks, e.precision, e.baseline_precision or none)):
        paper = f"; paper P@2 {100 * e.paper_precision_at_2:.0f}%" if k == 2 else ""
        value = f"{_pct(p)}{pct_interval(e.precision_ci, j)} of {e.n_units:,} described units"
        if b is None:
            rows.append(GlanceRow(f"precision@{k} vs the reference labels", value,
                                  "random exemplar sets: not computed" + paper, "no comparison (no chance baseline)",
                                  "evaluation"))
            continue
        d = (e.precision_minus_chance_ci or none)[j]
        verdict = difference_verdict(*d) if d is not None else point_verdict(p, b)
        if d is not None:
            verdict += f" (difference {100 * d[0]:+.1f} to {100 * d[1]:+.1f} points)"
        rows.append(GlanceRow(f"precision@{k} vs the reference labels", value,
                              f"random exemplar sets: {_pct(b)}{pct_interval(e.baseline_precision_ci, j)}{paper}", verdict,
                              "evaluation"))
    return rows


def _consistency(result: DescribeResult) -> list[GlanceRow]:
    c = result.consistency
    if c is None:
        return []
    value = "undefined" if c.mean is None else f"mean {c.mean:.3f} over {c.n_defined:,} units"
    words = ("above the paper's", "below the paper's", "")
    return [GlanceRow("split-half Jaccard of the descriptions", value,
                      f"the paper's mean {c.paper_mean:g} (a reference, not chance)",
                      point_verdict(c.mean, c.paper_mean, words), "consistency")]


def _explanations(result: DescribeResult) -> list[GlanceRow]:
    r = getattr(result, "explanations", None)
    if r is None:
        return []
    rows = []
    for name, s in (("explanations: detection balanced accuracy", r.detection),
                    ("explanations: embedding AUROC", r.embedding)):
        if s is None or s.mean is None:
            continue
        ci = "" if s.ci is None else f" [{s.ci[0]:.2f}–{s.ci[1]:.2f}]"
        base = f"chance {s.chance:g}"
        if s.shuffled_mean is not None:
            sci = "" if s.shuffled_ci is None else f" [{s.shuffled_ci[0]:.2f}–{s.shuffled_ci[1]:.2f}]"
            base = f"shuffled explanations (another unit's): {s.shuffled_mean:.2f}{sci}; {base}"
        rows.append(GlanceRow(name, f"{s.mean:.2f}{ci} over {s.n_units:,} units", base,
                              s.verdict or "no comparison", "explanations"))
    return rows


def describe_glance(result: DescribeResult) -> list[GlanceRow]:
    """The rows of the describe page's glance box."""
    return (_verified(result) + _described(result) + _precision(result) + _consistency(result)
            + _explanations(result))
