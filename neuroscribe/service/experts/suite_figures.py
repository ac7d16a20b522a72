"""Figures of the expert-neuron analysis suite (``ExpertsResult.stability``, ``.alignment``, ``.sweep``,
``.causal``), drawn like those of ``figures``: matplotlib's Agg canvas, no pyplot; each function
saves ``NAME.png`` beside ``NAME.csv`` (exactly the numbers it plots) and returns a ``FigureData``,
or ``None`` when the result holds nothing for it.

* ``stability_curves``: per concept, the best mean Jaccard per tau and the expert count there.
* ``men_scatter``: human score vs model similarity of each word pair, one panel per method.
* ``sweep_per_layer``, ``sweep_per_step``, ``sweep_per_size``: experts of the sweep's models.
* ``causal_effect``: change in the concept word's log-probability, experts vs random units.

Undefined statistics (``None`` in the report, NaN in memory) are written to the CSVs as ``nan`` and
left out of the plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuroscribe.jobs.experts_suite import SweepEntry
from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.experts.figures import (
    OKABE_ITO,
    FigureData,
    _figure,
    _formatter,
    _integer_locator,
    _label_size,
    _save,
    _write_csv,
    compact_number,
    palette,
    plot_label,
)

__all__ = [
    "causal_effect",
    "compact_number",
    "finite",
    "line_styles",
    "men_scatter",
    "rho_text",
    "stability_curves",
    "sweep_per_layer",
    "sweep_per_size",
    "sweep_per_step",
    "tau_key",
]

_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_RANDOM_COLOURS = ("#000000", "#666666", "#999999")
_MAX_LEGEND = 16  # sweep entries named in a legend; more checkpoints: a spread of them
NAN = float("nan")


# --------------------------------------------------------------------------- helpers


def finite(v) -> float | None:
    """``v`` as a float, or ``None`` when it is missing or not finite (an undefined statistic)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _csv_num(v):
    """A CSV cell for a statistic: the value, or ``nan`` when undefined."""
    f = finite(v)
    return NAN if f is None else (v if isinstance(v, int) and not isinstance(v, bool) else f)


def tau_key(key) -> float | None:
    """The tau of a ``ConceptStability.best`` key (``str(tau)``, e.g. ``"0.9"``); ``None`` if not a number."""
    try:
        return float(key)
    except (TypeError, ValueError):
        return None


