"""Which units a ranking's top-k and bottom-k are, and how stable a ranking is (docs/methods.md#c1).

**Bottom-k, one definition for every method**: the k units the ranking considers least relevant,
i.e. with the lowest relevance (``Ranking.least_relevant_by``: the scores; for the greedy gaussian
ranking, each unit's objective alone, because the order after the selected units only says what a
unit adds *given* them, which calls units that repeat the selected ones irrelevant). Units tied at
the boundary (e.g. the hundreds of units an elastic net leaves at weight 0) are drawn at random
with the job's seed, and the number of tied units is reported (``Bottom``). The ranking's own order
is not reversed: it breaks ties by unit index, which made linear bottom-k the highest-indexed
zero-weight units.

**Stability** (``stability``): a ranking computed again (``rank`` with the same options) with
another seed on the same examples, and on two disjoint stratified halves of the ranking examples
(one seed each);
reported as the top-k overlap ``|A & B| / k`` beside chance ``k / units``. A method with no
randomness gives 1 across seeds; the halves show how much its top units depend on the examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Bottom", "bottom_k", "bottom_sets", "top_overlap", "stability", "half_split", "SEEDED"]

SEEDED = ("linear", "random")  # the methods whose ranking depends on the seed (saga's order; the permutation)


@dataclass(frozen=True)
class Bottom:
    """The bottom-k units (least relevant first), the boundary relevance and its ties."""

    units: np.ndarray
    boundary: float
    tied: int  # units whose relevance equals the boundary
    tied_in_bottom: int  # of those, drawn into the bottom-k


def bottom_k(relevance, k: int, seed: int | Sequence[int]) -> Bottom:
    """The ``k`` units with the lowest ``relevance``; ties broken by a permutation drawn from ``seed``."""
    rel = np.asarray(relevance, dtype=np.float64)
    k = int(k)
    if not 1 <= k <= rel.size:
        raise ValueError(f"k = {k} is outside 1..{rel.size}")
    perm = np.random.default_rng(seed).permutation(rel.size)
    order = perm[np.argsort(rel[perm], kind="stable")]  # ascending; equal values in the permutation's order
    units = order[:k]
    boundary = float(rel[units[-1]])
    tied = int(np.count_nonzero(rel == boundary))
    return Bottom(units.astype(np.int64), boundary, tied, int(np.count_nonzero(rel[units] == boundary)))


def bottom_sets(rankings: Mapping, ks: Sequence[int], seed: int) -> dict[str, dict[int, Bottom]]:
    """Per ranking (a ``rankings.Ranking``) and k, its ``Bottom``; the tie-break is seeded by (seed, k)."""
    return {name: {int(k): bottom_k(r.least_relevant_by, int(k), [int(seed), 17, int(k)]) for k in ks}
            for name, r in rankings.items()}


def top_overlap(a, b, k: int) -> float:
    """``|top-k(a) & top-k(b)| / k`` of two orders (best first)."""
    return len(set(np.asarray(a[:k]).tolist()) & set(np.asarray(b[:k]).tolist())) / k


def half_split(y, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of the rows, stratified by label, seeded."""
    y = np.asarray(y)
    rng = np.random.default_rng([int(seed), 23])
    first, second = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        first.append(rows[: len(rows) // 2])
        second.append(rows[len(rows) // 2:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def stability(X, y, rankings: Mapping, ks: Sequence[int], *, seed: int, rank_fn, min_per_class: int) -> list[dict]:
    """Rows ``{ranking, k, kind, overlap, chance}``: ``seed`` (``rank_fn(X, y, methods, seed + 1)`` against the
    rankings given), ``halves`` (``rank_fn`` on each half of the rows, seeds seed and seed + 1, so the
    random ranking gives chance there rather than itself; skipped when a class
    has fewer than ``2 * min_per_class`` rows). ``rank_fn(X, y, methods, seed) -> {method: Ranking}``."""
    X, y = np.asarray(X), np.asarray(y)
    n_units = X.shape[1]
    methods = list(rankings)
    random_methods = [m for m in methods if m in SEEDED]
    again = rank_fn(X, y, random_methods, seed + 1) if random_methods else {}
    rows = []
    for m in methods:
        other = again.get(m, rankings[m])  # no randomness: the same ranking
        rows += [dict(ranking=m, k=int(k), kind="seed", overlap=top_overlap(rankings[m].order, other.order, k),
                      chance=k / n_units) for k in ks]
    _, counts = np.unique(y, return_counts=True)
    if counts.min() >= 2 * min_per_class:
        a, b = half_split(y, seed)
        ra, rb = rank_fn(X[a], y[a], methods, seed), rank_fn(X[b], y[b], methods, seed + 1)
        rows += [dict(ranking=m, k=int(k), kind="halves", overlap=top_overlap(ra[m].order, rb[m].order, k),
                      chance=k / n_units) for m in methods for k in ks]
    return rows
