"""Concept overlap (docs/methods.md#a4): Jaccard of expert sets, and a category test.

``jaccard_matrix`` gives ``J[i, j] = |S_i & S_j| / |S_i | S_j|`` for every pair of concepts. Two
empty sets have no defined overlap: their entry is ``nan`` -- on the diagonal too, so a concept
without experts shows ``nan`` at ``J[i, i]`` (every other diagonal entry is 1).

``category_overlap`` asks whether concepts of one category (cat, dog) share more experts than
concepts of different categories (cat, bus): the mean Jaccard over within-category pairs minus the
mean over between-category pairs (upper triangle, no diagonal), with a one-sided permutation test
that shuffles the category labels among the concepts that have one:
``p = (1 + #{permutations with difference >= observed}) / (1 + n_permutations)``.
Pairs whose Jaccard is ``nan`` (both sets empty) are left out of every mean, observed and permuted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from neuroscribe.errors import InvalidInput

__all__ = ["jaccard_matrix", "category_overlap", "CategoryOverlap", "permutation_p_value"]

_CHUNK_CELLS = 1 << 22  # permutations x pairs handled at once (bool mask of 4 MiB)


def jaccard_matrix(sets: Mapping[str, Collection]) -> tuple[list[str], np.ndarray]:
    """Names (in the mapping's order) and the symmetric (C, C) float64 Jaccard matrix.

    Elements must be hashable, e.g. ``(layer, unit)`` tuples. Entries of two empty sets are ``nan``.
    """
    names = list(sets)
    members = [set(sets[n]) for n in names]
    index: dict = {}
    for s in members:
        for e in s:
            index.setdefault(e, len(index))
    ind = np.zeros((len(names), len(index)), dtype=np.float64)
    for i, s in enumerate(members):
        ind[i, [index[e] for e in s]] = 1.0
    inter = ind @ ind.T  # exact: counts are small integers
    sizes = ind.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        mat = np.where(union > 0, inter / np.where(union > 0, union, 1.0), np.nan)
    return names, mat


def permutation_p_value(observed: float, permuted: np.ndarray) -> float:
    """One-sided p-value ``(1 + #(permuted >= observed)) / (1 + len(permuted))``.

    A small tolerance absorbs float round-off so that a permutation equal to the observed
    labelling counts as ``>=``; ``nan`` statistics never count.
    """
    permuted = np.asarray(permuted, dtype=np.float64)
    tol = 1e-12 * max(1.0, abs(observed))
    hits = int(np.count_nonzero(permuted >= observed - tol))
    return (1 + hits) / (1 + permuted.size)


@dataclass(frozen=True)
class CategoryOverlap:
    """Within- vs between-category mean Jaccard, with a permutation p-value."""

    within_mean: float
    between_mean: float
    difference: float  # within_mean - between_mean
    p_value: float  # one-sided: within > between
    n_permutations: int
    n_within_pairs: int
    n_between_pairs: int
    concepts: tuple[str, ...]  # those with a category, in matrix order
    categories: dict[str, str]  # concept -> category, for ``concepts``
    excluded: tuple[str, ...]  # concepts without a category (left out of the test)
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["concepts"], d["excluded"] = list(self.concepts), list(self.excluded)
        return d


def _differences(labels: np.ndarray, ii: np.ndarray, jj: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Within-minus-between mean for each row of ``labels`` (P, n); ``nan`` where a side is empty."""
    within = labels[:, ii] == labels[:, jj]  # (P, pairs)
    n_w = within.sum(axis=1)
    n_b = vals.size - n_w
    s_w = within.astype(np.float64) @ vals
    s_b = vals.sum() - s_w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_w > 0) & (n_b > 0), s_w / n_w - s_b / n_b, np.nan)


def category_overlap(
    matrix,
    names: Sequence[str],
    categories: Mapping[str, str | None],
    *,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> CategoryOverlap:
    """Test whether concepts of the same category overlap more than concepts of different ones.

    ``categories`` maps a concept to its category; a concept missing from it, or mapped to
    ``None``/``""``, is excluded and listed in ``excluded``. Names in ``categories`` that are not
    in ``names`` are ignored. Raises ``InvalidInput("categories", ...)`` with fewer than 2
    categories, or without a within-category (or between-category) pair of defined overlap.
    """
    mat = np.asarray(matrix, dtype=np.float64)
    names = list(names)
    if mat.ndim != 2 or mat.shape != (len(names), len(names)):
        raise InvalidInput("matrix", f"expected a ({len(names)}, {len(names)}) matrix, got shape {mat.shape}")
    if n_permutations < 1:
        raise InvalidInput("n_permutations", f"must be >= 1, got {n_permutations}")
    keep = [i for i, n in enumerate(names) if categories.get(n)]
    excluded = tuple(n for n in names if not categories.get(n))
    cats = [str(categories[names[i]]) for i in keep]
    distinct = sorted(set(cats))
    if len(distinct) < 2:
        raise InvalidInput(
            "categories", f"need concepts from at least 2 categories, got {len(distinct)} ({', '.join(distinct) or 'none'})"
        )
    labels = np.array([distinct.index(c) for c in cats])
    ii, jj = np.triu_indices(len(keep), k=1)
    vals = mat[np.ix_(keep, keep)][ii, jj]
    finite = np.isfinite(vals)
    ii, jj, vals = ii[finite], jj[finite], vals[finite]
    same = labels[ii] == labels[jj]
    n_w, n_b = int(same.sum()), int((~same).sum())
    if n_w == 0 or n_b == 0:
        side = "within" if n_w == 0 else "between"
        raise InvalidInput("categories", f"no {side}-category pair of concepts with a defined overlap")
    observed = float(_differences(labels[None, :], ii, jj, vals)[0])

    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(1, vals.size))
    perm_stats = []
    for start in range(0, n_permutations, chunk):
        p = min(chunk, n_permutations - start)
        perm_stats.append(_differences(rng.permuted(np.tile(labels, (p, 1)), axis=1), ii, jj, vals))
    return CategoryOverlap(
        within_mean=float(vals[same].mean()),
        between_mean=float(vals[~same].mean()),
        difference=observed,
        p_value=permutation_p_value(observed, np.concatenate(perm_stats)),
        n_permutations=n_permutations,
        n_within_pairs=n_w,
        n_between_pairs=n_b,
        concepts=tuple(names[i] for i in keep),
        categories={names[i]: c for i, c in zip(keep, cats)},
        excluded=excluded,
        seed=seed,
    )
