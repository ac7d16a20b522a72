"""What the rank page and its figures read from a ``RankResult``: the rankings in order, the probing
rows by (ranking, selection, k), the random-k and majority rows, the k probed, the intervention
measure and the range of the random sets' effects.
"""

from __future__ import annotations

from neuroscribe.jobs import RankResult
from neuroscribe.jobs.rank import EffectRow, ProbeRow

__all__ = ["MEASURES", "draw_range", "majority_row", "measure_of", "n_seeds", "probe_index", "probe_name",
           "probed_ks", "random_rows", "ranking_names"]

MEASURES = {
    "logodds": "log-odds of the label's continuation against the other labels'",
    "logprob": "log-probability of the label-bearing text",
    "accuracy": "accuracy of the model's own prediction of the label",
}


def measure_of(result: RankResult) -> str:
    if result.intervention_measure:
        return result.intervention_measure
    return result.interventions[0].measure if result.interventions else ""


def ranking_names(result: RankResult) -> list[str]:
    """The rankings in the result's order, then any other named in the probing rows."""
    names = [r.method for r in result.rankings]
    for row in result.probing:
        if row.ranking and row.ranking not in names:
            names.append(row.ranking)
    return names


def probe_index(result: RankResult) -> dict[tuple[str, str, int], ProbeRow]:
    return {(r.ranking, r.selection, r.k): r for r in result.probing}


def random_rows(result: RankResult) -> list[ProbeRow]:
    """Random-k does not depend on the ranking: the rows of the first ranking that has them."""
    for name in ranking_names(result) + [""]:
        rows = sorted((r for r in result.probing if r.selection == "random" and r.ranking == name), key=lambda r: r.k)
        if rows:
            return rows
    return []


def majority_row(result: RankResult) -> ProbeRow | None:
    return next((r for r in result.probing if r.selection == "majority"), None)


def probe_name(result: RankResult) -> str | None:
    return next((r.probe for r in result.probing if r.selection == "top"), None)


def n_seeds(result: RankResult) -> int | None:
    return next((r.n_seeds for r in result.probing if r.selection == "top"), None)


def probed_ks(result: RankResult) -> list[int]:
    ks = sorted({r.k for r in result.probing if r.selection != "majority"})
    return ks or sorted(set(result.ks))


def draw_range(e: EffectRow) -> tuple:
    draws = [d for d in e.random_draws if d is not None]
    return (min(draws), max(draws)) if draws else (None, None)
