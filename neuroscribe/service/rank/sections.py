"""The sections of a rank result's page (docs/methods.md#c, Antverg & Belinkov 2022), top to
bottom: summary, encoded information, used information (only when the result has interventions),
agreement, the rankings (per method its top ``TOP_UNITS`` units and params), provenance.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from neuroscribe.jobs import RankResult
from neuroscribe.jobs.rank import BOTTOM_K, EffectRow, ProbeRow
from neuroscribe.service.rank.figures import agreement_figure, interventions_figure, probing_figure
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
from neuroscribe.service.report.atlas_links import ATLAS_NOTE, atlas_link, provenance_key
from neuroscribe.service.report.html import Section, esc, provenance_section, table

__all__ = ["summary_section", "encoded_section", "used_section", "agreement_section", "rankings_section",
           "rank_provenance", "RANK_CSS", "TOP_UNITS"]

TOP_UNITS = 20
_PARAM_ITEMS = 8  # items of a list-valued ranking parameter shown on the page
_RESULT_FILES = ("rankings.json", "rankings.csv", "probing.csv", "bottom.csv", "stability.csv", "same_probe.csv",
                 "interventions.csv", "agreement.csv", "split.json", "responses.npy", "summary.txt", "job.json")

RANK_CSS = """
h3{font-size:1.05em;margin-top:1.5em} .rk{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
"""


# --------------------------------------------------------------------------- formatting


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


# --------------------------------------------------------------------------- sections


def summary_section(result: RankResult) -> Section:
    p = result.provenance
    names = result.label_names or {}
    classes = ", ".join(f"{names[k] + ' (' + k + ')' if k in names else k}: {_count(v)}" for k, v in result.classes.items())
    maj = majority_row(result)
    probe, seeds = probe_name(result), n_seeds(result)
    if result.interventions:
        modes = ", ".join(dict.fromkeys(e.mode for e in result.interventions))
        n_ex = max(e.n_examples for e in result.interventions)
        interventions = f"{modes}; measure {measure_of(result)}; {_count(n_ex)} examples scored"
        if _edits_words(result):
            interventions += "; edited " + " and ".join(_WHERE[p] for p in _positions(result))
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
    return Section("Summary", body=table(("", "value"), rows), anchor="summary")


def encoded_section(result: RankResult, fig_dir: Path) -> Section:
    fig = probing_figure(result, fig_dir)
    if fig is None:
        return Section("Encoded information", body='<p class="muted">No probing in this result.</p>', anchor="encoded")
    idx = probe_index(result)
    same = {(s.ranking, s.k): s for s in result.same_probe}
    rnd = {r.k: r for r in random_rows(result)}
    has_same = bool(result.same_probe)
    header = ["ranking", "k", "top-k [95% CI]", "bottom-k [95% CI]", "random-k [95% CI]"]
    if has_same:
        header += ["top-k, own probe", "gap (own − separate)"]
    rows = []
    for name in ranking_names(result):
        for k in probed_ks(result):
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
    probe = probe_name(result) or "separate"
    maj = majority_row(result)
    intro = (f"<p>Each ranking's top-k, bottom-k and k random units are given to a separate {esc(probe)} probe "
             "(not the probe that produced any ranking), trained and scored on the same held-out splits. A ranking "
             "that puts the attribute's units first has top-k well above random-k and bottom-k near or below it"
             + (f"; the majority class scores {esc(_acc(maj.accuracy))}" if maj is not None else "") + ".</p>")
    ties = [b for b in result.bottom if b.tied > 1]
    intro += (f"<p>{esc(BOTTOM_K[0].upper() + BOTTOM_K[1:])}." + (" Ties at the boundary: " + "; ".join(
        f"{esc(b.ranking)} bottom-{b.k}: {_count(b.tied)} units at {esc(_g(b.boundary))}, {b.tied_in_bottom} drawn"
        for b in ties) + "." if ties else "") + "</p>")
    if result.stability:
        stab = [(st.ranking, st.k, st.kind, f"{st.overlap:.2f}", f"{st.chance:.3g}") for st in result.stability]
        intro += ("<p>Stability: each ranking computed again with another seed (same examples; a method without "
                  "randomness gives 1) and on two disjoint halves of the ranking examples; the share of top-k units "
                  "the two have in common, against chance k / units.</p>"
                  + table(("ranking", "k", "recomputed", "top-k overlap", "chance"), stab, {1, 3, 4}))
    confound = ""
    if has_same:
        owners = ", ".join(dict.fromkeys(s.ranking for s in result.same_probe))
        confound = (f'<p class="note">The confound (Antverg &amp; Belinkov 2022): the ranking(s) {esc(owners)} come '
                    "from a probe of their own. Judged by that same probe, a top-k mixes the quality of the probe "
                    "with the quality of the ranking; the <i>own probe</i> column retrains it on the same splits, "
                    "and the gap is how much of the accuracy comes from the probe rather than from the units it "
                    "picked. Compare rankings by the separate probe's columns.</p>")
    numeric = set(range(1, len(header)))
    return Section("Encoded information", figures=(fig,), body=intro + table(header, rows, numeric) + confound,
                   anchor="encoded")


def _fields(row: ProbeRow | None) -> tuple:
    return (None, None, None) if row is None else (row.accuracy, row.ci_low, row.ci_high)


def _range(e: EffectRow) -> str:
    lo, hi = draw_range(e)
    return "—" if lo is None else f"{_g(lo)} .. {_g(hi)}"


_WHERE = {"all": "at every position", "attribute": "at the target word's tokens"}


def _positions(result: RankResult) -> list[str]:
    return list(dict.fromkeys(e.positions for e in result.interventions))


def _edits_words(result: RankResult) -> bool:
    """Whether some effects edited only the target word's tokens (then the rows say where they edited)."""
    return any(e.positions != "all" for e in result.interventions)


def _used_figures(result: RankResult, fig_dir: Path) -> tuple:
    """The interventions figure, one per positions edited (``interventions``, ``interventions_attribute``)."""
    every = _positions(result)
    if not _edits_words(result):
        return (interventions_figure(result, fig_dir),)
    figs = []
    for pos in every:
        part = result.model_copy(update={"interventions": tuple(e for e in result.interventions
                                                                if e.positions == pos)})
        fig = interventions_figure(part, fig_dir, "interventions" if pos == every[0] else f"interventions_{pos}")
        figs.append(replace(fig, title=f"Interventions {_WHERE[pos]}"))
    return tuple(figs)


def used_section(result: RankResult, fig_dir: Path) -> Section | None:
    if not result.interventions:
        return None
    figs = _used_figures(result, fig_dir)
    names = ranking_names(result)
    modes = list(dict.fromkeys(e.mode for e in result.interventions))
    where, every = _edits_words(result), _positions(result)

    def key(e: EffectRow):
        return (modes.index(e.mode), e.k, names.index(e.ranking) if e.ranking in names else len(names), e.ranking,
                every.index(e.positions))

    rows = [(e.mode, *((e.positions,) if where else ()), e.k, e.ranking, e.n_examples,
             _with_ci(e.mean_ranked, *e.ci_ranked, fmt=_g), _with_ci(e.mean_random, *e.ci_random, fmt=_g), _range(e),
             f"{_g(e.p_random)} (floor {_g(e.p_floor)})" if e.p_floor is not None else _g(e.p_random),
             _with_ci(e.mean_difference, *e.ci_difference, fmt=_signed))
            for e in sorted(result.interventions, key=key)]
    measure = measure_of(result)
    gloss = MEASURES.get(measure)
    intro = (f"<p>Each ranking's top-k units are set inside the model's forward pass (zero: to 0; mean: to their "
             "dataset mean; translate: moved toward another class's mean) and the change of the model's own "
             f"<b>{esc(measure)}</b>" + (f" ({esc(gloss)})" if gloss else "")
             + " is measured, intervened minus clean, against random k-sets of the same layer, drawn once per k and "
             "shared by every ranking (none holds a unit of any ranking's top-k). The difference ranked minus "
             "random comes with a 95% interval over the examples: it describes their spread and is not a test, "
             "since it holds the examples' variation only: "
             "the spread over random unit sets is the range of the random sets' means, and a ranked effect inside "
             "that range is not distinguishable from random units; &quot;p over sets&quot; is the share of random "
             "sets at least as far from their mean as the ranked set (floor 1 / (1 + sets)).</p>")
    if where:
        intro += ("<p>Positions: <b>all</b> edits the units at every token of the input; <b>attribute</b> only at "
                  "the tokens of each example's target word, the word bearing the attribute (as the paper does; "
                  "for a masked LM the one mask token standing for the word), the other tokens keeping their "
                  "values. Both are compared with the same random k-sets, edited at the same positions.</p>")
    header = ("mode", *(("positions",) if where else ()), "k", "ranking", "examples", "mean ranked [95% CI]",
              "mean random [95% CI]", "random sets' means (min..max)", "p over sets (floor)",
              "difference [95% interval over examples]")
    first = 2 if where else 1
    tbl = table(header, rows, {first, *range(first + 2, len(header))})
    return Section("Used information", figures=figs, body=intro + tbl, anchor="used")


def agreement_section(result: RankResult, fig_dir: Path) -> Section:
    if not result.agreement:
        return Section("Agreement", body='<p class="muted">No agreement: the result has fewer than two rankings.</p>',
                       anchor="agreement")
    fig = agreement_figure(result, fig_dir)
    names = ranking_names(result)

    def key(r):
        return r.k, names.index(r.a) if r.a in names else len(names), names.index(r.b) if r.b in names else len(names)

    rows = [(r.a, r.b, r.k, f"{r.overlap:.3f}", f"{r.jaccard:.3f}", f"{r.chance:.3g}")
            for r in sorted(result.agreement, key=key)]
    intro = ("<p>How many of their top-k units two rankings share: overlap = |A ∩ B| / k, Jaccard = |A ∩ B| / "
             f"|A ∪ B|; chance = k / units ({_count(result.units)} units), the expected overlap of two random top-k "
             "sets.</p>")
    return Section("Agreement", figures=(fig,) if fig else (), anchor="agreement",
                   body=intro + table(("a", "b", "k", "overlap", "jaccard", "chance"), rows, {2, 3, 4, 5}))


def _top_table(result: RankResult, r, top: int, key: str) -> str:
    """A ranking's top units, best first; each unit links to its atlas page."""
    body = "".join(
        f'<tr><td class="num">{i + 1}</td><td class="num">{atlas_link(key, result.layer, u, str(u))}</td>'
        f'<td class="num">{esc(_g(r.scores[u], 4) if 0 <= u < len(r.scores) else "—")}</td></tr>'
        for i, u in enumerate(r.order[:top]))
    return f"<table><thead><tr><th>rank</th><th>unit</th><th>score</th></tr></thead><tbody>{body}</tbody></table>"


def rankings_section(result: RankResult, top: int) -> Section:
    parts = [f"<p>Per method its top {top} units (of {_count(result.units)}, layer {esc(result.layer)}), best first, "
             "with their scores (higher = better); the full orders are in the result.</p>", ATLAS_NOTE]
    key = provenance_key(result.provenance)
    for r in result.rankings:
        params = table(("parameter", "value"), [(k, _param_value(v)) for k, v in r.params.items()]) if r.params \
            else '<p class="muted">no parameters</p>'
        parts.append(f'<h3 id="ranking-{esc(r.method)}">{esc(r.method)}</h3>'
                     f'<div class="rk">{_top_table(result, r, top, key)}{params}</div>')
    if not result.rankings:
        parts.append('<p class="muted">No rankings in this result.</p>')
    return Section("Rankings", body="".join(parts), anchor="rankings")


def rank_provenance(result: RankResult, root: Path) -> Section:
    return provenance_section(result.provenance, "none (the examples came with the job)", root, _RESULT_FILES)
