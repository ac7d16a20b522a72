"""The fixed float16 histogram of every unit's responses and the firing statistics read from it
(docs/methods.md#b3); the describe job's streaming exemplars pass (``exemplar_stream``) fills it.

**Firing** (``firing_rule``). A unit *fires* on a sentence when its response is above the unit's
threshold theta_m:

* ``zero``: theta = 0, for ``mlp_post`` of an ungated MLP (the output of its activation: GELU in
  BERT / MiniLM, GPT-2 and Pythia, or ReLU). GELU(x) = x Phi(x) is > 0 exactly when its input is >
  0; for x < 0 it is a shallow lobe no lower than -0.17 (SiLU's: -0.28) that goes back to 0 as x
  falls, so a value <= 0 only says the unit is off, and ranking such values ranks "least off"
  (a pooled response near 0 from below is not a weak firing);
* ``fence``: theta = Tukey's upper fence Q3 + 1.5 (Q3 - Q1) of the unit's own responses, for sites
  with no natural zero: ``residual`` (coordinates of the residual stream carry offsets of either
  sign) and ``mlp_post`` of a gated MLP (Llama family: act(gate) * up, whose sign flips with up).
  It marks responses that stand out above the unit's bulk (2.7 standard deviations for a normal
  distribution, so about 0.35% of the sentences).

**Statistics** per unit over the distinct sentences: the maximum (exact), quantiles at
``QUANTILE_LEVELS`` and the firing density (share of the distinct sentences it fires on). The
quantiles come from a **fixed histogram** of the stored float16 responses: ``N_BINS`` bins, each
32 consecutive float16 values of one sign (relative width <= 2^-5, ~3%), 0 alone in its own bin,
NaN in bin 0 (below every number). The q-quantile is the largest float16 value of the bin holding
the ceil(q n)-th smallest response, so it is >= the exact order statistic and within one bin of
it. The fence is snapped to the largest value of its bin, so "above theta" is a union of whole
bins and the firing counts are exact (for theta = 0 too: 0 is a bin's largest value). The counts
of histograms filled from disjoint rows add up (``ResponseHistogram.add``): a sharded pass merges
exactly, and the firing rule is applied only once the whole histogram is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations.sites import get_site

__all__ = ["FiringStats", "ResponseHistogram", "bin_ceiling", "bin_ceilings", "firing_rule", "FIRING_RULES",
           "QUANTILE_LEVELS", "QUANTILE_METHOD", "N_BINS", "TUKEY_FENCE"]

QUANTILE_LEVELS = (0.25, 0.5, 0.75, 0.9, 0.99)
TUKEY_FENCE = 1.5
N_BINS = 2048
_SHIFT = 5  # 2**5 float16 values per bin
_ZERO_KEY = 0x801F  # +-0's key: the last key of its bin, so 0 is that bin's largest value
_SLAB = 1024  # units per bincount, to bound its temporaries
QUANTILE_METHOD = (f"fixed histogram of the float16 responses over the distinct sentences ({N_BINS:,} bins of 32 "
                   "float16 values, ~3% wide): the largest value of the bin holding the ceil(q n)-th smallest response")
FIRING_RULES = {"zero": "response > 0",
                "fence": f"response > Q3 + {TUKEY_FENCE:g} (Q3 - Q1) of the unit (Tukey's upper fence)"}


def firing_rule(model_type: str, site_name: str) -> str:
    """``"zero"`` for the post-activation of an ungated MLP, ``"fence"`` otherwise (module docstring)."""
    site = get_site(model_type, site_name)
    return "zero" if site.name == "mlp_post" and site.hook == "output" else "fence"


_TABLES: list[tuple[np.ndarray, np.ndarray]] = []


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """(bin of every float16 bit pattern (65,536,) int64, largest float16 value of every bin (N_BINS,))."""
    if not _TABLES:
        bits = np.arange(1 << 16, dtype=np.int64)
        mag = bits & 0x7FFF
        neg = ((bits >> 15) == 1) & (mag != 0)
        b = np.where(neg, 0x7FFF - mag, _ZERO_KEY + mag) >> _SHIFT
        b[mag > 0x7C00] = 0  # NaN
        values = bits.astype(np.uint16).view(np.float16).astype(np.float32)
        hi = np.full(N_BINS, -np.inf, np.float32)
        np.maximum.at(hi, b, np.where(np.isnan(values), -np.inf, values))
        hi[0] = np.nan
        _TABLES.append((b, hi))
    return _TABLES[0]


def bin_ceilings() -> np.ndarray:
    """The largest float16 value of every bin, (N_BINS,) float32 (NaN for bin 0, the NaNs')."""
    return _tables()[1].copy()


def bin_ceiling(values) -> np.ndarray:
    """The largest float16 value of each value's histogram bin, as float32 (NaN for NaN)."""
    table, hi = _tables()
    return hi[table[np.ascontiguousarray(np.asarray(values, np.float16)).view(np.uint16)]]


class ResponseHistogram:
    """Per unit, counts of its float16 responses in the ``N_BINS`` fixed bins (module docstring)."""

    def __init__(self, units: int):
        self.counts = np.zeros((int(units), N_BINS), np.uint32)

    def packed(self) -> dict[str, np.ndarray]:
        """The counts without each unit's empty bins below its first and above its last used bin
        (a unit's responses span a few hundred of the 2,048 bins): ``hist_first`` (U,) int32,
        ``hist_width`` (U,) int32 and ``hist_counts`` (the kept bins, unit after unit) uint32."""
        used = self.counts != 0
        first = np.where(used.any(axis=1), np.argmax(used, axis=1), 0).astype(np.int32)
        width = np.where(used.any(axis=1), N_BINS - np.argmax(used[:, ::-1], axis=1) - first, 0).astype(np.int32)
        del used
        parts = []
        for s in range(0, len(first), _SLAB):
            bins = np.arange(N_BINS)
            f, w = first[s:s + _SLAB, None], width[s:s + _SLAB, None]
            parts.append(self.counts[s:s + _SLAB][(bins >= f) & (bins < f + w)])
        counts = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
        return {"hist_first": first, "hist_width": width, "hist_counts": counts}

    @classmethod
    def from_packed(cls, arrays) -> "ResponseHistogram":
        """The histogram ``packed`` wrote (its three arrays, checked)."""
        first, width, counts = (np.asarray(arrays[k]) for k in ("hist_first", "hist_width", "hist_counts"))
        if (first.ndim != 1 or first.shape != width.shape or counts.ndim != 1 or counts.dtype != np.uint32
                or first.dtype != np.int32 or width.dtype != np.int32):
            raise InvalidInput("counts", "packed histogram arrays of unexpected shapes or dtypes")
        if (first < 0).any() or (width < 0).any() or (first.astype(np.int64) + width > N_BINS).any() \
                or int(width.sum(dtype=np.int64)) != len(counts):
            raise InvalidInput("counts", "packed histogram ranges outside the bins or not matching its counts")
        h = cls(len(first))
        at, bins = 0, np.arange(N_BINS)
        for s in range(0, len(first), _SLAB):
            f, w = first[s:s + _SLAB, None], width[s:s + _SLAB, None]
            mask = (bins >= f) & (bins < f + w)
            n = int(w.sum())
            h.counts[s:s + _SLAB][mask] = counts[at:at + n]
            at += n
        return h

    def add(self, other: "ResponseHistogram") -> None:
        """Add the counts of a histogram of other rows (the same units)."""
        if other.counts.shape != self.counts.shape:
            raise InvalidInput("counts", f"histogram of shape {other.counts.shape}, expected {self.counts.shape}")
        self.counts += other.counts

    @property
    def n(self) -> int:
        return int(self.counts[0].sum()) if len(self.counts) else 0

    def update(self, chunk) -> None:
        """Add rows (b, units); values are binned as float16 (the stored responses)."""
        x = np.ascontiguousarray(np.asarray(chunk, dtype=np.float16))
        bins = _tables()[0][x.view(np.uint16)]
        units = self.counts.shape[0]
        for s in range(0, units, _SLAB):
            e = min(units, s + _SLAB)
            idx = bins[:, s:e] + np.arange(e - s, dtype=np.int64) * N_BINS
            add = np.bincount(idx.ravel(), minlength=(e - s) * N_BINS).reshape(e - s, N_BINS)
            np.add(self.counts[s:e], add, out=self.counts[s:e], casting="unsafe")

    def _cumulative(self):
        """(first unit, cumulative counts of a slab of units), slab by slab."""
        for s in range(0, self.counts.shape[0], _SLAB):
            yield s, np.cumsum(self.counts[s:s + _SLAB], axis=1, dtype=np.int64)

    def quantiles(self, levels: Sequence[float]) -> np.ndarray:
        """(units, len(levels)) float32: the largest value of the bin of each ceil(q n)-th smallest response."""
        n, hi = self.n, _tables()[1]
        out = np.full((self.counts.shape[0], len(levels)), np.nan, np.float32)
        if n == 0:
            return out
        ranks = [max(1, math.ceil(Fraction(repr(float(q))) * n)) for q in levels]
        for s, cum in self._cumulative():
            for j, rank in enumerate(ranks):
                out[s:s + len(cum), j] = hi[np.count_nonzero(cum < rank, axis=1)]
        return out

    def above(self, bins: np.ndarray) -> np.ndarray:
        """Per unit, the responses in bins above ``bins[unit]``."""
        out = np.zeros(self.counts.shape[0], np.int64)
        for s, cum in self._cumulative():
            out[s:s + len(cum)] = cum[:, -1] - cum[np.arange(len(cum)), bins[s:s + len(cum)]]
        return out


@dataclass
class FiringStats:
    """Per unit (layer-major, as the exemplars): threshold theta, sentences fired on (of
    ``n_sentences`` distinct ones), maximum and quantiles at ``levels``; ``rule`` in ``FIRING_RULES``."""

    rule: str
    n_sentences: int
    threshold: np.ndarray  # (U,) float32
    n_firing: np.ndarray  # (U,) int64
    maximum: np.ndarray  # (U,) float32
    quantiles: np.ndarray  # (U, Q) float32
    levels: tuple[float, ...] = QUANTILE_LEVELS

    @property
    def density(self) -> np.ndarray:
        return self.n_firing / max(1, self.n_sentences)

    @property
    def description(self) -> str:
        return FIRING_RULES[self.rule]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"firing_threshold": self.threshold, "firing_count": self.n_firing, "firing_max": self.maximum,
                "firing_quantiles": self.quantiles}

    def meta(self) -> dict:
        return {"rule": self.rule, "n_sentences": self.n_sentences, "levels": list(self.levels)}

    @classmethod
    def from_saved(cls, meta: dict, arrays) -> "FiringStats":
        return cls(meta["rule"], int(meta["n_sentences"]), arrays["firing_threshold"], arrays["firing_count"],
                   arrays["firing_max"], arrays["firing_quantiles"], tuple(meta["levels"]))

    @classmethod
    def from_histogram(cls, hist: ResponseHistogram, maximum: np.ndarray, rule: str,
                       levels: Sequence[float] = QUANTILE_LEVELS) -> "FiringStats":
        if rule not in FIRING_RULES:
            raise InvalidInput("rule", f"must be one of {sorted(FIRING_RULES)}, got {rule!r}")
        table, hi = _tables()
        units = hist.counts.shape[0]
        if rule == "zero":
            bins = np.full(units, _ZERO_KEY >> _SHIFT, np.int64)
        else:
            q1, q3 = hist.quantiles((0.25, 0.75)).T.astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                fence = (q3 + TUKEY_FENCE * (q3 - q1)).astype(np.float16)
            bins = table[fence.view(np.uint16)]
            bins[bins == 0] = N_BINS - 1  # NaN fence (a unit of NaNs): nothing is above it
        thr = hi[bins]
        thr[bins == N_BINS - 1] = np.inf
        return cls(rule, hist.n, thr.astype(np.float32), hist.above(bins).astype(np.int64),
                   np.asarray(maximum, np.float32), hist.quantiles(levels), tuple(float(q) for q in levels))

