"""Bootstrap intervals of precision@K / recall@K and of their chance rows (docs/methods.md#chance).

The units of a run (and the random exemplar sets of the chance row) are resampled with
replacement; each resample's mean gives the percentile interval. The difference to the chance row
resamples both sides independently (different units, so no pairing): an interval wholly below 0
means the descriptions match the labels less often than random exemplar sets, wholly above 0 more
often, and one holding 0 cannot tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PRIntervals", "pr_intervals", "difference_intervals", "percentile_interval", "chance_verdict", "BOOTSTRAP",
           "CONFIDENCE"]

BOOTSTRAP = 1000
CONFIDENCE = 0.95
_CHUNK = 100  # resamples per block: bounds memory on runs with many units


@dataclass(frozen=True)
class PRIntervals:
    """Per K: (low, high) of precision and of recall (None when no unit counts), and the
    bootstrap means themselves (resamples x K) for differences."""

    precision: tuple[tuple[float, float] | None, ...]
    recall: tuple[tuple[float, float] | None, ...]
    precision_draws: np.ndarray
    recall_draws: np.ndarray


def _draws(values: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap means of the rows of ``values`` (units x K): (n_boot x K), NaN with no unit."""
    n = values.shape[0]
    if n == 0:
        return np.full((n_boot, values.shape[1]), np.nan)
    out = np.empty((n_boot, values.shape[1]))
    for start in range(0, n_boot, _CHUNK):
        stop = min(start + _CHUNK, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def percentile_interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of bootstrap draws."""
    a = (1 - confidence) / 2
    return float(np.quantile(draws, a)), float(np.quantile(draws, 1 - a))


def _percentiles(draws: np.ndarray, confidence: float) -> tuple[tuple[float, float] | None, ...]:
    return tuple(None if np.isnan(col).all() else percentile_interval(col, confidence) for col in draws.T)


def chance_verdict(difference_ci: tuple[float, float]) -> str:
    """Where the interval of a score minus its chance row puts it."""
    lo, hi = difference_ci
    return "below chance" if hi < 0 else "above chance" if lo > 0 else "not told apart from chance"


def pr_intervals(pr, *, n_boot: int = BOOTSTRAP, confidence: float = CONFIDENCE, seed: int = 0) -> PRIntervals:
    """Intervals of a ``quality.PrecisionRecall`` (its per-unit ``hits``, ``n_top``, ``n_reference``),
    over the same units its means are over."""
    described = pr.n_top[:, 0] > 0
    rec_units = described & (pr.n_reference > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = pr.hits[described] / pr.n_top[described]
        r = pr.hits[rec_units] / pr.n_reference[rec_units, None]
    rng = np.random.default_rng([seed, 11])
    pd_, rd = _draws(p, rng, n_boot), _draws(r, rng, n_boot)
    return PRIntervals(_percentiles(pd_, confidence), _percentiles(rd, confidence), pd_, rd)


def difference_intervals(a: PRIntervals, b: PRIntervals, *, confidence: float = CONFIDENCE):
    """(low, high) of precision(a) - precision(b) per K (None where either is undefined)."""
    return _percentiles(a.precision_draws - b.precision_draws, confidence)