def line_styles(n: int) -> list[tuple]:
    """``n`` distinguishable ``(colour, linestyle, marker)``: the qualitative ``palette`` (Okabe-Ito,
    then tab20) with solid lines up to 20; beyond 20 the colours repeat with another line style
    and marker."""
    if n <= 20:
        return [(c, "-", _MARKERS[i % len(_MARKERS)] if n > 8 else "o") for i, c in enumerate(palette(n))]
    colours = palette(n)  # tab20, repeated
    return [(colours[i], _LINESTYLES[(i // 20) % len(_LINESTYLES)], _MARKERS[(i // 20) % len(_MARKERS)])
            for i in range(n)]


def _fmt_p(p) -> str:
    p = finite(p)
    if p is None:
        return "—"
    return f"{p:.1e}" if 0 < p < 1e-4 else f"{p:.2g}"


def rho_text(rho, p_value, n: int) -> str:
    """``ρ = 0.41 (p = 0.003, n = 93)``; an undefined value as ``—``."""
    r = finite(rho)
    return f"ρ = {'—' if r is None else f'{r:.2f}'} (p = {_fmt_p(p_value)}, n = {n})"


def _paths(out_dir: Path, name: str) -> tuple[Path, Path]:
    return out_dir / f"{name}.png", out_dir / f"{name}.csv"


def _legend(fig, handles, labels, n: int) -> None:
    if not handles:
        return
    fs = 8 if n <= 12 else 7 if n <= 24 else 6
    fig.legend(handles, labels, loc="outside right upper", fontsize=fs, frameon=False,
               ncols=1 if n <= 30 else 2)


# --------------------------------------------------------------------------- stability


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
                   _csv_num(p.n_experts_std))
            pts.append(row)
            rows.append(row)
        per_concept.append(pts)
    if not rows:
        return None
    n = len(st.concepts)
    styles = line_styles(n)
    fig = _figure(10.0 + (1.6 if n <= 30 else 3.2), 4.0)
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
    ax_n.yaxis.set_major_formatter(_formatter())
    ax_n.set_ylabel("experts at the best point (mean ± std)")
    ax_n.set_title("Experts found there", fontsize=10)
    for ax in (ax_j, ax_n):
        ax.set_xlabel("tau")
        ax.grid(alpha=0.3, linewidth=0.5)
        if len(taus) <= 12:
            ax.set_xticks(taus, [f"{t:g}" for t in taus], fontsize=8)
    _legend(fig, handles, labels, len(handles))
    png, csv_path = _paths(out_dir, name)
    _save(fig, png)
    header = ("concept", "tau", "n_pos", "n_neg", "jaccard", "n_experts_mean", "n_experts_std")
    rows = tuple(rows)
    _write_csv(csv_path, header, rows)
    missing = [c.concept for c, pts in zip(st.concepts, per_concept) if not pts]
    caption = (f"For each tau, the subsample size (n+, n−) whose {st.spec.repeats} repeated subsamples give the "
               "highest mean pairwise Jaccard of their expert sets (left) and the number of experts there (right)."
               + (f" No tau has a point above chance for: {', '.join(missing)}." if missing else ""))
    return FigureData(name, "Stability of the expert sets", caption, png, csv_path, header, rows)


# --------------------------------------------------------------------------- alignment


def _extremes(x: np.ndarray, y: np.ndarray, k: int = 3) -> list[int]:
    """Indices of the ``k`` points whose ranks disagree most (human vs model)."""
    if len(x) < 5:
        return []
    rx = np.argsort(np.argsort(x, kind="stable"), kind="stable") / (len(x) - 1)
    ry = np.argsort(np.argsort(y, kind="stable"), kind="stable") / (len(y) - 1)
    return [int(i) for i in np.argsort(-np.abs(rx - ry), kind="stable")[:k]]


def men_scatter(result: ExpertsResult, out_dir: Path, name: str = "men_scatter") -> FigureData | None:
    """Human score (x) against the model's similarity (y) of each word pair, one panel per method,
    titled with Spearman's rho, its p-value and the pairs plotted; the three pairs whose ranks
    disagree most are named. ``None`` without an alignment report, methods or pairs."""
    al = result.alignment
    if al is None or not al.methods or not al.pairs:
        return None
    methods = list(al.methods)
    n_m = len(methods)
    ncols = min(3, n_m)
    nrows = math.ceil(n_m / ncols)
    fig = _figure(3.7 * ncols + 0.3, 3.4 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    human = np.array([p.human for p in al.pairs], dtype=float)
    for k, ax in enumerate(axes.flat):
        if k >= n_m:
            ax.set_visible(False)
            continue
        m = methods[k]
        sim = np.array([_csv_num(p.similarity.get(m.method)) for p in al.pairs], dtype=float)
        ok = np.isfinite(sim) & np.isfinite(human)
        x, y = human[ok], sim[ok]
        idx = np.flatnonzero(ok)
        ax.scatter(x, y, s=11, alpha=0.65, color=OKABE_ITO[4], edgecolors="none")
        for i in _extremes(x, y):
            p = al.pairs[idx[i]]
            ax.annotate(plot_label(f"{p.word1}–{p.word2}", 24), (x[i], y[i]), fontsize=6, color="#444444",
                        xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{plot_label(m.method, 40)}\n{rho_text(m.rho, m.p_value, int(ok.sum()))}", fontsize=9)
        ax.set_xlabel(f"{plot_label(al.dataset)} human score", fontsize=8)
        ax.set_ylabel("model similarity", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, linewidth=0.5)
    png, csv_path = _paths(out_dir, name)
    _save(fig, png)
    header = ("word1", "word2", "human", *(m.method for m in methods))
    rows = tuple((p.word1, p.word2, float(p.human), *(_csv_num(p.similarity.get(m.method)) for m in methods))
                 for p in al.pairs)
    _write_csv(csv_path, header, rows)
    caption = (f"Each dot is one {al.dataset} word pair whose both words are concepts: its human similarity "
               "rating against the model's similarity of the two concepts, per method; ρ is Spearman's rank "
               "correlation over the pairs. Named: the pairs whose ranks disagree most.")
    return FigureData(name, f"{al.dataset} alignment", caption, png, csv_path, header, rows)


# --------------------------------------------------------------------------- sweep


def _stepped(e: SweepEntry) -> bool:
    return not e.random_init and e.step is not None


def _entry_styles(entries: Sequence[SweepEntry]) -> tuple[list[int], dict[int, dict]]:
    """Plot order (checkpoints by step, other models, random inits) and each entry's line style:
    checkpoints on viridis by step (dark = early), other models qualitative, random inits dashed
    black/grey; the marker tells models apart."""
    from matplotlib import colormaps

    models = list(dict.fromkeys(e.model for e in entries))
    marker = {m: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(models)}
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
    fig = _figure(8.6, 4.0)
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
    ax.xaxis.set_major_locator(_integer_locator())
    ax.yaxis.set_major_locator(_integer_locator())
    ax.yaxis.set_major_formatter(_formatter())
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.set_title("Experts per layer across the sweep", fontsize=10)
    _legend(fig, handles, labels, len(handles))
    png, csv_path = _paths(out_dir, name)
    _save(fig, png)
    header = ("label", "model", "requested_revision", "step", "random_init", "layer", "experts")
    rows = tuple(rows)
    _write_csv(csv_path, header, rows)
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
    axis.set_major_formatter(_formatter())


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
    fig = _figure(8.6, 4.0)
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
    ax.yaxis.set_major_formatter(_formatter())
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.set_title("Experts over training", fontsize=10)
    _legend(fig, handles, labels, len(handles))
    png, csv_path = _paths(out_dir, name)
    _save(fig, png)
    rows = []
    for e in sorted(stepped, key=lambda e: (models.index(e.model), e.step)) + [x for x in sw.entries if x.random_init]:
        rows += [(e.label, e.model, e.requested_revision or "", "" if e.step is None else e.step, e.random_init, c,
                  e.total(c), e.total()) for c in e.counts_per_layer]
    header = ("label", "model", "requested_revision", "step", "random_init", "concept", "experts", "total_experts")
    rows = tuple(rows)
    _write_csv(csv_path, header, rows)
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
    fig = _figure(8.2, 4.0)
    ax = fig.add_subplot()
    handles, labels = [], []
    for (rev, es), colour, (_, _, marker) in zip(groups.items(), palette(len(groups)), line_styles(len(groups))):
        es = sorted(es, key=lambda e: e.n_params)
        (h,) = ax.plot([e.n_params for e in es], [e.total() for e in es], color=colour, marker=marker, markersize=5,
                       linewidth=1.5)
        handles.append(h)
        labels.append(plot_label(rev, 32))
        for e in es:
            ax.annotate(plot_label(e.model.rsplit("/", 1)[-1], 20), (e.n_params, e.total()), fontsize=6,
                        color="#444444", xytext=(3, 3), textcoords="offset points")
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
    ax.yaxis.set_major_formatter(_formatter())
    ax.set_ylim(bottom=0)
    ax.margins(x=0.12)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.set_title("Experts by model size", fontsize=10)
    _legend(fig, handles, labels, len(handles))
    png, csv_path = _paths(out_dir, name)
    _save(fig, png)
    header = ("label", "model", "requested_revision", "step", "random_init", "n_params", "experts")
    rows = tuple((e.label, e.model, e.requested_revision or "", "" if e.step is None else e.step, e.random_init,
                  e.n_params, e.total()) for e in sorted(sw.entries, key=lambda e: (e.random_init, e.n_params)))
    _write_csv(csv_path, header, rows)
    caption = (f"Experts (AP ≥ {sw.tau:g}, all concepts) of each model against its parameter count (log scale); "
               "models of the same requested revision are joined.")
    return FigureData(name, "Experts by model size", caption, png, csv_path, header, rows)


# --------------------------------------------------------------------------- causal


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
    fig = _figure(9.6, max(2.6, 0.42 * n + 1.5))
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
    ax.set_yticks(y, [plot_label(c.concept) for c in tested], fontsize=_label_size(n) if n > 16 else 9)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("change in log P(concept word)")
    ax_d.set_xlabel("difference")
    ax.set_title("Fixing experts vs random units", fontsize=10)
    ax_d.set_title("Experts − random", fontsize=10)
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    png, csv_path = _paths(out_dir, name)
    _save(fig, png)
    header = ("concept", "n_units", "n_prompts", "mean_experts", "ci_low_experts", "ci_high_experts", "mean_random",
              "ci_low_random", "ci_high_random", "mean_difference", "ci_low_difference", "ci_high_difference")
    rows = tuple((c.concept, c.n_units, c.n_prompts,
                  *(_csv_num(v) for f in ("experts", "random", "difference")
                    for v in (getattr(c, f"mean_{f}"), *_ci(getattr(c, f"ci_{f}")))))
                 for c in tested)
    _write_csv(csv_path, header, rows)
    caption = (f"Mean over {len(cs.prompts)} prompts of the change in log-probability of the concept word when "
               f"the concept's experts are fixed to their median positive response (site {cs.site}), against "
               f"as many random units of the same layers; bars: {cs.confidence * 100:g}% t-intervals over prompts "
               "(none where undefined, e.g. with one prompt).")
    return FigureData(name, "Causal check", caption, png, csv_path, header, rows)
