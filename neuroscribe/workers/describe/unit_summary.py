"""Per-unit mean and display histogram of the responses over the distinct sentences, from the
describe job's streaming exemplars pass (docs/methods.md#b3; written to ``token_evidence.npz``).

* **Mean**: the exact sum of the stored float16 responses of every distinct sentence (fixed
  point, so shards of rows add up to the same sum in any order), divided by their number at the
  end (``UnitMoments``), beside the exact running minimum.
* **Display histogram**: ``HIST_BINS`` equal-width bins between the unit's exact minimum and
  maximum. It is *derived* from the stream's fixed histogram (``exemplar_stream.ResponseHistogram``:
  2,048 bins of 32 consecutive float16 values, ~3% wide), so no second pass over the dataset is
  needed: the count of each fixed bin, whose values lie in (ceiling of the bin below, its own
  ceiling], clipped to [min, max], is spread over the display bins that interval overlaps in
  proportion to the overlap (as if uniform within the fixed bin), and each unit's shares are
  rounded to integers keeping its total (largest remainders). Only fixed bins that straddle a
  display edge are split, so the count below any edge is off by at most the responses of the
  fixed bin holding it (those within ~3% of the edge's value); the total and the extremes are
  exact. Where a unit's range is narrow next to its values (a fixed bin wider than a display bin)
  the shape inside a fixed bin is flat, not measured. NaN responses are in no display bin; a unit
  whose minimum equals its maximum has every count in its last bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroscribe.errors import InvalidInput

__all__ = ["HIST_BINS", "UnitMoments", "UnitSummary", "display_histogram"]

HIST_BINS = 30
_FIXED = 2.0 ** 24  # a float16 value times this is an integer
_SLAB = 1024  # units at a time, to bound temporaries


@dataclass
class UnitSummary:
    """Per unit (layer-major, as the exemplars): mean response, display histogram counts and edges."""

    mean: np.ndarray  # (U,) float32
    hist_counts: np.ndarray  # (U, B) int32
    hist_edges: np.ndarray  # (U, B + 1) float32

    def arrays(self) -> dict[str, np.ndarray]:
        return {"unit_mean": self.mean, "unit_hist_counts": self.hist_counts, "unit_hist_edges": self.hist_edges}

    @classmethod
    def from_saved(cls, arrays) -> "UnitSummary | None":
        """From ``arrays()``'s keys in an npz; None when they are absent (an artefact from before them)."""
        if "unit_mean" not in getattr(arrays, "files", arrays):
            return None
        return cls(arrays["unit_mean"], arrays["unit_hist_counts"], arrays["unit_hist_edges"])


class UnitMoments:
    """Running sum, count and minimum of every unit's float16 responses, chunk by chunk.

    The sum is exact, so it does not depend on the order or grouping of the rows: a float16 value
    is an integer multiple of 2^-24 below 2^16 in magnitude, so any float64 sum of at most 2^13 of
    them is exact (below 2^29); each such block sum, times 2^24, is an integer carried into two
    int64 words (``high`` * 2^32 + ``low``). NaN and infinities are summed apart (``special``: a
    set of them has one sum in any order). ``add`` folds in the moments of other rows, exactly.
    The mean is that sum / n, rounded once to float64, then to float32 (the same mean as the float64
    running sum this replaces whenever that sum was exact, i.e. below 2^29)."""

    _BLOCK = 1 << 13  # rows per float64 sum: 2^13 x 65504 < 2^29, exact

    def __init__(self, units: int):
        self.high = np.zeros(int(units), np.int64)
        self.low = np.zeros(int(units), np.int64)
        self.special = np.zeros(int(units), np.float64)
        self.minimum = np.full(int(units), np.nan, np.float32)
        self.n = 0

    def update(self, chunk) -> None:
        """Add rows (b, units) of float16 responses."""
        x = np.asarray(chunk)
        if x.dtype != np.float16 or x.ndim != 2 or x.shape[1] != len(self.high):
            raise InvalidInput("chunk", f"must be float16 (rows, {len(self.high)}) responses, got {x.dtype} {x.shape}")
        if not len(x):
            return
        for s in range(0, len(x), self._BLOCK):
            part = x[s:s + self._BLOCK]
            with np.errstate(invalid="ignore"):  # inf - inf
                total = part.sum(axis=0, dtype=np.float64)  # exact
            bad = ~np.isfinite(total)
            if bad.any():  # units with a NaN or an infinity: sum the finite values and the others apart
                cols = part[:, bad]
                finite = np.isfinite(cols)
                total[bad] = np.where(finite, cols, 0).sum(axis=0, dtype=np.float64)
                with np.errstate(invalid="ignore"):
                    self.special[bad] += np.where(finite, 0, cols).sum(axis=0, dtype=np.float64)
            fixed = (total * _FIXED).astype(np.int64)  # exact integers < 2^53
            self.high += fixed >> 32
            self.low += fixed & 0xFFFFFFFF
        self.minimum = np.fmin(self.minimum, np.fmin.reduce(x, axis=0).astype(np.float32))
        self.n += len(x)

    def add(self, other: "UnitMoments") -> None:
        """Fold in the moments of other rows of the same units."""
        if other.high.shape != self.high.shape:
            raise InvalidInput("moments", f"{len(other.high)} units, expected {len(self.high)}")
        self.high += other.high
        self.low += other.low
        self.special += other.special
        self.minimum = np.fmin(self.minimum, other.minimum)
        self.n += other.n

    def arrays(self) -> dict[str, np.ndarray]:
        """The state, to save (``from_arrays`` reads it back)."""
        return {"moments_high": self.high, "moments_low": self.low, "moments_special": self.special,
                "moments_minimum": self.minimum}

    @classmethod
    def from_arrays(cls, arrays, n: int) -> "UnitMoments":
        m = cls(0)
        want = {"moments_high": np.int64, "moments_low": np.int64, "moments_special": np.float64,
                "moments_minimum": np.float32}
        got = {k: np.asarray(arrays[k]) for k in want}
        units = {a.shape for a in got.values()}
        if len(units) != 1 or got["moments_high"].ndim != 1 or any(got[k].dtype != t for k, t in want.items()):
            raise InvalidInput("moments", "arrays of different shapes or unexpected dtypes")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidInput("moments.n", f"must be a count >= 0, got {n!r}")
        m.high, m.low, m.special, m.minimum = (got[k].copy() for k in want)
        m.n = n
        return m

    @property
    def total(self) -> np.ndarray:
        """The sum of every unit's responses (float64)."""
        fixed = self.high.astype(np.float64) * 2.0 ** 32 + self.low.astype(np.float64)  # one rounding
        return fixed / _FIXED + self.special

    @property
    def mean(self) -> np.ndarray:
        return (self.total / self.n if self.n else np.full(len(self.high), np.nan)).astype(np.float32)

    def summary(self, counts: np.ndarray, ceilings: np.ndarray, maximum: np.ndarray,
                bins: int = HIST_BINS) -> UnitSummary:
        """The mean and the display histogram from the fixed histogram's ``counts`` (U, NB), the
        largest value of each fixed bin ``ceilings`` (NB,) and the exact per-unit ``maximum``."""
        hc, he = display_histogram(counts, ceilings, self.minimum + np.float32(0.0), maximum, bins)
        return UnitSummary(self.mean, hc, he)


