"""The causal-check figure of the experts report (``ExpertsResult.causal``), drawn with the report
kit: ``causal_effect``, the change in the concept word's log-probability, experts vs random units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.report.plotting import (
    OKABE_ITO,
    csv_num,
    figure_paths,
    FigureData,
    finite,
    label_size,
    new_figure,
    plot_label,
    save_png,
    write_csv,
)

__all__ = ["causal_effect"]


def _ci(ci) -> tuple[float | None, float | None]:
    if ci is None:
        return None, None
    lo, hi = (tuple(ci) + (None, None))[:2]
    return finite(lo), finite(hi)


def causal_effect(result: ExpertsResult, out_dir: Path, name: str = "causal_effect") -> FigureData | None:
    """Per tested concept, the mean change in the log-probability of its word when its experts (or as
    many random units) are fixed, with the t-interval over prompts (left), and the paired difference
    (right). ``None`` when the check was skipped or tested no concept."""
    cs = result.causal
    if cs is None or cs.skipped:
        return None
    tested = [c for c in cs.concepts if not c.skipped]
    if not tested:
        return None
    n = len(tested)
    fig = new_figure(9.6, max(2.6, 0.42 * n + 1.5))
    ax, ax_d = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    y = np.arange(n)[::-1].astype(float)
    series = ((ax, "experts", "mean_experts", "ci_experts", OKABE_ITO[5], "o", 0.16),
              (ax, "random units", "mean_random", "ci_random", OKABE_ITO[4], "s", -0.16),
              (ax_d, "experts − random (paired)", "mean_difference", "ci_difference", "#222222", "D", 0.0))
    handles, labels = [], []
    for target, label, mean_f, ci_f, colour, marker, dy in series:
        xs, ys = [], []
        for yi, c in zip(y, tested):
            m = finite(getattr(c, mean_f))
            lo, hi = _ci(getattr(c, ci_f))
            if lo is not None and hi is not None:
                target.hlines(yi + dy, lo, hi, color=colour, linewidth=1.4)
            if m is not None:
                xs.append(m)
                ys.append(yi + dy)
        h = target.scatter(xs, ys, color=colour, marker=marker, s=26, zorder=3, label=label)
        handles.append(h)
        labels.append(label)
    for a in (ax, ax_d):
        a.axvline(0, color="#999999", linewidth=0.8, zorder=1)
        a.grid(axis="x", alpha=0.3, linewidth=0.5)
        a.tick_params(labelsize=8)
    ax.set_yticks(y, [plot_label(c.concept) for c in tested], fontsize=label_size(n) if n > 16 else 9)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("change in log P(concept word)")
    ax_d.set_xlabel("difference")
    ax.set_title("Fixing experts vs random units", fontsize=10)
    ax_d.set_title("Experts − random", fontsize=10)
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    png, csv_path = figure_paths(out_dir, name)
    save_png(fig, png)
    header = ("concept", "n_units", "n_prompts", "mean_experts", "ci_low_experts", "ci_high_experts", "mean_random",
              "ci_low_random", "ci_high_random", "mean_difference", "ci_low_difference", "ci_high_difference")
    rows = tuple((c.concept, c.n_units, c.n_prompts,
                  *(csv_num(v) for f in ("experts", "random", "difference")
                    for v in (getattr(c, f"mean_{f}"), *_ci(getattr(c, f"ci_{f}")))))
                 for c in tested)
    write_csv(csv_path, header, rows)
    caption = (f"Mean over {len(cs.prompts)} prompts of the change in log-probability of the concept word when "
               f"the concept's experts are fixed to their median positive response (site {cs.site}), against "
               f"as many random units of the same layers; bars: {cs.confidence * 100:g}% t-intervals over prompts "
               "(none where undefined, e.g. with one prompt).")
    return FigureData(name, "Causal check", caption, png, csv_path, header, rows)
