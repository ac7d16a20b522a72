"""Inputs of the unit descriptions (docs/methods.md#b4 to #b6): sentences x descriptors, and checks.

Inputs are the descriptor set C(d_i) of every sentence (already mapped to vocabulary names; ``None``
for a sentence whose descriptor generation FAILED) and, per unit, the row indices of its exemplar
sentences E_m, an int array (U, k) as a streaming top-k% gives (``workers.exemplars``). Units are
row indices of that array: a caller with several layers maps them back to (layer, index).

``incidence`` turns the descriptor sets into a sparse boolean (sentences x descriptors) CSR matrix
(``Incidence``); ``check_exemplars`` and ``check_percent`` validate the exemplar array and a
percentage, for ``descriptions.assign`` and ``quality``. Bad input raises ``InvalidInput(field,
message)``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from neuroscribe.errors import InvalidInput

__all__ = ["Incidence", "incidence", "check_exemplars", "check_percent"]


@dataclass(frozen=True, eq=False)
class Incidence:
    """Sentences x descriptors. ``matrix[i, j]`` is True when sentence i's descriptor set holds
    ``names[j]``; a failed sentence (``failed[i]``) has an empty row."""

    matrix: sp.csr_matrix  # (N, D) bool
    names: tuple[str, ...]
    failed: np.ndarray  # (N,) bool

    @property
    def n_sentences(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_failed(self) -> int:
        return int(np.count_nonzero(self.failed))


def incidence(descriptor_sets: Sequence[Collection[str] | None], *,
              vocabulary: Sequence[str] | None = None) -> Incidence:
    """The incidence of ``descriptor_sets`` (one entry per sentence: a set, or any collection, of
    descriptor names; ``None`` when generation failed). Columns follow ``vocabulary`` when given
    (every name used must be in it), else the sorted distinct names. An ``Incidence`` passes through."""
    if isinstance(descriptor_sets, Incidence):
        return descriptor_sets
    if isinstance(descriptor_sets, (str, bytes)) or not isinstance(descriptor_sets, Sequence):
        raise InvalidInput("descriptor_sets", "must be a sequence with one descriptor set (or None) per sentence")
    if len(descriptor_sets) == 0:
        raise InvalidInput("descriptor_sets", "the dataset is empty")
    rows: list[list[str]] = []
    failed = np.zeros(len(descriptor_sets), bool)
    for i, item in enumerate(descriptor_sets):
        if item is None:
            failed[i] = True
            rows.append([])
            continue
        if isinstance(item, (str, bytes)) or not isinstance(item, Collection):
            raise InvalidInput(f"descriptor_sets:{i}", f"must be a set of descriptor names or None, got {item!r}")
        names = set(item)
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise InvalidInput(f"descriptor_sets:{i}", f"descriptor names must be non-empty strings, got {name!r}")
        rows.append(sorted(names))
    if vocabulary is None:
        names = tuple(sorted({n for r in rows for n in r}))
    else:
        names = tuple(vocabulary)
        if len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            raise InvalidInput("vocabulary", "must be distinct strings")
    index = {n: j for j, n in enumerate(names)}
    cols = []
    for i, r in enumerate(rows):
        for n in r:
            if n not in index:
                raise InvalidInput(f"descriptor_sets:{i}", f"{n!r} is not in the vocabulary")
            cols.append(index[n])
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    mat = sp.csr_matrix((np.ones(len(cols), bool), np.asarray(cols, np.int64), indptr),
                        shape=(len(rows), len(names)))
    return Incidence(matrix=mat, names=names, failed=failed)


def check_exemplars(exemplars, n: int) -> np.ndarray:
    """(U, k) int64 exemplar rows in [0, n), k >= 1, no row twice within a unit."""
    if hasattr(exemplars, "detach"):
        exemplars = exemplars.detach().cpu().numpy()
    ex = np.asarray(exemplars)
    if ex.ndim != 2 or ex.dtype.kind not in "iu":
        raise InvalidInput("exemplars", f"must be an integer (units, k) array of sentence rows, got {ex.dtype} {ex.shape}")
    if ex.shape[0] == 0:
        raise InvalidInput("exemplars", "no unit")
    if ex.shape[1] == 0:
        raise InvalidInput("exemplars", "k = 0: every unit's exemplar set is empty (raise the top percent)")
    ex = ex.astype(np.int64)
    if ex.min() < 0 or ex.max() >= n:
        raise InvalidInput("exemplars", f"rows must be in [0, {n}), got [{ex.min()}, {ex.max()}]")
    s = np.sort(ex, axis=1)
    dup = (s[:, 1:] == s[:, :-1]).any(axis=1)
    if dup.any():
        raise InvalidInput("exemplars", f"unit {int(np.flatnonzero(dup)[0])} lists a sentence twice")
    return ex


def check_percent(value, field_name: str) -> float:
    """``value`` as a float percentage in (0, 100] (``InvalidInput(field_name)`` otherwise)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(field_name, f"must be a percentage in (0, 100], got {value!r}") from None
    if not 0.0 < v <= 100.0:  # also rejects NaN
        raise InvalidInput(field_name, f"must be a percentage in (0, 100], got {value!r}")
    return v
