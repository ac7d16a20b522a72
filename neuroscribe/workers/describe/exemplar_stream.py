"""Exemplars and firing statistics straight from the model (docs/methods.md#b3): responses are
captured window by window and folded into streaming top-k% trackers and per-unit histograms, so
the sentences x units matrix never exists (except the validation half's, kept on request).

**Distinct sentences.** Exemplars are distinct texts: a sentence whose whitespace-normalised text
(``text_key``, the key ``generate_descriptors`` asks the LLM once per) came at an earlier row is
left out of the trackers and histograms, so a text repeated in the data fills one exemplar slot,
not several (its count is ``occurrences``). k is the top k% of the *distinct* sentences; within a
half, of the half's distinct sentences. Ties keep the lower row first, as before.

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
bins and the firing counts are exact (for theta = 0 too: 0 is a bin's largest value).

Memory: one window of responses (``window`` sentences x units of the chosen layers, float16; 2,048
x 9,216 is 38 MB), per tracker a (units, k) buffer, the histogram (8 KB per unit: 75 MB for 9,216
units, 2.9 GB for all 352,256 of a 7B Llama) and the kept half (its rows x units, float16). A half's rows are sorted, so the rows
of one window that belong to it are consecutive in the half's own numbering.

The result holds global row indices (rows of ``texts``) for the whole dataset and for each half;
``ExemplarsArtefact`` (the describe job's exemplars stage) saves it: ``exemplars.npz`` (rows,
responses, firing statistics, each unit's mean and display histogram: ``unit_summary``),
``exemplars.json``, ``validation_responses.npy`` (the kept half).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations import SubjectModel, capture_responses
from neuroscribe.workers.activations.capture import check_layers
from neuroscribe.workers.activations.sites import get_site
from neuroscribe.workers.describe.exemplars import TopKExemplars, n_exemplars
from neuroscribe.workers.describe.unit_summary import UnitMoments, UnitSummary

__all__ = ["StreamedExemplars", "ExemplarsArtefact", "FiringStats", "ResponseHistogram", "bin_ceiling",
           "stream_exemplars", "text_key", "first_occurrences", "occurrences", "firing_rule", "FIRING_RULES", "QUANTILE_LEVELS",
           "QUANTILE_METHOD", "N_BINS", "TUKEY_FENCE"]

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


# --------------------------------------------------------------------------- distinct sentences


def text_key(text: str) -> str:
    """A sentence's whitespace-normalised text: equal keys are one sentence."""
    return " ".join(text.split())


def first_occurrences(texts: Sequence[str], rows=None) -> np.ndarray:
    """Sorted rows (of ``rows``, default every row) whose ``text_key`` came at no earlier row of them."""
    seen: set[str] = set()
    out = []
    for r in (range(len(texts)) if rows is None else sorted(int(x) for x in rows)):
        key = text_key(texts[r])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return np.asarray(out, np.int64)


def occurrences(texts: Sequence[str]) -> np.ndarray:
    """Per row, how many rows of ``texts`` hold its ``text_key``."""
    keys = [text_key(t) for t in texts]
    count: dict[str, int] = {}
    for k in keys:
        count[k] = count.get(k, 0) + 1
    return np.asarray([count[k] for k in keys], np.int64)


# --------------------------------------------------------------------------- histogram and firing


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


def bin_ceiling(values) -> np.ndarray:
    """The largest float16 value of each value's histogram bin, as float32 (NaN for NaN)."""
    table, hi = _tables()
    return hi[table[np.ascontiguousarray(np.asarray(values, np.float16)).view(np.uint16)]]


class ResponseHistogram:
    """Per unit, counts of its float16 responses in the ``N_BINS`` fixed bins (module docstring)."""

    def __init__(self, units: int):
        self.counts = np.zeros((int(units), N_BINS), np.uint32)

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


# --------------------------------------------------------------------------- the stream


@dataclass
class StreamedExemplars:
    """Exemplar rows (global, distinct texts) and responses per unit; units are layer-major: unit
    u of the concatenation is ``(layers[u // units_per_layer], u % units_per_layer)``.
    ``heldout``: every unit's response on every row of the kept half, in that half's row order."""

    layers: list[int]
    units_per_layer: int
    k: int
    rows: np.ndarray  # (U, k) int64
    values: np.ndarray  # (U, k) float32
    halves: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # per half: (rows, values)
    n_saturated: int = 0
    firing: FiringStats | None = None
    heldout: np.ndarray | None = None  # (len(halves[keep]), U) float16
    summary: UnitSummary | None = None  # mean and display histogram (unit_summary)

    @property
    def n_units(self) -> int:
        return self.rows.shape[0]


