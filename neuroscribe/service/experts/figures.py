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
    MAX_WIDTH_IN,
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
    thin_ticks,
    write_csv,
)

__all__ = ["experts_per_concept", "experts_per_layer", "concept_overlap", "expert_sets"]

_NAME = 18  # characters of a concept name on an axis (the CSV holds the full name)


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
    width = min(MAX_WIDTH_IN, max(4.5, 0.4 * n + 2.0))
    fig = new_figure(width, 3.8)
    ax = fig.add_subplot()
    x = np.arange(n)
    ax.bar(x, counts, color=[colours[c] for c in cats], edgecolor="#333333", linewidth=0.5)
    step = thin_ticks(width - 1.2, n)
    ax.set_xticks(x[::step], [plot_label(c.concept, _NAME) for c in concepts][::step], fontsize=label_size(n))
    rotate_labels(ax.get_xticklabels(), n)
    ax.yaxis.set_major_locator(integer_locator())
    ax.yaxis.set_major_formatter(number_formatter())
    ax.set_ylabel("experts")
    ax.set_title(f"Experts per concept (AP ≥ {result.tau:g})", fontsize=10)
    if any(cats):
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=colours[c], label=plot_label(c or "(none)")) for c in distinct],
                  title="category", fontsize=8, title_fontsize=8, frameon=False)
    if (width - 1.2) / max(n, 1) >= 0.28:  # room for a count above each bar
        for xi, v in zip(x, counts):
            ax.annotate(compact_number(v), (xi, v), ha="center", va="bottom", fontsize=7.5,
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
    tick_fs = 9 if n_l <= 16 else 8
    if n_c > len(OKABE_ITO):
        width = max(5.0, min(MAX_WIDTH_IN, 0.36 * n_l + 3.5))
        height = max(3.0, 0.24 * n_c + 1.6)
        fig = new_figure(width, height)
        ax = fig.add_subplot()
        im = ax.imshow(counts, cmap="viridis", aspect="auto", vmin=0)
        xs = thin_ticks(width - 3.2, n_l, 0.3)  # numbers side by side
        ax.set_xticks(x[::xs], [str(layer) for layer in layers][::xs], fontsize=tick_fs)
        ys = thin_ticks(height - 1.4, n_c)
        ax.set_yticks(np.arange(n_c)[::ys], [plot_label(c.concept, _NAME) for c in concepts][::ys],
                      fontsize=label_size(n_c))
        if (width - 3.2) / n_l >= 0.3:  # room for the count in each cell
            top = max(1, counts.max())
            for i in range(n_c):
                for j in range(n_l):
                    ax.text(j, i, compact_number(counts[i, j]), ha="center", va="center", fontsize=7.5,
                            color="white" if counts[i, j] < 0.6 * top else "black")
        cb = fig.colorbar(im, ax=ax, shrink=0.8, format=number_formatter())
        cb.ax.yaxis.set_major_locator(integer_locator())
        cb.set_label("experts", fontsize=8)
        cb.ax.tick_params(labelsize=7.5)
    else:
        colours = palette(n_c)
        bars = n_c * n_l <= 60
        width_in = (0.18 * n_c + 0.25) * n_l + 2.5 if bars else 0.3 * n_l + 3.0
        width = min(MAX_WIDTH_IN, max(5.0, width_in) + 1.6)  # + room for the legend
        fig = new_figure(width, 3.8)
        ax = fig.add_subplot()
        width = 0.8 / n_c
        for i, c in enumerate(concepts):
            label = plot_label(c.concept, _NAME)
            if bars:
                ax.bar(x - 0.4 + width * (i + 0.5), counts[i], width, color=colours[i], label=label,
                       edgecolor="#333333", linewidth=0.4)
            else:
                ax.plot(x, counts[i], marker="o", markersize=3, color=colours[i], label=label, linewidth=1.2)
        xs = thin_ticks(width - 3.0, n_l, 0.3)
        ax.set_xticks(x[::xs], [str(layer) for layer in layers][::xs], fontsize=tick_fs)
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
    # the triangle, the names (~1.6 in) and the colour bar (~1 in) within the page's width
    cell = max(0.17, min(0.5, (MAX_WIDTH_IN - 2.8) / (n - 1)))
    side = max(3.6, cell * (n - 1) + 1.8)
    fig = new_figure(side + 0.9, side + 0.4)  # + the colour bar; + the tilted names below
    ax = fig.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="white")
    vmax = max(0.05, float(np.nanmax(grid)) if np.isfinite(grid).any() else 1.0)
    im = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=vmax, aspect="equal")
    undefined = [(i - 1, j) for i in range(1, n) for j in range(i) if not np.isfinite(mat[i, j])]
    for r, c in undefined:  # both sets empty: hatched, so it is not read as 0
        ax.add_patch(_hatch(r, c))
    fs = label_size(n)
    step = thin_ticks(min(side, MAX_WIDTH_IN - 1.0) - 1.8, n - 1)
    ax.set_xticks(np.arange(n - 1)[::step], [plot_label(s, _NAME) for s in names[:-1]][::step], fontsize=fs)
    ax.set_yticks(np.arange(n - 1)[::step], [plot_label(s, _NAME) for s in names[1:]][::step], fontsize=fs)
    rotate_labels(ax.get_xticklabels(), 5)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    if n <= 12:
        for i in range(1, n):
            for j in range(i):
                v = mat[i, j]
                if np.isfinite(v):
                    ax.text(j, i - 1, f"{v:.2f}", ha="center", va="center", fontsize=max(7.5, fs - 1),
                            color="white" if v < 0.6 * vmax else "black")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("Jaccard of expert sets", fontsize=8)
    cb.ax.tick_params(labelsize=7.5)
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
