"""The human-alignment figure of the experts report (``ExpertsResult.alignment``), drawn with the
report kit: ``men_scatter``, human score vs model similarity of each word pair, one panel per method.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.report.labels import place_labels
from neuroscribe.service.report.plotting import (
    MAX_WIDTH_IN,
    OKABE_ITO,
    csv_num,
    figure_paths,
    FigureData,
    finite,
    new_figure,
    plot_label,
    save_png,
    write_csv,
)

__all__ = ["men_scatter", "rho_text"]


def _fmt_p(p) -> str:
    p = finite(p)
    if p is None:
        return "—"
    return f"{p:.1e}" if 0 < p < 1e-4 else f"{p:.2g}"


def rho_text(rho, p_value, n: int) -> str:
    """``ρ = 0.41 (p = 0.003, n = 93)``; an undefined value as ``—``."""
    r = finite(rho)
    return f"ρ = {'—' if r is None else f'{r:.2f}'} (p = {_fmt_p(p_value)}, n = {n})"


def _extremes(x: np.ndarray, y: np.ndarray, k: int = 5) -> list[int]:
    """Indices of the ``k`` points whose ranks disagree most (human vs model)."""
    if len(x) < 5:
        return []
    rx = np.argsort(np.argsort(x, kind="stable"), kind="stable") / (len(x) - 1)
    ry = np.argsort(np.argsort(y, kind="stable"), kind="stable") / (len(y) - 1)
    return [int(i) for i in np.argsort(-np.abs(rx - ry), kind="stable")[:k]]


def men_scatter(result: ExpertsResult, out_dir: Path, name: str = "men_scatter") -> FigureData | None:
    """Human score (x) against the model's similarity (y) of each word pair, one panel per method,
    titled with Spearman's rho, its p-value and the pairs plotted; up to five pairs whose ranks
    disagree most are named, those whose label fits without touching another (``place_labels``).
    ``None`` without an alignment report, methods or pairs."""
    al = result.alignment
    if al is None or not al.methods or not al.pairs:
        return None
    methods = list(al.methods)
    n_m = len(methods)
    ncols = min(3, n_m)
    nrows = math.ceil(n_m / ncols)
    fig = new_figure(min(MAX_WIDTH_IN, 3.25 * ncols + 0.2), 3.3 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    human = np.array([p.human for p in al.pairs], dtype=float)
    named = []
    for k, ax in enumerate(axes.flat):
        if k >= n_m:
            ax.set_visible(False)
            continue
        m = methods[k]
        sim = np.array([csv_num(p.similarity.get(m.method)) for p in al.pairs], dtype=float)
        ok = np.isfinite(sim) & np.isfinite(human)
        x, y = human[ok], sim[ok]
        idx = np.flatnonzero(ok)
        ax.scatter(x, y, s=11, alpha=0.65, color=OKABE_ITO[4], edgecolors="none")
        worst = _extremes(x, y)
        named.append((ax, [x[i] for i in worst], [y[i] for i in worst],
                      [plot_label(f"{al.pairs[idx[i]].word1}–{al.pairs[idx[i]].word2}", 22) for i in worst]))
        ax.set_title(f"{plot_label(m.method, 34)}\n{rho_text(m.rho, m.p_value, int(ok.sum()))}", fontsize=9)
        ax.set_xlabel(f"{plot_label(al.dataset)} human score", fontsize=8)
        ax.set_ylabel("model similarity", fontsize=8)
        ax.tick_params(labelsize=7.5)
        ax.grid(alpha=0.3, linewidth=0.5)
    for k, (ax, xs, ys, texts) in enumerate(named):
        place_labels(ax, xs, ys, texts, fontsize=7.5, color="#333333", draw=k == 0)
    png, csv_path = figure_paths(out_dir, name)
    save_png(fig, png)
    header = ("word1", "word2", "human", *(m.method for m in methods))
    rows = tuple((p.word1, p.word2, float(p.human), *(csv_num(p.similarity.get(m.method)) for m in methods))
                 for p in al.pairs)
    write_csv(csv_path, header, rows)
    caption = (f"Each dot is one {al.dataset} word pair whose both words are concepts: its human similarity "
               "rating against the model's similarity of the two concepts, per method; ρ is Spearman's rank "
               "correlation over the pairs. Named: some of the pairs whose ranks disagree most (the CSV has "
               "every pair).")
    return FigureData(name, f"{al.dataset} alignment", caption, png, csv_path, header, rows)
