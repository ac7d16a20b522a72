"""The experts report's own figures: one function per figure, drawn with the report kit
(``neuroscribe.service.report.plotting``: Agg canvas, no pyplot).

Each figure function takes the result and the folder to write into, saves ``NAME.png`` and
``NAME.csv`` (exactly the numbers it plots, same basename) and returns a ``FigureData`` holding those
numbers: experts per concept, experts per layer, the concepts' overlap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.report.plotting import (
    OKABE_ITO,
    FigureData,
    compact_number,
    integer_locator,
    label_size,
    new_figure,
    number_formatter,
    palette,
    plot_label,
    rotate_labels,
    save_png,
    write_csv,
)

__all__ = ["experts_per_concept", "experts_per_layer", "concept_overlap", "expert_sets"]


def expert_sets(result: ExpertsResult) -> dict[str, set[tuple[int, int]]]:
    """Concept -> its experts as ``(layer, unit)`` pairs, in the result's order."""
    return {c.concept: {(u.layer, u.unit) for u in c.experts} for c in result.concepts}


# --------------------------------------------------------------------------- figures


def experts_per_concept(result: ExpertsResult, out_dir: Path, name: str = "experts_per_concept") -> FigureData:
    """Bar chart: the number of experts of each concept, coloured by category when there are any."""
    concepts = result.concepts
    counts = [len(c.experts) for c in concepts]
    cats = [c.category or "" for c in concepts]
    distinct = list(dict.fromkeys(cats))
    colours = dict(zip(distinct, palette(len(distinct))))
    n = len(concepts)
    fig = new_figure(max(4.5, 0.45 * n + 2.0), 3.8)
    ax = fig.add_subplot()
    x = np.arange(n)
    ax.bar(x, counts, color=[colours[c] for c in cats], edgecolor="#333333", linewidth=0.5)
    ax.set_xticks(x, [plot_label(c.concept) for c in concepts], fontsize=label_size(n))
    rotate_labels(ax.get_xticklabels(), n)
    ax.yaxis.set_major_locator(integer_locator())
    ax.yaxis.set_major_formatter(number_formatter())
    ax.set_ylabel("experts")
    ax.set_title(f"Experts per concept (AP ≥ {result.tau:g})", fontsize=10)
    if any(cats):
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=colours[c], label=plot_label(c or "(none)")) for c in distinct],
                  title="category", fontsize=8, title_fontsize=8, frameon=False)
    if n <= 30:
        for xi, v in zip(x, counts):
            ax.annotate(compact_number(v), (xi, v), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 1), textcoords="offset points")
    ax.margins(y=0.12)
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    save_png(fig, png)
    header = ("concept", "category", "n_experts", "n_pos", "n_neg")
    rows = tuple((c.concept, c.category or "", k, c.n_pos, c.n_neg) for c, k in zip(concepts, counts))
    write_csv(csv_path, header, rows)
    units = len(result.layers) * result.units_per_layer
    caption = (f"Units with AP ≥ tau = {result.tau:g} among {compact_number(units)} units "
               f"({len(result.layers)} layers × {compact_number(result.units_per_layer)}). n+/n−: "
               + ", ".join(f"{c.concept} {c.n_pos}/{c.n_neg}" for c in concepts) + ".")
    return FigureData(name, "Experts per concept", caption, png, csv_path, header, rows)


