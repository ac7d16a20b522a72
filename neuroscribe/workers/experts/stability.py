"""Stability of expert sets (docs/methods.md#a3): pure statistics over numpy arrays.

Experts of a concept are the units (columns of ``responses`` (n, U)) whose AP on some rows is
``>= tau``. Stability is the mean pairwise Jaccard of the expert sets found on K disjoint
stratified folds (``stability``) or on repeated subsamples of n+ positives and n- negatives
(``stability_sweep``, over a grid of (n+, n-, tau)). Units are column indices: a caller with
several layers concatenates their columns and maps indices back.

Conventions:
* ``jaccard(set(), set())`` is NaN (undefined, not 0 or 1): means skip such pairs, and every
  result counts them beside the mean (``n_pairs`` defined pairs, ``n_empty`` empty sets);
  a mean over no defined pair is NaN. Means use ``math.fsum`` (exact, order-free).
* Cost: the AP of every unit on a fold/subsample does not depend on tau, so it is computed once
  (one sort per unit per subsample, ``workers.experts.average_precision``) and the whole tau
  grid is read off it: for a pair of AP vectors a, b, ``|E_a & E_b| = #(min(a, b) >= tau)`` and
  ``|E_a | E_b| = #(max(a, b) >= tau)``, counted for all taus with one sort and a searchsorted.
* Subsamples are nested: repeat r draws one permutation of the positives and one of the
  negatives (independent of the sizes) and takes their first n+ and n-. So the grid points of one
  repeat share rows (common random numbers): differences across (n+, n-) are not sampling noise
  between unrelated draws, and the same seed gives the same rows whatever the grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.experts.ap import average_precision

__all__ = ["jaccard", "mean_pairwise_jaccard", "kfold_splits", "subsample_splits", "expert_sets",
           "StabilityResult", "stability", "SweepRow", "stability_sweep", "best_per_tau"]


# --------------------------------------------------------------------------- sets


def jaccard(a, b) -> float:
    """``|a & b| / |a | b|``; NaN when both sets are empty (undefined: callers count such pairs)."""
    a, b = set(a), set(b)
    union = len(a | b)
    return len(a & b) / union if union else math.nan


def _mean_defined(values) -> tuple[float, int]:
    """(exact mean of the non-NaN values, their number); (NaN, 0) when there is none."""
    ok = [float(v) for v in values if not math.isnan(v)]
    return (math.fsum(ok) / len(ok) if ok else math.nan), len(ok)


def mean_pairwise_jaccard(sets: Sequence) -> float:
    """Mean Jaccard over all pairs of ``sets`` (at least 2), skipping pairs of two empty sets."""
    if len(sets) < 2:
        raise InvalidInput("sets", f"need at least 2 sets for a pairwise Jaccard, got {len(sets)}")
    return _mean_defined(jaccard(a, b) for a, b in combinations(sets, 2))[0]


# --------------------------------------------------------------------------- inputs and splits


def _labels(labels, n: int | None = None) -> np.ndarray:
    y = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if y.ndim != 1 or (n is not None and y.shape[0] != n):
        raise InvalidInput("labels", f"must have shape ({'n' if n is None else n},), got {y.shape}")
    if y.dtype != bool:
        if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
            raise InvalidInput("labels", "must be bool or 0/1")
        y = y.astype(bool)
    return y


def _responses(responses, labels) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(responses, "detach"):  # torch; bfloat16/float16 widen exactly to float32
        t = responses.detach().cpu()
        responses = (t.float() if t.is_floating_point() and t.element_size() < 4 else t).numpy()
    x = np.asarray(responses)
    if x.ndim != 2 or x.dtype.kind not in "biuf":
        raise InvalidInput("responses", f"must be a numeric (sentences, units) matrix, got {x.dtype} {x.shape}")
    if x.dtype.kind == "f" and np.isnan(x).any():
        raise InvalidInput("responses", f"contains NaN (unit {int(np.flatnonzero(np.isnan(x).any(axis=0))[0])})")
    return x, _labels(labels, x.shape[0])


def _tau(tau, field: str = "tau") -> float:
    try:
        tau = float(tau)
    except (TypeError, ValueError):
        raise InvalidInput(field, f"must be a number in (0, 1], got {tau!r}") from None
    if not 0.0 < tau <= 1.0:  # also rejects NaN
        raise InvalidInput(field, f"must be in (0, 1], got {tau}")
    return tau


def _count(value, field: str, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise InvalidInput(field, f"must be an integer in [{lo}, {hi}] ({what}), got {value!r}")
    return int(value)


def kfold_splits(labels, k: int = 3, *, seed: int) -> list[np.ndarray]:
    """``k`` disjoint folds (sorted row indices) covering every row; positives and negatives are
    each shuffled and split into k near-equal parts (sizes differ by at most one), so every fold
    holds about 1/k of each class."""
    y = _labels(labels)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    k = _count(k, "k", 2, min(pos.size, neg.size), "each fold needs a positive and a negative")
    rng = np.random.default_rng(seed)
    p = np.array_split(rng.permutation(pos), k)
    q = np.array_split(rng.permutation(neg), k)[::-1]  # larger negative parts go with smaller positive ones
    return [np.sort(np.concatenate([p[i], q[i]])) for i in range(k)]


def _perms(y: np.ndarray, repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    return [(rng.permutation(pos), rng.permutation(neg)) for _ in range(repeats)]


def _size(y: np.ndarray, value, field: str) -> int:
    """``n_pos`` / ``n_neg`` checked against the positives / negatives available."""
    pos = field == "n_pos"
    return _count(value, field, 1, int(np.count_nonzero(y == pos)), f"{'positives' if pos else 'negatives'} available")


def subsample_splits(labels, n_pos: int, n_neg: int, repeats: int, *, seed: int) -> list[np.ndarray]:
    """``repeats`` subsamples (sorted row indices) of exactly ``n_pos`` positives and ``n_neg``
    negatives, without replacement within a subsample. Nested: with the same seed, subsample r of
    smaller sizes is contained in subsample r of larger ones."""
    y = _labels(labels)
    n_pos, n_neg = _size(y, n_pos, "n_pos"), _size(y, n_neg, "n_neg")
    repeats = _count(repeats, "repeats", 1, 1 << 20, "subsamples drawn")
    return [np.sort(np.concatenate([p[:n_pos], q[:n_neg]])) for p, q in _perms(y, repeats, seed)]


# --------------------------------------------------------------------------- experts per split


def _ap_rows(x: np.ndarray, y: np.ndarray, splits, threads: int | None) -> np.ndarray:
    """(len(splits), U) AP of every unit on each split's rows: one sort per unit per split."""
    out = np.empty((len(splits), x.shape[1]))
    for s, rows in enumerate(splits):
        rows = np.asarray(rows)
        if rows.ndim != 1 or rows.dtype.kind not in "iu" or rows.size and not (0 <= rows.min() and rows.max() < len(y)):
            raise InvalidInput(f"splits[{s}]", f"must be a 1-D array of row indices in [0, {len(y)})")
        try:
            out[s] = average_precision(x[rows], y[rows], threads=threads)
        except InvalidInput as err:  # e.g. a split with no positive
            raise InvalidInput(f"splits[{s}]", err.message) from None
    return out


