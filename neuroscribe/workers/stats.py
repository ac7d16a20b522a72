"""Student-t intervals of a mean, shared by the causal check, the interventions and probing.

``t_interval(values, confidence)`` is ``(mean, low, high)`` with ``mean +- t(0.5 + confidence / 2,
n - 1) * sd / sqrt(n)`` (sd with ddof 1); with fewer than 2 values the bounds are NaN (the mean is
still given). ``t_bounds`` is the same interval without the mean, ``(low, high)``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["t_interval", "t_bounds"]


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean; NaN bounds for fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, v.size - 1)) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, mean - half, mean + half


def t_bounds(values, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high) of ``t_interval``: NaN for fewer than 2 values."""
    return t_interval(values, confidence)[1:]
