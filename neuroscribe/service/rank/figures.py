"""The figures of a rank result's page (docs/methods.md#c), drawn with the report kit; each saves
``NAME.png`` beside ``NAME.csv`` (the numbers it plots) and returns a ``FigureData``, or ``None`` when
the result holds nothing for it:

* ``probing_figure`` (``probing_accuracy``): encoded information (C.2), held-out accuracy of a
  separate probe vs k per ranking (top-k solid with its 95% band, bottom-k dotted, random-k dashed
  grey, the majority baseline), and, when some ranking has a probe of its own, a second panel with
  that probe's top-k accuracy beside the separate probe's (the confound);
* ``interventions_figure`` (``interventions``): used information (C.3), one panel per mode, the mean
  effect of the ranked top-k and of random k-sets with 95% intervals, per ranking and k;
* ``agreement_figure`` (``agreement_k{K}``): agreement (C.4) at the largest k, the pairwise top-k
  overlap of the rankings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuroscribe.jobs import RankResult
from neuroscribe.service.rank.result_view import (
    MEASURES,
    draw_range,
    majority_row,
    measure_of,
    n_seeds,
    probe_index,
    probe_name,
    probed_ks,
    random_rows,
    ranking_names,
)
from neuroscribe.service.report.plotting import (
    MAX_WIDTH_IN,
    FigureData,
    compact_number,
    new_figure,
    palette,
    plot_label,
    save_png,
    write_csv,
)

__all__ = ["probing_figure", "interventions_figure", "agreement_figure"]

_RANDOM_COLOUR = "#555555"
_MAJORITY_COLOUR = "#999999"


def _nan(x) -> float:
    return math.nan if x is None else float(x)


def _count(n: int) -> str:
    return f"{n:,}"


def _k_axis(ax, ks: Sequence[int]) -> None:
    if len(ks) > 1 and ks[0] > 0 and ks[-1] / ks[0] >= 20:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if 0 < len(ks) <= 12:
        ax.set_xticks(list(ks), [compact_number(k) for k in ks])
    ax.set_xlabel("k (units kept)")


def probing_figure(result: RankResult, out_dir: Path, name: str = "probing_accuracy") -> FigureData | None:
    """Accuracy vs k per ranking (C.2) and, when some ranking has its own probe, a second panel with
    that probe's top-k accuracy beside the separate probe's. ``None`` without probing rows.

    The CSV holds every plotted point: ``panel`` (``encoded`` or ``same_probe``), ``ranking`` ("" for
    random-k and the majority baseline, which do not depend on the ranking), ``selection``, ``probe``,
    ``k`` (0 for the baseline), ``accuracy``, ``ci_low``, ``ci_high``, ``n_seeds`` and ``gap`` (own
    probe minus separate probe, on the ``same_probe`` panel's own-probe rows)."""
    ks = probed_ks(result)
    idx = probe_index(result)
    names = ranking_names(result)
    if not ks or not any(r.selection in ("top", "bottom", "random") for r in result.probing):
        return None
    colours = dict(zip(names, palette(len(names))))
    same_names = list(dict.fromkeys(s.ranking for s in result.same_probe))
    two = bool(same_names)
    fig = new_figure(MAX_WIDTH_IN if two else 7.2, 4.8)
    axes = fig.subplots(1, 2, sharey=True) if two else [fig.add_subplot()]
    ax = axes[0]
    rows: list[tuple] = []
    probe = probe_name(result) or "separate"

    def curve(axis, ranking: str, selection: str, label: str, colour, style: str, band: bool, panel="encoded"):
        pts = [idx.get((ranking, selection, k)) for k in ks]
        if not any(p is not None for p in pts):
            return
        mean = [_nan(p.accuracy) if p else math.nan for p in pts]
        axis.plot(ks, mean, linestyle=style, marker="o", markersize=3, color=colour, label=plot_label(label, 48),
                  linewidth=1.4)
        if band:
            lo = [_nan(p.ci_low) if p else math.nan for p in pts]
            hi = [_nan(p.ci_high) if p else math.nan for p in pts]
            if np.isfinite(lo).any():
                axis.fill_between(ks, lo, hi, color=colour, alpha=0.15, linewidth=0)
        for k, p in zip(ks, pts):
            if p is not None:
                rows.append((panel, ranking if selection != "random" else "", selection, p.probe, k, p.accuracy,
                             p.ci_low, p.ci_high, p.n_seeds, None))

    for r in names:
        curve(ax, r, "top", f"{r} top-k", colours[r], "-", True)
        curve(ax, r, "bottom", f"{r} bottom-k", colours[r], ":", False)
    rnd = random_rows(result)
    if rnd:
        curve(ax, rnd[0].ranking, "random", "random-k", _RANDOM_COLOUR, "--", True)
    maj = majority_row(result)
    if maj is not None and maj.accuracy is not None:
        ax.axhline(maj.accuracy, color=_MAJORITY_COLOUR, linestyle=(0, (1, 1)), linewidth=1.2,
                   label=f"majority class {maj.accuracy:.3f}")
        rows.append(("encoded", "", "majority", maj.probe, 0, maj.accuracy, maj.ci_low, maj.ci_high, maj.n_seeds,
                     None))
    _k_axis(ax, ks)
    ax.set_ylabel(f"held-out accuracy ({plot_label(probe)} probe)")
    seeds = n_seeds(result)
    ax.set_title("Encoded information: a separate probe on k units"
                 + (f" ({seeds} splits, 95% CI)" if seeds else ""), fontsize=10)
    ax.legend(fontsize=7.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2 if two else 3)
    if two:
        ax2 = axes[1]
        by = {(s.ranking, s.k): s for s in result.same_probe}
        for r in same_names:
            c = colours.get(r, _RANDOM_COLOUR)
            ind = [by.get((r, k)) for k in ks]
            ax2.plot(ks, [_nan(s.independent) if s else math.nan for s in ind], linestyle="-", marker="o",
                     markersize=3, color=c, label=plot_label(f"{r}: separate {probe} probe", 48), linewidth=1.4)
            ax2.plot(ks, [_nan(s.same_probe) if s else math.nan for s in ind], linestyle="-.", marker="s",
                     markersize=3, color=c, label=plot_label(f"{r}: its own probe", 48), linewidth=1.4)
            for k, s in zip(ks, ind):
                if s is None:
                    continue
                t, o = idx.get((r, "top", k)), idx.get((r, "top_same_probe", k))
                rows.append(("same_probe", r, "top", t.probe if t else probe, k, s.independent,
                             t.ci_low if t else None, t.ci_high if t else None, t.n_seeds if t else None, None))
                rows.append(("same_probe", r, "top_same_probe", o.probe if o else "same", k, s.same_probe,
                             o.ci_low if o else None, o.ci_high if o else None, o.n_seeds if o else None, s.gap))
        if maj is not None and maj.accuracy is not None:
            ax2.axhline(maj.accuracy, color=_MAJORITY_COLOUR, linestyle=(0, (1, 1)), linewidth=1.2)
        _k_axis(ax2, ks)
        ax2.yaxis.set_tick_params(labelleft=True)
        ax2.set_title("The confound: top-k judged by the ranking's own probe", fontsize=10)
        ax2.legend(fontsize=7.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    save_png(fig, png)
    header = ("panel", "ranking", "selection", "probe", "k", "accuracy", "ci_low", "ci_high", "n_seeds", "gap")
    write_csv(csv_path, header, rows)
    caption = (f"Held-out accuracy of a separate {probe} probe (not the one that made any ranking) trained on each "
               "ranking's top-k units (solid, 95% band over the splits), its bottom-k (dotted) and on random k units "
               "(dashed grey, the same draws for every ranking)"
               + (f"; the majority-class baseline {maj.accuracy:.3f} (grey dots)"
                  if maj is not None and maj.accuracy is not None else "") + "."
               + (" Right: the top-k of " + ", ".join(same_names) + " scored by the ranking's own probe (dash-dot) "
                  "beside the separate probe (solid), on the same splits." if two else ""))
    return FigureData(name, "Probing accuracy vs k", caption, png, csv_path, header, tuple(rows))


def interventions_figure(result: RankResult, out_dir: Path, name: str = "interventions") -> FigureData | None:
    """One panel per intervention mode: per k (groups) and ranking (colours) the mean effect of
    intervening on the ranked top-k (filled) and on random k-sets (hollow), with 95% intervals.
    ``None`` without interventions. The CSV holds every row's means and intervals, the paired
    difference (ranked minus random) included."""
    effects = list(result.interventions)
    if not effects:
        return None
    modes = list(dict.fromkeys(e.mode for e in effects))
    every = ranking_names(result)
    every += [n for n in dict.fromkeys(e.ranking for e in effects) if n not in every]
    colours = dict(zip(every, palette(len(every))))  # the probing figure's colours
    names = [n for n in every if any(e.ranking == n for e in effects)]
    measure = measure_of(result)
    fig = new_figure(min(MAX_WIDTH_IN, max(5.0, 3.0 * len(modes) + 1.8)), 4.0)
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    by = {(e.mode, e.k, e.ranking): e for e in effects}
    slot = 0.8 / (2 * len(names))
    for ax, mode in zip(axes, modes):
        ks = sorted({e.k for e in effects if e.mode == mode})
        for gi, k in enumerate(ks):
            for ri, r in enumerate(names):
                e = by.get((mode, k, r))
                if e is None:
                    continue
                base = gi - 0.4 + slot * (2 * ri + 0.5)
                draws = [d for d in e.random_draws if d is not None]
                spread = (min(draws), max(draws)) if draws else e.ci_random  # the random sets' range
                for dx, mean, ci, filled in ((0.0, e.mean_ranked, e.ci_ranked, True),
                                             (slot, e.mean_random, spread, False)):
                    if mean is None:
                        continue
                    kw = dict(marker="o", markersize=5, color=colours[r], linestyle="none",
                              markerfacecolor=colours[r] if filled else "white", markeredgecolor=colours[r])
                    lo, hi = ci
                    if lo is not None and hi is not None:
                        ax.errorbar([base + dx], [mean], yerr=[[max(0.0, mean - lo)], [max(0.0, hi - mean)]],
                                    capsize=2, elinewidth=1, **kw)
                    else:
                        ax.plot([base + dx], [mean], **kw)
        ax.axhline(0.0, color="#333333", linewidth=0.7)
        ax.set_xticks(np.arange(len(ks)), [f"k={compact_number(k)}" for k in ks])
        ax.set_xlim(-0.6, len(ks) - 0.4)
        ax.set_title(f"{plot_label(mode)}", fontsize=10)
        ax.set_ylabel(plot_label(f"Δ {measure} (intervened − clean)", 60))
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="none", color=colours[r], label=plot_label(r)) for r in names]
    handles += [Line2D([], [], marker="o", linestyle="none", color="#333333", label="ranked top-k"),
                Line2D([], [], marker="o", linestyle="none", color="#333333", markerfacecolor="white",
                       label="random k-sets")]
    axes[-1].legend(handles=handles, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    save_png(fig, png)
    header = ("mode", "k", "ranking", "measure", "n_examples", "mean_ranked", "ci_ranked_low", "ci_ranked_high",
              "mean_random", "ci_random_low", "ci_random_high", "mean_difference", "ci_difference_low",
              "ci_difference_high", "random_draw_min", "random_draw_max")
    rows = tuple((e.mode, e.k, e.ranking, e.measure, e.n_examples, e.mean_ranked, *e.ci_ranked, e.mean_random,
                  *e.ci_random, e.mean_difference, *e.ci_difference, *draw_range(e))
                 for e in sorted(effects, key=lambda e: (modes.index(e.mode), e.k, names.index(e.ranking))))
    write_csv(csv_path, header, rows)
    gloss = MEASURES.get(measure)
    caption = (f"Change of the model's {measure}" + (f" ({gloss})" if gloss else "")
               + " when the units are intervened on (intervened minus clean, mean over the examples with a 95% "
               "interval), per mode: the ranking's top-k units (filled) against random k-sets (hollow: the mean "
               "over the sets, its bar the range of the sets' means). The CSV also holds the paired difference "
               "ranked minus random and the sets' range.")
    return FigureData(name, "Interventions", caption, png, csv_path, header, rows)


def agreement_figure(result: RankResult, out_dir: Path, k: int | None = None) -> FigureData | None:
    """Heatmap of the pairwise top-k overlap ``|A ∩ B| / k`` at ``k`` (default: the largest k of the
    agreement rows), each pair once (lower triangle, no diagonal). ``None`` without agreement rows.
    The CSV lists exactly the plotted pairs: ``a`` (column), ``b`` (row), ``k``, ``overlap``,
    ``jaccard``, ``chance``."""
    if not result.agreement:
        return None
    k = max(r.k for r in result.agreement) if k is None else int(k)
    pairs = [r for r in result.agreement if r.k == k]
    if not pairs:
        return None
    names = [n for n in ranking_names(result) if any(n in (p.a, p.b) for p in pairs)]
    names += [n for n in dict.fromkeys(x for p in pairs for x in (p.a, p.b)) if n not in names]
    pos = {n: i for i, n in enumerate(names)}
    n = len(names)
    mat = np.full((n, n), np.nan)
    for p in pairs:
        i, j = pos[p.a], pos[p.b]
        mat[max(i, j), min(i, j)] = p.overlap
    grid = mat[1:, :-1]
    chance = pairs[0].chance
    cell = max(0.45, min(0.9, 6.0 / max(n, 1)))
    side = max(3.2, cell * (n - 1) + 2.4)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0, aspect="equal")
    ax.set_xticks(np.arange(n - 1), [plot_label(s) for s in names[:-1]], fontsize=8)
    ax.set_yticks(np.arange(n - 1), [plot_label(s) for s in names[1:]], fontsize=8)
    for t in ax.get_xticklabels():
        t.set_rotation(45)
        t.set_ha("right")
        t.set_rotation_mode("anchor")
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    if n <= 14:
        for i in range(n - 1):
            for j in range(i + 1):
                v = grid[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if v < 0.6 else "black")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.ax.axhline(chance, color="#D55E00", linewidth=1.5)
    cb.set_label(f"top-{k} overlap (red: chance {chance:.3g})", fontsize=8)
    cb.ax.tick_params(labelsize=7.5)
    ax.set_title(f"Agreement of the top-{compact_number(k)} sets", fontsize=10)
    name = f"agreement_k{k}"
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    save_png(fig, png)
    header = ("a", "b", "k", "overlap", "jaccard", "chance")
    rows = tuple((p.a, p.b, p.k, p.overlap, p.jaccard, p.chance) for p in pairs)
    write_csv(csv_path, header, rows)
    caption = (f"Share of the top-{k} units two rankings have in common, |A ∩ B| / k, each pair once. Two random "
               f"top-{k} sets of the layer's {_count(result.units)} units share k / units = {chance:.3g} of them "
               "on average (the red line on the colour bar).")
    return FigureData(name, f"Agreement at k = {k}", caption, png, csv_path, header, rows)