def expert_sets(responses, labels, splits, tau: float, *, threads: int | None = None) -> list[frozenset[int]]:
    """Experts (units with AP >= tau on the split's rows) found on each split."""
    tau = _tau(tau)
    x, y = _responses(responses, labels)
    return [frozenset(np.flatnonzero(ap >= tau).tolist()) for ap in _ap_rows(x, y, splits, threads)]


def _grid_counts(ap: np.ndarray, taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For S AP vectors (S, U) and T taus: the number of experts per split (S, T) and the Jaccard of
    every pair of splits, in ``combinations`` order (pairs, T; NaN for two empty sets). No sets built:
    ``|E_i & E_j| = #(min(a_i, a_j) >= tau)``, ``|E_i | E_j| = #(max(a_i, a_j) >= tau)``, all taus at once."""

    def at_least(v: np.ndarray) -> np.ndarray:  # #(v >= tau) for each tau: one sort, one searchsorted
        return v.size - np.searchsorted(np.sort(v), taus, side="left")

    pairs = list(combinations(range(len(ap)), 2))
    inter = np.array([at_least(np.minimum(ap[i], ap[j])) for i, j in pairs])
    union = np.array([at_least(np.maximum(ap[i], ap[j])) for i, j in pairs])
    jac = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return np.array([at_least(a) for a in ap]), jac


# --------------------------------------------------------------------------- K-fold stability


@dataclass(frozen=True)
class StabilityResult:
    """K-fold stability at one tau. ``pairwise`` lists the fold pairs (0,1), (0,2), ..., (1,2), ...;
    ``jaccard`` is their mean over the ``n_pairs`` defined pairs (NaN when none is)."""

    tau: float
    k: int
    jaccard: float
    n_pairs: int
    pairwise: tuple[float, ...]
    n_experts: tuple[int, ...]  # per fold
    n_empty: int  # folds with no expert
    experts: tuple[frozenset[int], ...]  # per fold


def stability(responses, labels, *, tau: float = 0.9, k: int = 3, seed: int = 0,
              threads: int | None = None) -> StabilityResult:
    """Experts on each of ``k`` stratified folds (``kfold_splits``) and their mean pairwise Jaccard."""
    tau = _tau(tau)
    x, y = _responses(responses, labels)
    ap = _ap_rows(x, y, kfold_splits(y, k, seed=seed), threads)
    sets = tuple(frozenset(np.flatnonzero(a >= tau).tolist()) for a in ap)
    pairwise = tuple(jaccard(a, b) for a, b in combinations(sets, 2))
    mean, n_pairs = _mean_defined(pairwise)
    counts = tuple(len(s) for s in sets)
    return StabilityResult(tau=tau, k=len(sets), jaccard=mean, n_pairs=n_pairs, pairwise=pairwise,
                           n_experts=counts, n_empty=counts.count(0), experts=sets)


# --------------------------------------------------------------------------- the (n+, n-, tau) sweep


@dataclass(frozen=True)
class SweepRow:
    """One grid point: ``repeats`` subsamples of ``n_pos`` positives and ``n_neg`` negatives, experts
    at ``tau``. ``jaccard``: mean over the ``n_pairs`` defined pairs; ``n_experts_std`` has ddof=0.
    ``base_rate`` = n+/(n+ + n-) is the AP of an uninformative unit: at tau <= base_rate chance
    units count as experts. ``n_distinct``: distinct subsamples among the repeats (1 when n+ and n-
    are all the data: the repeats coincide and the overlap is 1 by construction)."""

    n_pos: int
    n_neg: int
    tau: float
    repeats: int
    jaccard: float
    n_pairs: int
    n_experts_mean: float
    n_experts_std: float
    n_empty: int  # subsamples with no expert
    base_rate: float
    n_distinct: int

    def as_dict(self) -> dict:
        return asdict(self)


def _row(n_pos: int, n_neg: int, tau: float, counts: np.ndarray, pair_jac, n_distinct: int) -> SweepRow:
    mean, n_pairs = _mean_defined(pair_jac)
    counts = np.asarray(counts, np.int64)
    return SweepRow(n_pos=n_pos, n_neg=n_neg, tau=tau, repeats=counts.size, jaccard=mean, n_pairs=n_pairs,
                    n_experts_mean=math.fsum(counts.tolist()) / counts.size, n_experts_std=float(np.std(counts)),
                    n_empty=int(np.count_nonzero(counts == 0)), base_rate=n_pos / (n_pos + n_neg),
                    n_distinct=n_distinct)


def _grid(values, field: str, check) -> list:
    values = [values] if np.isscalar(values) else list(values)
    if not values:
        raise InvalidInput(field, "must not be empty")
    return sorted({check(v) for v in values})


def stability_sweep(responses, labels, *, n_pos: Sequence[int], n_neg: Sequence[int], taus: Sequence[float],
                    repeats: int = 3, seed: int = 0, threads: int | None = None) -> list[SweepRow]:
    """Rows for every (n+, n-, tau) of the grid (each list sorted, duplicates dropped; order n+, n-,
    tau). For each (n+, n-) the ``repeats`` nested subsamples of ``subsample_splits(..., seed=seed)``
    are drawn, the AP of every unit is computed once on each and reused for every tau."""
    x, y = _responses(responses, labels)
    taus = np.array(_grid(taus, "taus", lambda t: _tau(t, "taus")))
    sizes_pos = _grid(n_pos, "n_pos", lambda v: _size(y, v, "n_pos"))
    sizes_neg = _grid(n_neg, "n_neg", lambda v: _size(y, v, "n_neg"))
    repeats = _count(repeats, "repeats", 2, 1 << 20, "at least 2 subsamples for a pairwise Jaccard")
    perms = _perms(y, repeats, seed)
    rows = []
    for a in sizes_pos:
        for b in sizes_neg:
            splits = [np.sort(np.concatenate([p[:a], q[:b]])) for p, q in perms]
            count, jac = _grid_counts(_ap_rows(x, y, splits, threads), taus)
            distinct = len({s.tobytes() for s in splits})
            rows += [_row(a, b, float(t), count[:, i], jac[:, i], distinct) for i, t in enumerate(taus)]
    return rows


def best_per_tau(rows: Sequence[SweepRow], *, above_chance: bool = True) -> dict[float, SweepRow | None]:
    """For each tau, the row with the highest mean Jaccard, its expert count beside it (``n_experts_mean``).
    Ties: more experts, then fewer sentences (n+ + n-), then the earlier row. Skipped: rows with NaN
    overlap (no expert in any subsample), rows whose repeats all coincide (``n_distinct == 1``), and,
    with ``above_chance``, rows with tau <= base_rate (every unit may be an "expert" there). A tau
    left with no row maps to None rather than being dropped."""
    best: dict[float, SweepRow | None] = {}
    for row in rows:
        best.setdefault(row.tau, None)
        if math.isnan(row.jaccard) or row.n_distinct < 2 or (above_chance and row.tau <= row.base_rate):
            continue
        cur = best[row.tau]
        key = (row.jaccard, row.n_experts_mean, -(row.n_pos + row.n_neg))
        if cur is None or key > (cur.jaccard, cur.n_experts_mean, -(cur.n_pos + cur.n_neg)):
            best[row.tau] = row
    return best
