"""The page of a ``neuroscribe rank`` result (METHODS.md part C, Antverg & Belinkov 2022): ``DIR/rankings.html``.

One self-contained HTML file (inline CSS, PNGs as base64 data URIs, no script, no network; every
string from the user or the result escaped through ``esc``) and ``DIR/report/`` with its figures,
each ``NAME.png`` beside ``NAME.csv`` (the numbers it plots):

* ``probing_accuracy``: encoded information (C.2), held-out accuracy of a separate probe vs k per
  ranking (top-k solid with its 95% band, bottom-k dotted, random-k dashed grey, the majority
  baseline), and, when some ranking has a probe of its own, a second panel with that probe's top-k
  accuracy beside the separate probe's (the confound);
* ``interventions``: used information (C.3), when the result has interventions: one panel per mode,
  the mean effect of the ranked top-k and of random k-sets with 95% intervals, per ranking and k;
* ``agreement_k{K}``: agreement (C.4) at the largest k, the pairwise top-k overlap of the rankings.

Top to bottom: title, warnings, summary, encoded information, used information (only when the
result has interventions), agreement, the rankings (per method its top ``TOP_UNITS`` units and
params), provenance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuroscribe.jobs import RankResult
from neuroscribe.jobs.rank import EffectRow, ProbeRow
from neuroscribe.service.artefacts import write_text
from neuroscribe.service.experts.figures import FigureData, _figure as _new_figure, _save, _write_csv, compact_number, palette, plot_label
from neuroscribe.service.report.html import _CSS, Section, _section, esc, provenance_list, table, warnings_block

__all__ = ["write_rank_page", "RANKINGS_HTML", "REPORT_DIR", "TOP_UNITS", "probing_figure", "interventions_figure",
           "agreement_figure"]

RANKINGS_HTML = "rankings.html"
REPORT_DIR = "report"
TOP_UNITS = 20
_PARAM_ITEMS = 8  # items of a list-valued ranking parameter shown on the page
_RANDOM_COLOUR = "#555555"
_MAJORITY_COLOUR = "#999999"
_RESULT_FILES = ("rankings.json", "rankings.csv", "probing.csv", "same_probe.csv", "interventions.csv",
                 "agreement.csv", "summary.txt", "job.json")
_MEASURES = {
    "logodds": "log-odds of the label's continuation against the other labels'",
    "logprob": "log-probability of the label-bearing text",
    "accuracy": "accuracy of the model's own prediction of the label",
}

_RANK_CSS = """
h3{font-size:1.05em;margin-top:1.5em} .rk{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
"""


# --------------------------------------------------------------------------- formatting


def _nan(x) -> float:
    return math.nan if x is None else float(x)


def _acc(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _g(x: float | None, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _signed(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.3g}"


def _with_ci(mean, lo, hi, fmt=_acc) -> str:
    if mean is None:
        return "—"
    if lo is None or hi is None:
        return fmt(mean)
    return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def _count(n: int) -> str:
    return f"{n:,}"


def _param_value(v) -> str:
    if isinstance(v, (list, tuple)):
        shown = ", ".join(_param_value(x) for x in v[:_PARAM_ITEMS])
        more = f", … ({len(v)} in all)" if len(v) > _PARAM_ITEMS else ""
        return f"[{shown}{more}]"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_param_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def _measure(result: RankResult) -> str:
    if result.intervention_measure:
        return result.intervention_measure
    return result.interventions[0].measure if result.interventions else ""


# --------------------------------------------------------------------------- reading the result


def _ranking_names(result: RankResult) -> list[str]:
    """The rankings in the result's order, then any other named in the probing rows."""
    names = [r.method for r in result.rankings]
    for row in result.probing:
        if row.ranking and row.ranking not in names:
            names.append(row.ranking)
    return names


def _probe_index(result: RankResult) -> dict[tuple[str, str, int], ProbeRow]:
    return {(r.ranking, r.selection, r.k): r for r in result.probing}


def _random_rows(result: RankResult) -> list[ProbeRow]:
    """Random-k does not depend on the ranking: the rows of the first ranking that has them."""
    for name in _ranking_names(result) + [""]:
        rows = sorted((r for r in result.probing if r.selection == "random" and r.ranking == name), key=lambda r: r.k)
        if rows:
            return rows
    return []


def _majority(result: RankResult) -> ProbeRow | None:
    return next((r for r in result.probing if r.selection == "majority"), None)


def _probe_name(result: RankResult) -> str | None:
    return next((r.probe for r in result.probing if r.selection == "top"), None)


def _n_seeds(result: RankResult) -> int | None:
    return next((r.n_seeds for r in result.probing if r.selection == "top"), None)


def _ks(result: RankResult) -> list[int]:
    ks = sorted({r.k for r in result.probing if r.selection != "majority"})
    return ks or sorted(set(result.ks))


def _k_axis(ax, ks: Sequence[int]) -> None:
    if len(ks) > 1 and ks[0] > 0 and ks[-1] / ks[0] >= 20:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if 0 < len(ks) <= 12:
        ax.set_xticks(list(ks), [compact_number(k) for k in ks])
    ax.set_xlabel("k (units kept)")


# --------------------------------------------------------------------------- figures


def probing_figure(result: RankResult, out_dir: Path, name: str = "probing_accuracy") -> FigureData | None:
    """Accuracy vs k per ranking (C.2) and, when some ranking has its own probe, a second panel with
    that probe's top-k accuracy beside the separate probe's. ``None`` without probing rows.

    The CSV holds every plotted point: ``panel`` (``encoded`` or ``same_probe``), ``ranking`` ("" for
    random-k and the majority baseline, which do not depend on the ranking), ``selection``, ``probe``,
    ``k`` (0 for the baseline), ``accuracy``, ``ci_low``, ``ci_high``, ``n_seeds`` and ``gap`` (own
    probe minus separate probe, on the ``same_probe`` panel's own-probe rows)."""
    ks = _ks(result)
    idx = _probe_index(result)
    names = _ranking_names(result)
    if not ks or not any(r.selection in ("top", "bottom", "random") for r in result.probing):
        return None
    colours = dict(zip(names, palette(len(names))))
    same_names = list(dict.fromkeys(s.ranking for s in result.same_probe))
    two = bool(same_names)
    fig = _new_figure(11.5 if two else 7.2, 4.6)
    axes = fig.subplots(1, 2, sharey=True) if two else [fig.add_subplot()]
    ax = axes[0]
    rows: list[tuple] = []
    probe = _probe_name(result) or "separate"

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
    rnd = _random_rows(result)
    if rnd:
        curve(ax, rnd[0].ranking, "random", "random-k", _RANDOM_COLOUR, "--", True)
    maj = _majority(result)
    if maj is not None and maj.accuracy is not None:
        ax.axhline(maj.accuracy, color=_MAJORITY_COLOUR, linestyle=(0, (1, 1)), linewidth=1.2,
                   label=f"majority class {maj.accuracy:.3f}")
        rows.append(("encoded", "", "majority", maj.probe, 0, maj.accuracy, maj.ci_low, maj.ci_high, maj.n_seeds,
                     None))
    _k_axis(ax, ks)
    ax.set_ylabel(f"held-out accuracy ({plot_label(probe)} probe)")
    seeds = _n_seeds(result)
    ax.set_title("Encoded information: a separate probe on k units"
                 + (f" ({seeds} splits, 95% CI)" if seeds else ""), fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
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
        ax2.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    _save(fig, png)
    header = ("panel", "ranking", "selection", "probe", "k", "accuracy", "ci_low", "ci_high", "n_seeds", "gap")
    _write_csv(csv_path, header, rows)
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
    every = _ranking_names(result)
    every += [n for n in dict.fromkeys(e.ranking for e in effects) if n not in every]
    colours = dict(zip(every, palette(len(every))))  # the probing figure's colours
    names = [n for n in every if any(e.ranking == n for e in effects)]
    measure = _measure(result)
    fig = _new_figure(max(5.0, 4.3 * len(modes) + 1.8), 4.0)
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
    axes[-1].legend(handles=handles, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    _save(fig, png)
    header = ("mode", "k", "ranking", "measure", "n_examples", "mean_ranked", "ci_ranked_low", "ci_ranked_high",
              "mean_random", "ci_random_low", "ci_random_high", "mean_difference", "ci_difference_low",
              "ci_difference_high", "random_draw_min", "random_draw_max")
    rows = tuple((e.mode, e.k, e.ranking, e.measure, e.n_examples, e.mean_ranked, *e.ci_ranked, e.mean_random,
                  *e.ci_random, e.mean_difference, *e.ci_difference, *_draw_range(e))
                 for e in sorted(effects, key=lambda e: (modes.index(e.mode), e.k, names.index(e.ranking))))
    _write_csv(csv_path, header, rows)
    gloss = _MEASURES.get(measure)
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
    names = [n for n in _ranking_names(result) if any(n in (p.a, p.b) for p in pairs)]
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
    fig = _new_figure(side + 1.2, side)
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
    cb.ax.tick_params(labelsize=7)
    ax.set_title(f"Agreement of the top-{compact_number(k)} sets", fontsize=10)
    name = f"agreement_k{k}"
    png, csv_path = out_dir / f"{name}.png", out_dir / f"{name}.csv"
    _save(fig, png)
    header = ("a", "b", "k", "overlap", "jaccard", "chance")
    rows = tuple((p.a, p.b, p.k, p.overlap, p.jaccard, p.chance) for p in pairs)
    _write_csv(csv_path, header, rows)
    caption = (f"Share of the top-{k} units two rankings have in common, |A ∩ B| / k, each pair once. Two random "
               f"top-{k} sets of the layer's {_count(result.units)} units share k / units = {chance:.3g} of them "
               "on average (the red line on the colour bar).")
    return FigureData(name, f"Agreement at k = {k}", caption, png, csv_path, header, rows)


# --------------------------------------------------------------------------- sections


def _warnings(result: RankResult) -> str:
    return warnings_block(result.warnings)


def _summary(result: RankResult) -> Section:
    p = result.provenance
    classes = ", ".join(f"{k}: {_count(v)}" for k, v in result.classes.items())
    maj = _majority(result)
    probe, seeds = _probe_name(result), _n_seeds(result)
    if result.interventions:
        modes = ", ".join(dict.fromkeys(e.mode for e in result.interventions))
        n_ex = max(e.n_examples for e in result.interventions)
        interventions = f"{modes}; measure {_measure(result)}; {_count(n_ex)} examples scored"
    else:
        interventions = "not run"
    rows = [
        ("dataset", result.dataset),
        ("level", "token (the target word of each example)" if result.level == "token"
         else f"sentence ({p.pooling.value} pooling over its tokens)"),
        ("examples", _count(result.n_examples)),
        ("examples per class", classes),
        ("layer", result.layer),
        ("site", p.site),
        ("units", _count(result.units)),
        ("k", ", ".join(str(k) for k in result.ks)),
        ("methods", ", ".join(r.method for r in result.rankings)),
        ("evaluation probe", "—" if probe is None else probe + (f" ({seeds} train/test splits)" if seeds else "")),
        ("majority-class accuracy", "—" if maj is None else _with_ci(maj.accuracy, maj.ci_low, maj.ci_high)),
        ("interventions", interventions),
    ]
    return Section("Summary", body=table(("", "value"), rows))


def _encoded(result: RankResult, fig_dir: Path) -> Section:
    fig = probing_figure(result, fig_dir)
    if fig is None:
        return Section("Encoded information", body='<p class="muted">No probing in this result.</p>')
    idx = _probe_index(result)
    same = {(s.ranking, s.k): s for s in result.same_probe}
    rnd = {r.k: r for r in _random_rows(result)}
    has_same = bool(result.same_probe)
    header = ["ranking", "k", "top-k [95% CI]", "bottom-k [95% CI]", "random-k [95% CI]"]
    if has_same:
        header += ["top-k, own probe", "gap (own − separate)"]
    rows = []
    for name in _ranking_names(result):
        for k in _ks(result):
            top, bottom = idx.get((name, "top", k)), idx.get((name, "bottom", k))
            if top is None and bottom is None:
                continue
            r = idx.get((name, "random", k)) or rnd.get(k)
            row = [name, k, _with_ci(*_fields(top)), _with_ci(*_fields(bottom)), _with_ci(*_fields(r))]
            if has_same:
                s = same.get((name, k))
                own = idx.get((name, "top_same_probe", k))
                own_ci = (own.ci_low, own.ci_high) if own is not None else (None, None)
                row += ["—" if s is None else _with_ci(s.same_probe, *own_ci), "—" if s is None else _signed(s.gap)]
            rows.append(row)
    probe = _probe_name(result) or "separate"
    maj = _majority(result)
    intro = (f"<p>Each ranking's top-k, bottom-k and k random units are given to a separate {esc(probe)} probe "
             "(not the probe that produced any ranking), trained and scored on the same held-out splits. A ranking "
             "that puts the attribute's units first has top-k well above random-k and bottom-k near or below it"
             + (f"; the majority class scores {esc(_acc(maj.accuracy))}" if maj is not None else "") + ".</p>")
    confound = ""
    if has_same:
        owners = ", ".join(dict.fromkeys(s.ranking for s in result.same_probe))
        confound = (f'<p class="note">The confound (Antverg &amp; Belinkov 2022): the ranking(s) {esc(owners)} come '
                    "from a probe of their own. Judged by that same probe, a top-k mixes the quality of the probe "
                    "with the quality of the ranking; the <i>own probe</i> column retrains it on the same splits, "
                    "and the gap is how much of the accuracy comes from the probe rather than from the units it "
                    "picked. Compare rankings by the separate probe's columns.</p>")
    numeric = set(range(1, len(header)))
    return Section("Encoded information", figures=(fig,), body=intro + table(header, rows, numeric) + confound)


def _fields(row: ProbeRow | None) -> tuple:
    return (None, None, None) if row is None else (row.accuracy, row.ci_low, row.ci_high)


def _range(e: EffectRow) -> str:
    lo, hi = _draw_range(e)
    return "—" if lo is None else f"{_g(lo)} .. {_g(hi)}"


def _draw_range(e: EffectRow) -> tuple:
    draws = [d for d in e.random_draws if d is not None]
    return (min(draws), max(draws)) if draws else (None, None)


def _used(result: RankResult, fig_dir: Path) -> Section | None:
    if not result.interventions:
        return None
    fig = interventions_figure(result, fig_dir)
    names = _ranking_names(result)
    modes = list(dict.fromkeys(e.mode for e in result.interventions))

    def key(e: EffectRow):
        return modes.index(e.mode), e.k, names.index(e.ranking) if e.ranking in names else len(names), e.ranking

    rows = [(e.mode, e.k, e.ranking, e.n_examples, _with_ci(e.mean_ranked, *e.ci_ranked, fmt=_g),
             _with_ci(e.mean_random, *e.ci_random, fmt=_g), _range(e), _g(e.p_random),
             _with_ci(e.mean_difference, *e.ci_difference, fmt=_signed))
            for e in sorted(result.interventions, key=key)]
    measure = _measure(result)
    gloss = _MEASURES.get(measure)
    intro = (f"<p>Each ranking's top-k units are set inside the model's forward pass (zero: to 0; mean: to their "
             "dataset mean; translate: moved toward another class's mean) and the change of the model's own "
             f"<b>{esc(measure)}</b>" + (f" ({esc(gloss)})" if gloss else "")
             + " is measured, intervened minus clean, against random k-sets of the same layer. A ranking whose top "
             "units the model uses for the attribute moves it more than random units: the difference (paired over "
             "the examples, 95% interval) is away from 0. That interval holds the examples' variation only: "
             "the spread over random unit sets is the range of the random sets' means, and a ranked effect inside "
             "that range is not distinguishable from random units; &quot;p over sets&quot; is the share of random "
             "sets at least as far from their mean as the ranked set (floor 1 / (1 + sets)).</p>")
    tbl = table(("mode", "k", "ranking", "examples", "mean ranked [95% CI]", "mean random [95% CI]",
                 "random sets' means (min..max)", "p over sets", "difference [95% CI]"), rows, {1, 3, 4, 5, 6, 7, 8})
    return Section("Used information", figures=(fig,), body=intro + tbl)


def _agreement(result: RankResult, fig_dir: Path) -> Section:
    if not result.agreement:
        return Section("Agreement", body='<p class="muted">No agreement: the result has fewer than two rankings.</p>')
    fig = agreement_figure(result, fig_dir)
    names = _ranking_names(result)

    def key(r):
        return r.k, names.index(r.a) if r.a in names else len(names), names.index(r.b) if r.b in names else len(names)

    rows = [(r.a, r.b, r.k, f"{r.overlap:.3f}", f"{r.jaccard:.3f}", f"{r.chance:.3g}")
            for r in sorted(result.agreement, key=key)]
    intro = ("<p>How many of their top-k units two rankings share: overlap = |A ∩ B| / k, Jaccard = |A ∩ B| / "
             f"|A ∪ B|; chance = k / units ({_count(result.units)} units), the expected overlap of two random top-k "
             "sets.</p>")
    return Section("Agreement", figures=(fig,) if fig else (),
                   body=intro + table(("a", "b", "k", "overlap", "jaccard", "chance"), rows, {2, 3, 4, 5}))


def _rankings(result: RankResult, top: int) -> Section:
    parts = [f"<p>Per method its top {top} units (of {_count(result.units)}), best first, with their scores (higher = "
             "better); the full orders are in the result.</p>"]
    for r in result.rankings:
        units = list(r.order[:top])
        rows = [(i + 1, u, _g(r.scores[u], 4) if 0 <= u < len(r.scores) else "—") for i, u in enumerate(units)]
        params = table(("parameter", "value"), [(k, _param_value(v)) for k, v in r.params.items()]) if r.params \
            else '<p class="muted">no parameters</p>'
        parts.append(f'<h3 id="ranking-{esc(r.method)}">{esc(r.method)}</h3>'
                     f'<div class="rk">{table(("rank", "unit", "score"), rows, {0, 1, 2})}{params}</div>')
    if not result.rankings:
        parts.append('<p class="muted">No rankings in this result.</p>')
    return Section("Rankings", body="".join(parts))


def _provenance(result: RankResult, root: Path) -> Section:
    prov = provenance_list(result.provenance, "none (the examples came with the job)")
    files = tuple(f for f in _RESULT_FILES if (root / f).is_file())
    return Section("Provenance", body=prov, files=files)


# --------------------------------------------------------------------------- page


def write_rank_page(out_dir: Path, result: RankResult, *, top_units: int = TOP_UNITS) -> Path:
    """Write ``out_dir/rankings.html`` and its figures into ``out_dir/report/``; returns the page's path."""
    root = Path(out_dir)
    fig_dir = root / REPORT_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    sections = [_summary(result), _encoded(result, fig_dir)]
    used = _used(result, fig_dir)
    if used is not None:
        sections.append(used)
    sections += [_agreement(result, fig_dir), _rankings(result, max(1, int(top_units)))]
    p = result.provenance
    rev = p.requested_revision or p.revision
    title = f"neuroscribe rank — {p.model}" + (f" @ {rev}" if rev else "") + f" on {result.dataset}"
    intro = (f"<p>Neuron rankings (Antverg &amp; Belinkov 2022): the {_count(result.units)} units of layer "
             f"{esc(result.layer)} (site <code>{esc(p.site)}</code>) ranked for a {esc(result.level)}-level attribute "
             f"of <code>{esc(result.dataset)}</code> ({_count(result.n_examples)} examples, "
             f"{len(result.classes)} classes) by {esc(', '.join(r.method for r in result.rankings))}; "
             f"judged at k = {esc(', '.join(str(k) for k in result.ks))}.</p>")
    body = _warnings(result) + "".join(_section(s, root) for s in sections) + _section(_provenance(result, root), root)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}{_RANK_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>{intro}{body}"
        f'<p class="muted">Written by neuroscribe {esc(p.neuroscribe_version)}.</p>'
        "</body></html>\n"
    )
    out = root / RANKINGS_HTML
    write_text(out, page)
    return out
