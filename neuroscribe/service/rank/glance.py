"""The rank page's results at a glance (``report.glance``): each key number beside its baseline.

* per ranking, the separate probe's accuracy on its top-k units against random k units (and the
  majority class), at every k probed (their 95% intervals over the splits);
* per ranking, how often intervening on its top-k moves the model's measure outside the range of
  the random k-sets' effects (or, without their draws, how often ranked − random excludes 0);
* the agreement of the rankings' top-k sets against the chance overlap k / units;
* the stability of each ranking across halves against chance.
"""

from __future__ import annotations

from neuroscribe.jobs import RankResult
from neuroscribe.service.rank.result_view import (
    draw_range,
    majority_row,
    measure_of,
    probe_index,
    probe_name,
    probed_ks,
    random_rows,
    ranking_names,
)
from neuroscribe.service.report.glance import GlanceRow, interval_verdict, point_verdict

__all__ = ["rank_glance"]


def _acc(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _probing(result: RankResult) -> list[GlanceRow]:
    idx = probe_index(result)
    rnd = {r.k: r for r in random_rows(result)}
    ks = probed_ks(result)
    maj = majority_row(result)
    probe = probe_name(result) or "separate"
    majority = "" if maj is None or maj.accuracy is None else f"; majority class {_acc(maj.accuracy)}"
    rows = []
    for name in ranking_names(result):
        pts = [(k, idx.get((name, "top", k)), idx.get((name, "random", k)) or rnd.get(k)) for k in ks]
        pts = [(k, t, r) for k, t, r in pts if t is not None and t.accuracy is not None]
        if not pts:
            continue
        value = "; ".join(f"k={k}: {_acc(t.accuracy)}" for k, t, _ in pts)
        base = "; ".join(f"k={k}: {_acc(r.accuracy) if r is not None else '—'}" for k, _, r in pts)
        verdicts = []
        for k, t, r in pts:
            v = "no random-k" if r is None or r.accuracy is None else interval_verdict(
                (t.ci_low, t.ci_high), (r.ci_low, r.ci_high))
            verdicts.append(f"k={k}: {v}")
        rows.append(GlanceRow(f"{name}: {probe} probe on its top-k units", value, f"random k units: {base}{majority}",
                              "; ".join(verdicts), "encoded"))
    return rows


def _apart(e) -> bool | None:
    """Whether an effect's top-k stands apart from random k-sets: outside the range of the random
    sets' means when the result has them, else when the interval of ranked − random excludes 0."""
    if e.mean_ranked is None:
        return None
    lo, hi = draw_range(e)
    if lo is not None:
        return not lo <= e.mean_ranked <= hi
    dlo, dhi = e.ci_difference
    return None if dlo is None or dhi is None else not dlo <= 0 <= dhi


def _interventions(result: RankResult) -> list[GlanceRow]:
    """One row: per ranking, in how many (mode, k) its top-k effect stands apart from random k-sets."""
    if not result.interventions:
        return []
    counts = []
    for name in ranking_names(result):
        judged = [a for a in (_apart(e) for e in result.interventions if e.ranking == name) if a is not None]
        if judged:
            counts.append((name, sum(judged), len(judged)))
    if not counts:
        return []
    n_sets = max(len(e.random_draws) for e in result.interventions)
    value = "; ".join(f"{name} {out} of {n}" for name, out, n in counts)
    total, of = sum(c[1] for c in counts), sum(c[2] for c in counts)
    base = (f"{n_sets} random k-sets per k: an effect inside the range of their means is not told apart from "
            "random units" if n_sets else "random k-sets: the 95% interval of ranked − random over the examples")
    cells = "(ranking, mode, positions, k)" if len({e.positions for e in result.interventions}) > 1 \
        else "(ranking, mode, k)"
    verdict = ("not told apart from random k-sets" if not total else
               f"apart from random k-sets in {total} of {of} {cells}")
    return [GlanceRow(f"Δ {measure_of(result)} intervening on each ranking's top-k: {cells[1:-1].split(', ', 1)[1]} "
                      "apart from random", value, base, verdict, "used")]


def _agreement(result: RankResult) -> list[GlanceRow]:
    if not result.agreement:
        return []
    k = max(r.k for r in result.agreement)
    pairs = [r for r in result.agreement if r.k == k]
    mean = sum(r.overlap for r in pairs) / len(pairs)
    top = max(pairs, key=lambda r: r.overlap)
    chance = pairs[0].chance
    words = ("above chance", "below chance", "")
    return [GlanceRow(f"agreement of the top-{k} sets", f"mean overlap {mean:.3f} over {len(pairs)} pairs (most: "
                      f"{top.a} / {top.b} {top.overlap:.2f})", f"two random top-{k} sets: k / units = {chance:.3g}",
                      point_verdict(mean, chance, words), "agreement")]


def _stability(result: RankResult) -> list[GlanceRow]:
    halves = [s for s in result.stability if s.kind == "halves"]
    if not halves:
        return []
    k = max(s.k for s in halves)
    at = [s for s in halves if s.k == k]
    value = "; ".join(f"{s.ranking} {s.overlap:.2f}" for s in at)
    above = sum(1 for s in at if s.overlap > s.chance)
    below = [s.ranking for s in at if s.overlap < s.chance]
    verdict = f"above chance for {above} of {len(at)} rankings" + (f"; below chance: {', '.join(below)}" if below else "")
    return [GlanceRow(f"stability across halves: top-{k} overlap", value, f"chance k / units = {at[0].chance:.3g}",
                      verdict + " (no interval)", "encoded")]


def rank_glance(result: RankResult) -> list[GlanceRow]:
    """The rows of the rank page's glance box."""
    return _probing(result) + _interventions(result) + _agreement(result) + _stability(result)