def display_histogram(counts: np.ndarray, ceilings: np.ndarray, minimum: np.ndarray, maximum: np.ndarray,
                      bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(counts (U, bins) int32, edges (U, bins + 1) float32): ``bins`` equal-width bins between each
    unit's ``minimum`` and ``maximum``, filled from the fixed histogram (module docstring)."""
    counts = np.asarray(counts)
    hi = np.asarray(ceilings, np.float64)
    lo = np.concatenate([[-np.inf], hi[:-1]])  # a fixed bin's values lie in (lo, hi]
    units = counts.shape[0]
    mn = np.asarray(minimum, np.float64)
    mx = np.asarray(maximum, np.float64)
    with np.errstate(invalid="ignore"):  # an infinite minimum or maximum: NaN edges
        edges = np.linspace(mn, mx, bins + 1, axis=1).astype(np.float32)
    out = np.zeros((units, bins), np.int64)
    ok = np.isfinite(mn) & np.isfinite(mx)
    width = np.where(ok & (mx > mn), (mx - mn) / bins, np.inf)  # inf: one point, all in the last bin
    for s in range(0, units, _SLAB):
        e = min(units, s + _SLAB)
        u, b = np.nonzero(counts[s:e])
        keep = ok[s + u] & np.isfinite(hi[b])  # bin 0 holds the NaNs: ceiling NaN
        u, b = u[keep], b[keep]
        g, n = s + u, counts[s:e][u, b].astype(np.float64)
        a = np.fmax(lo[b], mn[g]) - mn[g]  # the bin's values, clipped to the unit's range, from its minimum
        c = np.fmin(hi[b], mx[g]) - mn[g]
        first = np.clip(np.floor(a / width[g]), 0, bins - 1).astype(np.int64)
        first[~np.isfinite(width[g])] = bins - 1
        last = np.clip(np.floor(c / width[g]), 0, bins - 1).astype(np.int64)
        last = np.maximum(first, np.where(np.isfinite(width[g]), last, bins - 1))
        span = np.where(c > a, c - a, 1.0)
        share = np.zeros(((e - s) * bins,), np.float64)
        for t in range(int((last - first).max(initial=0)) + 1):  # spread each count over the bins it overlaps
            j = first + t
            inside = j <= last
            lo_j, hi_j = j * width[g], (j + 1) * width[g]
            part = np.where(c > a, (np.minimum(c, hi_j) - np.maximum(a, lo_j)).clip(0) / span, t == 0)
            part[~np.isfinite(width[g])] = t == 0
            np.add.at(share, (u * bins + j)[inside], (n * part)[inside])
        out[s:e] = _round_rows(share.reshape(e - s, bins))
    return out.astype(np.int32), edges


def _round_rows(x: np.ndarray) -> np.ndarray:
    """Integers with each row's (integer) total: floors, plus one to the largest remainders."""
    base = np.floor(x + 1e-9)
    left = np.rint(x.sum(axis=1) - base.sum(axis=1)).astype(np.int64)
    order = np.argsort(-(x - base), axis=1, kind="stable")
    add = np.arange(x.shape[1])[None, :] < left[:, None]
    np.put_along_axis(base, order, np.take_along_axis(base, order, axis=1) + add, axis=1)
    return base.astype(np.int64)
