"""Validation of what probing and agreement are given (docs/methods.md#c): rankings, k values, (X, y).

A *ranking* is an ``order`` array: every unit index of ``X``'s columns exactly once, best first.
``check_rankings`` checks a mapping name -> order; ``check_ks`` the k values (whole numbers in
[1, n_units], returned deduplicated and sorted); ``check_data`` the responses ``X`` (n, n_units), the
labels ``y`` (at least two classes, each with at least ``MIN_PER_CLASS`` rows), ``test_size`` and the
number of seeds. Bad input raises ``InvalidInput(field, message)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from neuroscribe.errors import InvalidInput

__all__ = ["MIN_PER_CLASS", "check_ranking", "check_rankings", "check_ks", "check_data"]

MIN_PER_CLASS = 5


def check_ranking(name: str, order, n_units: int) -> np.ndarray:
    """``order`` as an intp permutation of ``n_units`` units (``InvalidInput("rankings:<name>")`` otherwise)."""
    o = np.asarray(order)
    where = f"rankings:{name}"
    if o.ndim != 1 or o.dtype.kind not in "iu":
        raise InvalidInput(where, f"must be a 1-D integer array of unit indices, got {o.dtype} {o.shape}")
    if o.size != n_units or not np.array_equal(np.sort(o), np.arange(n_units)):
        raise InvalidInput(where, f"must be a permutation of all {n_units} units (each index 0..{n_units - 1} "
                                  f"once); got {o.size} entries, {np.unique(o).size} distinct")
    return o.astype(np.intp)


def check_rankings(rankings: Mapping[str, np.ndarray], n_units: int | None) -> dict[str, np.ndarray]:
    """Name -> checked order; ``n_units`` None: the first ranking's length."""
    if not isinstance(rankings, Mapping) or not rankings:
        raise InvalidInput("rankings", "give at least one ranking, as a mapping name -> order array")
    if n_units is None:
        n_units = int(np.asarray(next(iter(rankings.values()))).size)
    return {str(k): check_ranking(str(k), v, n_units) for k, v in rankings.items()}


def check_ks(ks, n_units: int) -> tuple[int, ...]:
    """The k values, whole numbers in [1, n_units], deduplicated and sorted."""
    try:
        raw = np.atleast_1d(np.asarray(ks)).tolist()
        vals = [int(k) for k in raw]
    except (TypeError, ValueError):
        raise InvalidInput("ks", f"must be whole numbers, got {ks!r}") from None
    if any(v != r for v, r in zip(vals, raw)):
        raise InvalidInput("ks", f"must be whole numbers, got {ks!r}")
    if not vals:
        raise InvalidInput("ks", "give at least one k")
    for k in vals:
        if k < 1:
            raise InvalidInput("ks", f"k must be at least 1, got {k}")
        if k > n_units:
            raise InvalidInput("ks", f"k = {k} is larger than the number of units ({n_units})")
    return tuple(sorted(set(vals)))


def check_data(X, y, test_size: float, seeds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X as float64, y, the sorted classes)`` after checking the data, ``test_size`` and ``seeds``."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] == 0:
        raise InvalidInput("X", f"must be a 2-D (examples, units) array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise InvalidInput("X", "contains NaN or infinite values")
    if y.ndim != 1 or len(y) != len(X):
        raise InvalidInput("y", f"needs one label per row of X: X has {len(X)} rows, y has shape {y.shape}")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise InvalidInput("y", f"only one class ({classes[0].item()!r}) in y; probing needs at least two"
                           if classes.size else "y is empty")
    for c, n in zip(classes, counts):
        if n < MIN_PER_CLASS:
            raise InvalidInput("y", f"class {c.item()!r} has {n} examples; each class needs at least {MIN_PER_CLASS}")
    if not 0.0 < float(test_size) < 1.0:
        raise InvalidInput("test_size", f"must be a fraction in (0, 1), got {test_size!r}")
    n_test = math.ceil(float(test_size) * len(y))
    if n_test < classes.size or len(y) - n_test < classes.size:
        raise InvalidInput("test_size", f"{test_size} of {len(y)} rows leaves a side smaller than the "
                                        f"{classes.size} classes")
    if int(seeds) < 1:
        raise InvalidInput("seeds", f"must be at least 1, got {seeds!r}")
    return X, y, classes
