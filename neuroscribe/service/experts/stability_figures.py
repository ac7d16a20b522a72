"""The stability figure of the experts report (``ExpertsResult.stability``), drawn with the report
kit: ``stability_curves``, per concept the best mean Jaccard per tau and the expert count there.
"""

from __future__ import annotations

from pathlib import Path

from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.report.plotting import (
    MAX_WIDTH_IN,
    csv_num,
    figure_paths,
    FigureData,
    finite,
    line_styles,
    new_figure,
    number_formatter,
    outside_legend,
    plot_label,
    save_png,
    write_csv,
)

__all__ = ["stability_curves", "tau_key"]


def tau_key(key) -> float | None:
    """The tau of a ``ConceptStability.best`` key (``str(tau)``, e.g. ``"0.9"``); ``None`` if not a number."""
    try:
        return float(key)
    except (TypeError, ValueError):
        return None


def stability_curves(result: ExpertsResult, out_dir: Path, name: str = "stability_curves") -> FigureData | None:
    """Two panels over tau: the best mean Jaccard of each concept (over the (n+, n-) grid, above
    chance) and the mean expert count at that best point (bars: its std over subsamples). ``None``
    without a stability report or when no tau has a best point."""
    st = result.stability
    if st is None or not st.concepts:
        return None
    taus = sorted({float(t) for t in st.spec.taus}
                  | {t for c in st.concepts for t in map(tau_key, c.best) if t is not None})
    rows = []
    per_concept: list[list[tuple]] = []
    for c in st.concepts:
        best = {tau_key(k): v for k, v in c.best.items()}
        pts = []
        for t in taus:
            p = best.get(t)
            if p is None or finite(p.jaccard) is None:
                continue
            row = (c.concept, t, p.n_pos, p.n_neg, float(p.jaccard), float(p.n_experts_mean),
                   csv_num(p.n_experts_std))
            pts.append(row)
            rows.append(row)
        per_concept.append(pts)
    if not rows:
        return None
    n = len(st.concepts)
    styles = line_styles(n)
    fig = new_figure(MAX_WIDTH_IN, 4.0 if n <= 24 else 5.0)
    ax_j, ax_n = fig.subplots(1, 2, sharex=True)
    handles, labels = [], []
    for c, pts, (colour, ls, marker) in zip(st.concepts, per_concept, styles):
        if not pts:
            continue
        x = [r[1] for r in pts]
        (h,) = ax_j.plot(x, [r[4] for r in pts], color=colour, linestyle=ls, marker=marker, markersize=3.5,
                         linewidth=1.3)
        std = [0.0 if finite(r[6]) is None else r[6] for r in pts]
        ax_n.errorbar(x, [r[5] for r in pts], yerr=std, color=colour, linestyle=ls, marker=marker, markersize=3.5,
                      linewidth=1.3, elinewidth=0.7, capsize=2)
        handles.append(h)
        labels.append(plot_label(c.concept))
    ax_j.set_ylim(0, 1.02)
    ax_j.set_ylabel("best mean Jaccard (pairwise, subsamples)")
    ax_j.set_title("Overlap of expert sets", fontsize=10)
    ax_n.set_ylim(bottom=0)
    ax_n.yaxis.set_major_formatter(number_formatter())
    ax_n.set_ylabel("experts at the best point (mean ± std)")
    ax_n.set_title("Experts found there", fontsize=10)
    for ax in (ax_j, ax_n):
        ax.set_xlabel("tau")
        ax.grid(alpha=0.3, linewidth=0.5)
        if len(taus) <= 12:
            ax.set_xticks(taus, [f"{t:g}" for t in taus], fontsize=8)
    outside_legend(fig, handles, labels, len(handles))
    png, csv_path = figure_paths(out_dir, name)
    save_png(fig, png)
    header = ("concept", "tau", "n_pos", "n_neg", "jaccard", "n_experts_mean", "n_experts_std")
    rows = tuple(rows)
    write_csv(csv_path, header, rows)
    missing = [c.concept for c, pts in zip(st.concepts, per_concept) if not pts]
    caption = (f"For each tau, the subsample size (n+, n−) whose {st.spec.repeats} repeated subsamples give the "
               "highest mean pairwise Jaccard of their expert sets (left) and the number of experts there (right)."
               + (f" No tau has a point above chance for: {', '.join(missing)}." if missing else ""))
    return FigureData(name, "Stability of the expert sets", caption, png, csv_path, header, rows)