def experts_per_layer(result: ExpertsResult, out_dir: Path, name: str = "experts_per_layer") -> FigureData:
    """Experts per layer for every concept, every layer of the result on the axis (zeros included):
    grouped bars when they fit, lines for many layers, a concept × layer heatmap for more concepts
    than the palette tells apart (> 8)."""
    concepts = result.concepts
    layers = list(result.layers)
    counts = np.array([[c.counts_per_layer.get(layer, 0) for layer in layers] for c in concepts])
    n_c, n_l = len(concepts), len(layers)
    x = np.arange(n_l)
    tick_fs = label_size(n_l) if n_l > 16 else 9
    if n_c > len(OKABE_ITO):
        fig = new_figure(max(5.0, min(16.0, 0.32 * n_l + 3.5)), max(3.0, 0.24 * n_c + 1.6))
        ax = fig.add_subplot()
        im = ax.imshow(counts, cmap="viridis", aspect="auto", vmin=0)
        ax.set_xticks(x, [str(layer) for layer in layers], fontsize=tick_fs)
        ax.set_yticks(np.arange(n_c), [plot_label(c.concept) for c in concepts], fontsize=label_size(n_c))
        if n_c * n_l <= 300:
            top = max(1, counts.max())
            for i in range(n_c):
                for j in range(n_l):
                    ax.text(j, i, compact_number(counts[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if counts[i, j] < 0.6 * top else "black")
        cb = fig.colorbar(im, ax=ax, shrink=0.8, format=number_formatter())
        cb.ax.yaxis.set_major_locator(integer_locator())
        cb.set_label("experts", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    else:
        colours = palette(n_c)
        bars = n_c * n_l <= 60
        width_in = (0.18 * n_c + 0.25) * n_l + 2.5 if bars else 0.3 * n_l + 3.0
        fig = new_figure(max(5.0, min(14.0, width_in)) + 1.6, 3.8)  # + room for the legend
        ax = fig.add_subplot()
        width = 0.8 / n_c
        for i, c in enumerate(concepts):
            label = plot_label(c.concept)
            if bars:
                ax.bar(x - 0.4 + width * (i + 0.5), counts[i], width, color=colours[i], label=label,
                       edgecolor="#333333", linewidth=0.4)
            else:
                ax.plot(x, counts[i], marker="o", markersize=3, color=colours[i], label=label, linewidth=1.2)
        ax.set_xticks(x, [str(layer) for layer in layers], fontsize=tick_fs)
        ax.set_ylabel("experts")
        ax.yaxis.set_major_locator(integer_locator())
        ax.yaxis.set_major_formatter(number_formatter())
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlabel("layer")
    ax.set_title("Experts per layer", fontsize=10)
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    save_png(fig, png)
    header = ("concept", "layer", "n_experts")
    rows = tuple((c.concept, layer, int(counts[i, j])) for i, c in enumerate(concepts) for j, layer in enumerate(layers))
    write_csv(csv_path, header, rows)
    caption = f"Number of experts (AP ≥ {result.tau:g}) in each of the {n_l} layers read, per concept."
    return FigureData(name, "Experts per layer", caption, png, csv_path, header, rows)


def concept_overlap(result: ExpertsResult, out_dir: Path, name: str = "concept_overlap") -> FigureData | None:
    """Heatmap of the Jaccard overlap of the concepts' expert sets: the lower triangle only, no
    diagonal (row concept i against column concept j < i). ``None`` with fewer than 2 concepts.

    The CSV lists exactly the plotted cells: ``concept_a`` (row), ``concept_b`` (column), ``jaccard``
    (``nan`` where neither concept has an expert).
    """
    from neuroscribe.workers.experts.overlap import jaccard_matrix

    names, mat = jaccard_matrix(expert_sets(result))
    n = len(names)
    if n < 2:
        return None
    rows = tuple((names[i], names[j], float(mat[i, j])) for i in range(1, n) for j in range(i))
    # rows 1..n-1 against columns 0..n-2: the triangle fills the axes, no empty first row / last column
    grid = np.full((n - 1, n - 1), np.nan)
    for i in range(1, n):
        grid[i - 1, :i] = mat[i, :i]
    masked = np.ma.masked_invalid(grid)
    cell = max(0.28, min(0.6, 7.0 / n))
    side = max(3.6, cell * (n - 1) + 2.4)
    fig = new_figure(side + 1.0, side)
    ax = fig.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="white")
    vmax = max(0.05, float(np.nanmax(grid)) if np.isfinite(grid).any() else 1.0)
    im = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=vmax, aspect="equal")
    undefined = [(i - 1, j) for i in range(1, n) for j in range(i) if not np.isfinite(mat[i, j])]
    for r, c in undefined:  # both sets empty: hatched, so it is not read as 0
        ax.add_patch(_hatch(r, c))
    fs = label_size(n)
    ax.set_xticks(np.arange(n - 1), [plot_label(s) for s in names[:-1]], fontsize=fs)
    ax.set_yticks(np.arange(n - 1), [plot_label(s) for s in names[1:]], fontsize=fs)
    rotate_labels(ax.get_xticklabels(), 5)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    if n <= 12:
        for i in range(1, n):
            for j in range(i):
                v = mat[i, j]
                if np.isfinite(v):
                    ax.text(j, i - 1, f"{v:.2f}", ha="center", va="center", fontsize=max(6.0, fs - 1),
                            color="white" if v < 0.6 * vmax else "black")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("Jaccard of expert sets", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    ax.set_title("Concept overlap", fontsize=10)
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    save_png(fig, png)
    header = ("concept_a", "concept_b", "jaccard")
    write_csv(csv_path, header, rows)
    caption = ("Jaccard |A ∩ B| / |A ∪ B| of the concepts' expert sets, each pair once (no diagonal)."
               + (" Hatched: neither concept has an expert." if undefined else ""))
    return FigureData(name, "Concept overlap", caption, png, csv_path, header, rows,
                      extra={"names": names, "matrix": mat})


def _hatch(r: int, c: int):
    from matplotlib.patches import Rectangle

    return Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#999999", linewidth=0)