@dataclass
class ExemplarsArtefact:
    """Exemplars (distinct texts, best first) of every unit over the dataset and each half, the
    units' firing statistics, and ``heldout``: every unit's response (float16) on every row of the
    validation half ``halves[1]``, in its row order (``validation_responses.npy``)."""

    layers: list[int]
    units_per_layer: int
    k: int
    rows: np.ndarray
    values: np.ndarray
    halves: list[tuple[np.ndarray, np.ndarray]]
    subject: dict  # model_id, revision, weight_sha256, model_type, site, pooling, environment, n_saturated
    firing: FiringStats | None = None
    heldout: np.ndarray | None = None  # (len(halves[1]), U) float16
    summary: UnitSummary | None = None

    HELDOUT_FILE = "validation_responses.npy"

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"rows": self.rows, "values": self.values, **(self.firing.arrays() if self.firing else {}),
                  **(self.summary.arrays() if self.summary else {})}
        for i, (r, v) in enumerate(self.halves):
            arrays[f"half{i}_rows"], arrays[f"half{i}_values"] = r, v
        np.savez(directory / "exemplars.npz", **arrays)
        if self.heldout is not None:
            np.save(directory / self.HELDOUT_FILE, self.heldout, allow_pickle=False)
        meta = {"layers": self.layers, "units_per_layer": self.units_per_layer, "k": self.k,
                "n_halves": len(self.halves), "subject": self.subject,
                "firing": self.firing.meta() if self.firing else None}
        (directory / "exemplars.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "ExemplarsArtefact":
        directory = Path(directory)
        meta = json.loads((directory / "exemplars.json").read_text(encoding="utf-8"))
        held = directory / cls.HELDOUT_FILE
        heldout = np.load(held, allow_pickle=False) if held.is_file() else None
        with np.load(directory / "exemplars.npz", allow_pickle=False) as z:
            halves = [(z[f"half{i}_rows"], z[f"half{i}_values"]) for i in range(meta["n_halves"])]
            firing = FiringStats.from_saved(meta["firing"], z) if meta.get("firing") else None
            return cls(meta["layers"], meta["units_per_layer"], meta["k"], z["rows"], z["values"], halves,
                       meta["subject"], firing, heldout, UnitSummary.from_saved(z))


def _check_halves(halves: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    out = []
    for i, h in enumerate(halves):
        h = np.asarray(h, dtype=np.int64)
        if h.ndim != 1 or h.size == 0 or (np.diff(h) <= 0).any() or h[0] < 0 or h[-1] >= n:
            raise InvalidInput(f"halves.{i}", f"must be sorted distinct rows in [0, {n}), non-empty")
        out.append(h)
    return out


def stream_exemplars(subject: SubjectModel, texts: Sequence[str], *, top_percent: float = 1.0,
                     halves: Sequence[np.ndarray] = (), site: str = "mlp_post", pooling: str = "cls",
                     layers: Sequence[int] | None = None, batch_size: int = 32, max_length: int = 128,
                     window: int = 2048, rule: str | None = None, keep_half: int | None = None,
                     progress: bool = True) -> StreamedExemplars:
    """Top ``top_percent``% distinct sentences of every unit of ``layers`` (all by default), over all
    of ``texts`` and, for each of ``halves`` (sorted row arrays), over that half's rows; the firing
    statistics under ``rule`` (default ``firing_rule`` of the model and site); with ``keep_half``,
    the responses of every row of ``halves[keep_half]``."""
    n = len(texts)
    halves = _check_halves(halves, n)
    if keep_half is not None and not 0 <= keep_half < len(halves):
        raise InvalidInput("keep_half", f"must index one of the {len(halves)} halves, got {keep_half}")
    rule = firing_rule(subject.model_type, site) if rule is None else rule
    if rule not in FIRING_RULES:
        raise InvalidInput("rule", f"must be one of {sorted(FIRING_RULES)}, got {rule!r}")
    sets = [first_occurrences(texts)] + [first_occurrences(texts, h) for h in halves]  # distinct rows
    ks = [n_exemplars(len(d), top_percent) for d in sets]
    chosen = check_layers(layers, subject.n_layers)
    if int(window) < 1:
        raise InvalidInput("window", f"must be >= 1, got {window}")
    window = int(window)
    member = [np.zeros(n, bool) for _ in sets]
    for m, d in zip(member, sets):
        m[d] = True
    trackers: list[TopKExemplars] = []
    hist = kept = None
    units_per_layer = saturated = 0
    with tqdm(total=n, desc="exemplars", unit="sent", disable=not progress) as bar:
        for start in range(0, n, window):
            stop = min(start + window, n)
            resp = capture_responses(subject, list(texts[start:stop]), site=site, pooling=pooling, layers=chosen,
                                     batch_size=batch_size, max_length=max_length, progress=False)
            saturated += resp.meta.n_saturated
            chunk = resp.matrix(chosen)
            del resp
            if not trackers:
                units_per_layer = chunk.shape[1] // len(chosen)
                trackers = [TopKExemplars(chunk.shape[1], k) for k in ks]
                hist, moments = ResponseHistogram(chunk.shape[1]), UnitMoments(chunk.shape[1])
                if keep_half is not None:
                    kept = np.empty((len(halves[keep_half]), chunk.shape[1]), np.float16)
            for i, (d, m, t) in enumerate(zip(sets, member, trackers)):
                sel = m[start:stop]
                if sel.any():  # the set's own numbering of its first row in this window
                    t.update(int(np.searchsorted(d, start)), chunk[sel])
                    if i == 0:
                        hist.update(chunk[sel])
                        moments.update(chunk[sel])
            if kept is not None:
                h = halves[keep_half]
                a, b = np.searchsorted(h, start), np.searchsorted(h, stop)
                kept[a:b] = chunk[h[a:b] - start]
            del chunk
            bar.update(stop - start)
    results = []
    for d, t in zip(sets, trackers):
        local, vals = t.result()
        results.append((d[local], vals))
    (rows, values), out_halves = results[0], results[1:]
    firing = FiringStats.from_histogram(hist, values[:, 0], rule)
    return StreamedExemplars(layers=chosen, units_per_layer=units_per_layer, k=ks[0], rows=rows, values=values,
                             halves=out_halves, n_saturated=saturated, firing=firing, heldout=kept,
                             summary=moments.summary(hist.counts, _tables()[1], values[:, 0]))
