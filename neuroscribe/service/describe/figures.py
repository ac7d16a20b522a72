"""The figures of a describe result's page (docs/methods.md#b), drawn with the report kit; each saves
``NAME.png`` beside ``NAME.csv`` (the numbers it plots) and returns a ``FigureData``, or ``None`` when
the result holds nothing for it:

* ``consistency_histogram``: the per-unit split-half Jaccard (B.5), when the result has a consistency;
* ``precision_recall_figure``: P@K and R@K against the reference labels (B.6), when it has an evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroscribe.jobs import DescribeResult
from neuroscribe.service.report.plotting import (
    OKABE_ITO,
    FigureData,
    compact_number,
    integer_locator,
    new_figure,
    number_formatter,
    save_png,
    write_csv,
)

__all__ = ["consistency_histogram", "precision_recall_figure"]


def _count(n: int) -> str:
    return f"{n:,}"


def consistency_histogram(result: DescribeResult, out_dir: Path, name: str = "consistency_hist") -> FigureData | None:
    """Histogram of the per-unit split-half Jaccard (the result's own bins); ``None`` without a consistency."""
    c = result.consistency
    if c is None:
        return None
    edges = np.asarray(c.bin_edges, dtype=float)
    counts = np.asarray(c.histogram, dtype=float)
    fig = new_figure(7.0, 3.4)
    ax = fig.add_subplot()
    if len(edges) == len(counts) + 1 and len(counts):
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=OKABE_ITO[4], edgecolor="#333333",
               linewidth=0.5, label=f"units ({compact_number(c.n_defined)})")
    if c.mean is not None:
        ax.axvline(c.mean, color=OKABE_ITO[5], linestyle="--", linewidth=1.3, label=f"mean {c.mean:.2f}")
    ax.axvline(c.paper_mean, color="#333333", linestyle=":", linewidth=1.3, label=f"paper {c.paper_mean:g}")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("Jaccard of the two halves' descriptor sets")
    ax.set_ylabel("units")
    ax.yaxis.set_major_locator(integer_locator())
    ax.yaxis.set_major_formatter(number_formatter())
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Split-half consistency per unit", fontsize=10)
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    save_png(fig, png)
    header = ("bin_lo", "bin_hi", "n_units")
    rows = tuple((float(edges[i]), float(edges[i + 1]), int(n)) for i, n in enumerate(c.histogram)
                 if i + 1 < len(edges))
    write_csv(csv_path, header, rows)
    mean = "undefined" if c.mean is None else f"{c.mean:.3f}"
    caption = (f"Per-unit Jaccard |A ∩ B| / |A ∪ B| of the descriptors assigned on the calibration "
               f"({_count(c.n_calibration)} sentences) and validation ({_count(c.n_validation)}) halves "
               f"(seed {c.seed}, stratified by {c.stratified_by}), over the {_count(c.n_defined)} units described "
               f"on at least one half; the {_count(c.n_both_empty)} units with no descriptor on either half are "
               f"excluded (not counted as 1). {_count(c.n_one_side_empty)} units described on one half only score 0. "
               f"The last bin includes J = 1. Dashed: our mean ({mean}); dotted: the paper's {c.paper_mean:g} "
               "(Mondal et al. 2024).")
    return FigureData(name, "Split-half consistency", caption, png, csv_path, header, rows)


def precision_recall_figure(result: DescribeResult, out_dir: Path, name: str = "precision_recall") -> FigureData | None:
    """P@K and R@K per K against the reference labels, the paper's P@2 and R@2 marked; ``None`` without an
    evaluation. The CSV holds the fractions (K = 2 is always a row: the paper's numbers are plotted there)."""
    e = result.evaluation
    if e is None:
        return None
    ks = [int(k) for k in e.ks]
    prec = np.array([np.nan if p is None else 100 * p for p in e.precision], dtype=float)
    rec = np.array([np.nan if r is None else 100 * r for r in e.recall], dtype=float)
    fig = new_figure(5.6, 3.4)
    ax = fig.add_subplot()
    ax.plot(ks, prec, marker="o", color=OKABE_ITO[4], label="precision@K (ours)")
    ax.plot(ks, rec, marker="s", color=OKABE_ITO[0], label="recall@K (ours)")
    none = (None,) * len(ks)
    bprec = e.baseline_precision or none
    brec = e.baseline_recall or none
    if e.baseline_sets:
        for vals, color, what in ((bprec, OKABE_ITO[4], "precision"), (brec, OKABE_ITO[0], "recall")):
            ax.plot(ks, [np.nan if v is None else 100 * v for v in vals], linestyle="--", color=color, alpha=0.7,
                    label=f"{what}@K, random exemplar sets")
    ax.plot([2], [100 * e.paper_precision_at_2], marker="*", markersize=12, linestyle="none", color=OKABE_ITO[4],
            markeredgecolor="#333333", label=f"paper P@2 = {100 * e.paper_precision_at_2:.0f}%")
    ax.plot([2], [100 * e.paper_recall_at_2], marker="*", markersize=12, linestyle="none", color=OKABE_ITO[0],
            markeredgecolor="#333333", label=f"paper R@2 = {100 * e.paper_recall_at_2:.0f}%")
    ax.set_xticks(sorted(set(ks) | {2}))
    ax.set_ylim(0, 105)
    ax.set_xlabel("K (descriptors per unit, best f first)")
    ax.set_ylabel("%")
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.set_title("Descriptors against the reference labels", fontsize=10)
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    save_png(fig, png)
    header = ("k", "precision", "recall", "random_sets_precision", "random_sets_recall", "paper_precision",
              "paper_recall")
    by_k = {k: (p, r, bp, br) for k, p, r, bp, br in zip(ks, e.precision, e.recall, bprec, brec)}
    rows = tuple((k, *(("" if v is None else float(v)) for v in by_k.get(k, (None,) * 4)),
                  float(e.paper_precision_at_2) if k == 2 else "", float(e.paper_recall_at_2) if k == 2 else "")
                 for k in sorted(set(ks) | {2}))
    write_csv(csv_path, header, rows)
    caption = (f"Precision@K over the {_count(e.n_units)} described units and recall@K over the "
               f"{_count(e.n_recall_units)} of them with a non-empty reference (of {_count(e.n_units_total)} units); "
               f"stars: the paper's P@2 = {100 * e.paper_precision_at_2:.0f}% and R@2 = "
               f"{100 * e.paper_recall_at_2:.0f}% (BERT on Amazon reviews, judged against annotations); dashed: "
               f"the same for {_count(e.baseline_sets)} random sets of {result.n_exemplars} sentences (chance). "
               "Fractions in the CSV.")
    return FigureData(name, "Precision and recall at K", caption, png, csv_path, header, rows)
