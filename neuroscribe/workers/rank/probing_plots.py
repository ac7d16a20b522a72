"""Figures of probing and agreement (docs/methods.md#c): accuracy vs k, and a top-k overlap heatmap.

The plots use matplotlib's Agg canvas (``Figure``, no pyplot) and write a CSV of the plotted
numbers beside each PNG (same path, ``.csv``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.rank.probe_results import ProbeCurve, curve_row

__all__ = ["plot_accuracy_vs_k", "plot_agreement"]


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in row])


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def plot_accuracy_vs_k(result: ProbeCurve, path, *, same_probe: bool = True) -> tuple[Path, Path]:
    """Accuracy vs k: one solid line per ranking (top-k) with its 95% band; random-k dashed (grey);
    each ranking's own probe dash-dotted in its colour (when given and ``same_probe``); the
    majority baseline dotted. Writes ``path`` (PNG) and ``path`` with ``.csv`` holding exactly the
    plotted numbers (columns of ``ProbeCurve.to_rows``; random-k and the baseline with ranking "").
    Returns (png, csv)."""
    png = Path(path)
    png.parent.mkdir(parents=True, exist_ok=True)
    ks = list(result.ks)
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    rows: list[dict] = []

    def line(ranking: str, selection: str, probe: str, label: str, **style):
        ss = [result.summary(ranking or result.rankings[0], selection, k) for k in ks]
        mean = [s.mean for s in ss]
        ax.plot(ks, mean, marker="o", markersize=3, label=label, **style)
        if all(not math.isnan(s.ci_low) for s in ss):
            ax.fill_between(ks, [s.ci_low for s in ss], [s.ci_high for s in ss], alpha=0.15,
                            color=style.get("color"), linewidth=0)
        rows.extend(curve_row(ranking, selection, probe, k, s) for k, s in zip(ks, ss))

    for i, r in enumerate(result.rankings):
        line(r, "top", result.probe, f"{r} top-k", color=f"C{i % 10}", linestyle="-")
        if same_probe and r in result.same_probe:
            line(r, "top_same_probe", "same", f"{r} top-k, own probe", color=f"C{i % 10}", linestyle="-.")
    line("", "random", result.probe, "random-k", color="0.4", linestyle="--")
    maj = result.majority_summary()
    ax.axhline(maj.mean, color="0.6", linestyle=":", linewidth=1, label="majority class")
    rows.append(curve_row("", "majority", "majority", 0, maj))
    if ks[-1] / ks[0] >= 20:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if len(ks) <= 12:
        ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (units kept)")
    ax.set_ylabel(f"held-out accuracy ({result.probe} probe)")
    ax.set_title(f"Probing accuracy vs k ({len(result.random_states)} seeds, 95% CI)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.savefig(png, format="png", metadata={"Software": None})
    out_csv = png.with_suffix(".csv")
    header = list(rows[0])
    _write_csv(out_csv, header, [[r[h] for h in header] for r in rows])
    return png, out_csv


def plot_agreement(matrix, names: Sequence[str], path, *, title: str = "Top-k overlap") -> tuple[Path, Path]:
    """Heatmap of a square ``matrix`` (e.g. ``Agreement.overlap[k]``) labelled by ``names``; writes
    ``path`` (PNG) and ``path`` with ``.csv`` (a header row of names, then one row per name).
    Returns (png, csv)."""
    m = np.asarray(matrix, dtype=np.float64)
    names = [str(n) for n in names]
    if m.ndim != 2 or m.shape != (len(names), len(names)):
        raise InvalidInput("matrix", f"must be square with one row per name ({len(names)}), got {m.shape}")
    png = Path(path)
    png.parent.mkdir(parents=True, exist_ok=True)
    side = 2.5 + 0.45 * len(names)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    im = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if len(names) <= 12:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if m[i, j] > 0.6 else "white")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    fig.savefig(png, format="png", metadata={"Software": None})
    out_csv = png.with_suffix(".csv")
    _write_csv(out_csv, ["", *names], [[n, *m[i].tolist()] for i, n in enumerate(names)])
    return png, out_csv
