"""The sweep figures of the experts report (``ExpertsResult.sweep``: experts of more models or
checkpoints), drawn with the report kit; each ``None`` when the sweep holds nothing for it.

* ``sweep_per_layer``: experts per layer, one line per model;
* ``sweep_per_step``: experts over training steps (checkpoints of a model);
* ``sweep_per_size``: experts against the parameter count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuroscribe.jobs import ExpertsResult
from neuroscribe.jobs.experts_suite import SweepEntry
from neuroscribe.service.report.labels import place_labels
from neuroscribe.service.report.plotting import (
    MARKERS,
    compact_number,
    figure_paths,
    FigureData,
    integer_locator,
    line_styles,
    new_figure,
    number_formatter,
    outside_legend,
    palette,
    plot_label,
    save_png,
    write_csv,
)

__all__ = ["sweep_per_layer", "sweep_per_size", "sweep_per_step"]

_RANDOM_COLOURS = ("#000000", "#666666", "#999999")
_MAX_LEGEND = 16  # sweep entries named in a legend; more checkpoints: a spread of them


def _stepped(e: SweepEntry) -> bool:
    return not e.random_init and e.step is not None


def _entry_styles(entries: Sequence[SweepEntry]) -> tuple[list[int], dict[int, dict]]:
    """Plot order (checkpoints by step, other models, random inits) and each entry's line style:
    checkpoints on viridis by step (dark = early), other models qualitative, random inits dashed
    black/grey; the marker tells models apart."""
    from matplotlib import colormaps

    models = list(dict.fromkeys(e.model for e in entries))
    marker = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(models)}
    stepped = sorted((i for i, e in enumerate(entries) if _stepped(e)), key=lambda i: (entries[i].step, i))
    other = [i for i, e in enumerate(entries) if not e.random_init and e.step is None]
    rand = [i for i, e in enumerate(entries) if e.random_init]
    cmap = colormaps["viridis"]
    styles: dict[int, dict] = {}
    for r, i in enumerate(stepped):
        styles[i] = {"color": cmap(0.88 * r / max(1, len(stepped) - 1)), "linestyle": "-", "linewidth": 1.4}
    for i, colour in zip(other, palette(len(other))):
        styles[i] = {"color": colour, "linestyle": "-", "linewidth": 1.6}
    for r, i in enumerate(rand):
        styles[i] = {"color": _RANDOM_COLOURS[r % len(_RANDOM_COLOURS)], "linestyle": "--", "linewidth": 1.4}
    for i, e in enumerate(entries):
        styles[i]["marker"] = marker[e.model]
    return stepped + other + rand, styles


def _per_layer_total(e: SweepEntry) -> list[tuple[int, int]]:
    layers = sorted(set(e.layers) | {int(layer) for per in e.counts_per_layer.values() for layer in per})
    return [(layer, sum(int(per.get(layer, 0)) for per in e.counts_per_layer.values())) for layer in layers]


def _legend_subset(order: list[int], entries: Sequence[SweepEntry]) -> set[int]:
    """Entries named in the legend: all up to ``_MAX_LEGEND``, else a spread of the checkpoints
    (first and last included) and every other entry."""
    if len(order) <= _MAX_LEGEND:
        return set(order)
    stepped = [i for i in order if _stepped(entries[i])]
    rest = [i for i in order if not _stepped(entries[i])]
    k = max(2, _MAX_LEGEND - len(rest))
    picks = {stepped[round(j * (len(stepped) - 1) / (k - 1))] for j in range(k)} if len(stepped) > 1 else set(stepped)
    return picks | set(rest)


def sweep_per_layer(result: ExpertsResult, out_dir: Path, name: str = "sweep_per_layer") -> FigureData | None:
    """Experts per layer, summed over the concepts, one line per model of the sweep (x: the layer
    index of each model)."""
    sw = result.sweep
    if sw is None or not sw.entries:
        return None
    entries = sw.entries
    order, styles = _entry_styles(entries)
    named = _legend_subset(order, entries)
    fig = new_figure(8.6, 4.0)
    ax = fig.add_subplot()
    handles, labels, rows = [], [], []
    for i in order:
        e = entries[i]
        pts = _per_layer_total(e)
        (h,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], markersize=3.5, **styles[i])
        if i in named:
            handles.append(h)
            labels.append(plot_label(e.label, 48))
    for e in entries:
        rows += [(e.label, e.model, e.requested_revision or "", "" if e.step is None else e.step, e.random_init,
                  layer, total) for layer, total in _per_layer_total(e)]
    ax.set_xlabel("layer")
    ax.set_ylabel(f"experts (AP ≥ {sw.tau:g}), all concepts")
    ax.xaxis.set_major_locator(integer_locator())
    ax.yaxis.set_major_locator(integer_locator())
    ax.yaxis.set_major_formatter(number_formatter())
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.set_title("Experts per layer across the sweep", fontsize=10)
    outside_legend(fig, handles, labels, len(handles))
    png, csv_path = figure_paths(out_dir, name)
    save_png(fig, png)
    header = ("label", "model", "requested_revision", "step", "random_init", "layer", "experts")
    rows = tuple(rows)
    write_csv(csv_path, header, rows)
    depths = {e.n_layers for e in entries}
    caption = (f"Experts (AP ≥ {sw.tau:g}) per layer, summed over the concepts, for each model of the sweep. "
               "Checkpoints: viridis from early (dark) to late (yellow); random initialisations: dashed."
               + (" The models differ in depth: x is each model's own layer index." if len(depths) > 1 else "")
               + ("" if len(named) == len(order) else " The legend names a spread of the checkpoints."))
    return FigureData(name, "Experts per layer across the sweep", caption, png, csv_path, header, rows)


def _set_compact_ticks(axis, values: Sequence[float], max_ticks: int = 8) -> None:
    """Compact tick labels; ticks at ``values`` themselves when there are few of them."""
    from matplotlib.ticker import NullFormatter

    distinct = sorted(set(values))
    if 1 <= len(distinct) <= max_ticks:
        axis.set_ticks(distinct)
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(number_formatter())


def sweep_per_step(result: ExpertsResult, out_dir: Path, name: str = "sweep_per_step") -> FigureData | None:
    """Experts against the training step (symlog x, so step 0 is shown), a thick line per model for the
    total and thin lines per concept; random initialisations as dashed horizontal references.
    ``None`` with fewer than 2 checkpoints."""
    sw = result.sweep
    if sw is None:
        return None
    stepped = [e for e in sw.entries if _stepped(e)]
    if len(stepped) < 2:
        return None
    concepts = list(dict.fromkeys(c for e in sw.entries for c in e.counts_per_layer))
    models = list(dict.fromkeys(e.model for e in stepped))
    single = len(models) == 1
    model_colour = dict.fromkeys(models, "#222222") if single else dict(zip(models, palette(len(models))))
    concept_colour = dict(zip(concepts, palette(len(concepts))))
    fig = new_figure(8.6, 4.0)
    ax = fig.add_subplot()
    totals, concept_lines = [], []
    for m in models:
        es = sorted((e for e in stepped if e.model == m), key=lambda e: e.step)
        steps = [e.step for e in es]
        if len(concepts) > 1:
            for c in concepts:
                ys = [e.total(c) if c in e.counts_per_layer else np.nan for e in es]
                (h,) = ax.plot(steps, ys, linewidth=0.9, alpha=0.8 if single else 0.35, marker=".", markersize=3,
                               color=concept_colour[c] if single else model_colour[m])
                if single:
                    concept_lines.append((h, plot_label(c)))
        (h,) = ax.plot(steps, [e.total() for e in es], linewidth=2.2, marker="o", markersize=4,
                       color=model_colour[m], zorder=3)
        totals.append((h, "all concepts" if single else f"{plot_label(m, 32)}: all concepts"))
    handles = [h for h, _ in totals + concept_lines]
    labels = [lab for _, lab in totals + concept_lines]
    for r, e in enumerate(x for x in sw.entries if x.random_init):
        total = e.total()
        h = ax.axhline(total, linestyle="--", linewidth=1.2, color=_RANDOM_COLOURS[r % len(_RANDOM_COLOURS)])
        handles.append(h)
        labels.append(f"{plot_label(e.label, 48)}: {compact_number(total)}")
    ax.set_xscale("symlog", linthresh=1, linscale=0.5)
    lo, hi = min(e.step for e in stepped), max(e.step for e in stepped)
    ax.set_xlim(-0.3 if lo <= 0 else lo / 1.5, max(hi * 1.5, 2.0))  # step 0 at the left, no negative steps
    _set_compact_ticks(ax.xaxis, [e.step for e in stepped])
    ax.set_xlabel("training step" + (f" ({plot_label(models[0], 40)})" if single else ""))
    ax.set_ylabel(f"experts (AP ≥ {sw.tau:g})")
    ax.yaxis.set_major_formatter(number_formatter())
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.set_title("Experts over training", fontsize=10)
    outside_legend(fig, handles, labels, len(handles))
    png, csv_path = figure_paths(out_dir, name)
    save_png(fig, png)
    rows = []
    for e in sorted(stepped, key=lambda e: (models.index(e.model), e.step)) + [x for x in sw.entries if x.random_init]:
        rows += [(e.label, e.model, e.requested_revision or "", "" if e.step is None else e.step, e.random_init, c,
                  e.total(c), e.total()) for c in e.counts_per_layer]
    header = ("label", "model", "requested_revision", "step", "random_init", "concept", "experts", "total_experts")
    rows = tuple(rows)
    write_csv(csv_path, header, rows)
    caption = (f"Experts (AP ≥ {sw.tau:g}) at each checkpoint"
               + (": thick, all concepts together; thin, each concept. " if len(concepts) > 1 else ". ")
               + "The step axis is logarithmic beyond 1 and linear below, so step 0 is shown."
               + (" Dashed: random initialisation of the same architecture." if any(e.random_init for e in sw.entries)
                  else ""))
    return FigureData(name, "Experts over training", caption, png, csv_path, header, rows)


def sweep_per_size(result: ExpertsResult, out_dir: Path, name: str = "sweep_per_size") -> FigureData | None:
    """Total experts against the number of parameters (log x), the models of one revision joined by
    a line; random initialisations as grey crosses. ``None`` with fewer than 2 distinct trained models."""
    sw = result.sweep
    if sw is None:
        return None
    trained = [e for e in sw.entries if not e.random_init]
    if len({e.model for e in trained}) < 2:
        return None
    groups: dict[str, list[SweepEntry]] = {}
    for e in sorted(trained, key=lambda e: (e.step is None, e.step or 0)):  # checkpoints in training order
        groups.setdefault(e.requested_revision or "(default revision)", []).append(e)
    fig = new_figure(8.2, 4.0)
    ax = fig.add_subplot()
    handles, labels, named = [], [], []
    for (rev, es), colour, (_, _, marker) in zip(groups.items(), palette(len(groups)), line_styles(len(groups))):
        es = sorted(es, key=lambda e: e.n_params)
        (h,) = ax.plot([e.n_params for e in es], [e.total() for e in es], color=colour, marker=marker, markersize=5,
                       linewidth=1.5)
        handles.append(h)
        labels.append(plot_label(rev, 32))
        named += [(e.n_params, e.total(), plot_label(e.model.rsplit("/", 1)[-1], 20)) for e in es]
    rand = sorted((e for e in sw.entries if e.random_init), key=lambda e: e.n_params)
    if rand:
        (h,) = ax.plot([e.n_params for e in rand], [e.total() for e in rand], linestyle="--", color="#666666",
                       marker="x", markersize=6, linewidth=1.0)
        handles.append(h)
        labels.append("random init")
    ax.set_xscale("log")
    _set_compact_ticks(ax.xaxis, [e.n_params for e in sw.entries])
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"experts (AP ≥ {sw.tau:g}), all concepts")
    ax.yaxis.set_major_formatter(number_formatter())
    ax.set_ylim(bottom=0)
    ax.margins(x=0.12)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.set_title("Experts by model size", fontsize=10)
    outside_legend(fig, handles, labels, len(handles))
    seen = set()  # one label per model (its checkpoints sit on one x)
    named = [t for t in named if not (t[2] in seen or seen.add(t[2]))]
    place_labels(ax, [t[0] for t in named], [t[1] for t in named], [t[2] for t in named], fontsize=7.5,
                 color="#444444")
    png, csv_path = figure_paths(out_dir, name)
    save_png(fig, png)
    header = ("label", "model", "requested_revision", "step", "random_init", "n_params", "experts")
    rows = tuple((e.label, e.model, e.requested_revision or "", "" if e.step is None else e.step, e.random_init,
                  e.n_params, e.total()) for e in sorted(sw.entries, key=lambda e: (e.random_init, e.n_params)))
    write_csv(csv_path, header, rows)
    caption = (f"Experts (AP ≥ {sw.tau:g}, all concepts) of each model against its parameter count (log scale); "
               "models of the same requested revision are joined; a model is named where its label fits.")
    return FigureData(name, "Experts by model size", caption, png, csv_path, header, rows)
