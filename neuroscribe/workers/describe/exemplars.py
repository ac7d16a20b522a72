"""Exemplar sentences per unit (docs/methods.md#b3): each unit's top k% sentences.

E_m = the ``n_exemplars(n, k)`` = ceil(n * k / 100) sentences with the largest response of unit m
(default k = 1). They are collected in ONE streaming pass over chunks of rows,
``(row_offset, array (b, units))``, e.g. batches as responses are captured or slices of a
memory-mapped ``layer_LLL.npy`` (``row_chunks``), holding O(units x exemplars) numbers: never the
full sentences x units matrix, so a million sentences fit in memory.

Order (deterministic, whatever the chunking): larger response first; equal responses: the lower
row index first (-0.0 == +0.0); NaN ranks below every number, -inf included (never chosen before
a finite value), NaNs among themselves by row. This is exactly what a stable
``np.argsort(-matrix, axis=0)`` of the full matrix gives (``dense_topk``, the reference), and
the streaming answer is identical to it, values and indices, for any chunk sizes and order.

How: every (row, value) pair of a unit becomes one distinct unsigned 64-bit key,
``(code(value) + 2) << 32 | (2**32 - 1 - row)``, where ``code`` is an order-preserving integer
image of the float32 value (float16 widens exactly; -0.0 and +0.0 share a code; NaN gets the
lowest). Comparing keys compares (value, -row), so the top k of a unit are its k largest keys
with no ties left, and the key decodes back to the row and the exact value. Per unit the object
keeps its k largest keys so far, a (units, k) uint64 buffer (key 0 = empty slot). An update keeps
only the chunk entries that beat their unit's current k-th key (after the first chunks, most
entries do not), lays them out (active units, k + most candidates of one unit), and takes the k
largest per row with ``np.partition``: no Python loop over units, and never more than k + b rows
per unit held. Rows must be in [0, 2**32) and no row may come twice (overlapping chunks are
rejected). ``bench/bench_exemplars.py`` measures it against the dense approach.

Merging: the top k of a union of disjoint rows is the top k of the union of each part's top k, so
trackers fed different rows (shards of a dataset, in one shared row numbering) merge exactly:
``TopKExemplars.candidates`` (also with fewer than k rows seen) and ``merge_candidates``, which
re-encodes (row, value) into the same keys (a decoded -0.0 is +0.0 and NaN the one NaN code, so
the keys are the originals) and keeps the k largest.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np

from neuroscribe.errors import InvalidInput

__all__ = ["n_exemplars", "TopKExemplars", "dense_topk", "merge_candidates", "row_chunks", "top_exemplars"]

_INF = 0x7F800000  # float32 +inf bit pattern: codes of non-NaN values lie in [-_INF, _INF]
_NAN_CODE = -_INF - 1  # below -inf
_SHIFT = _INF + 2  # code + _SHIFT >= 1 for every value, so every real key is >= 2**32 > 0 (empty)
_ROWS = 1 << 32
_ROW_MASK = _ROWS - 1


# --------------------------------------------------------------------------- how many


def n_exemplars(n_sentences: int, top_percent: float = 1.0) -> int:
    """Exemplars per unit: ceil(n_sentences * top_percent / 100), computed exactly.

    ``top_percent`` is read as the decimal it prints as (0.1 is exactly 1/10, so 0.1% of 1000 is
    1, not 2). 1% of 1000 = 10, of 150 = 2, of 50 = 1. Raises ``InvalidInput`` for fewer than one
    sentence or ``top_percent`` outside (0, 100]; a k so small that the set would be empty
    (k <= 0) names the number of sentences and the smallest k that gives one exemplar."""
    if isinstance(n_sentences, bool) or not isinstance(n_sentences, (int, np.integer)) or n_sentences < 1:
        raise InvalidInput("n_sentences", f"need at least 1 sentence to choose exemplars from, got {n_sentences!r}")
    n = int(n_sentences)
    try:
        k = float(top_percent)
    except (TypeError, ValueError):
        raise InvalidInput("top_percent", f"must be a number in (0, 100], got {top_percent!r}") from None
    if not k <= 100.0:  # also NaN
        raise InvalidInput("top_percent", f"must be in (0, 100], got {top_percent!r}")
    if not k > 0.0 or not math.isfinite(k):
        one = 100.0 / n
        raise InvalidInput(
            "top_percent",
            f"{top_percent!r}% of {n} sentences selects no exemplars (an empty set for every unit);"
            f" use top_percent > 0: any k in (0, {_fmt(one)}] gives 1 exemplar per unit, k = 1 gives"
            f" {math.ceil(Fraction(n, 100))}",
        )
    count = math.ceil(n * Fraction(repr(k)) / 100)
    if count < 1:  # unreachable with ceil and k > 0; kept so a future rounding cannot return 0
        raise InvalidInput("top_percent", f"{k}% of {n} sentences is empty; use top_percent >= {_fmt(100.0 / n)}")
    return count


def _fmt(x: float) -> str:
    return f"{x:.4g}"


# --------------------------------------------------------------------------- keys


def _as_values(chunk, units: int | None, field: str = "chunk", *, widen: bool = True) -> np.ndarray:
    """(b, U) float32 holding exactly the input values (float16 widens exactly; kept as is
    when not ``widen``)."""
    if hasattr(chunk, "detach"):  # torch tensor
        t = chunk.detach().cpu()
        chunk = (t.float() if t.is_floating_point() and t.element_size() < 4 else t).numpy()
    x = np.asarray(chunk)
    if x.ndim != 2 or x.dtype.kind not in "biuf":
        raise InvalidInput(field, f"must be a numeric (rows, units) array, got {x.dtype} {x.shape}")
    if units is not None and x.shape[1] != units:
        raise InvalidInput(field, f"has {x.shape[1]} units (columns), expected {units}")
    if x.dtype == np.float16 and not widen:
        return x
    if x.dtype in (np.float16, np.float32):
        return x.astype(np.float32, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        y = x.astype(np.float32)
    same = (y == x) | (np.isnan(y) & np.isnan(x)) if x.dtype.kind == "f" else (y == x)
    if not np.all(same):
        raise InvalidInput(field, f"{x.dtype} values that float32 cannot hold exactly; pass float16/float32 responses")
    return y


def _codes(x: np.ndarray) -> np.ndarray:
    """Order-preserving int32 codes of float32 values: -0.0 == +0.0, NaN lowest (``_NAN_CODE``).

    float16 goes through a 65,536-entry table (faster than widening to float32 first)."""
    if x.dtype == np.float16:
        return np.take(_f16_table(), np.ascontiguousarray(x).view(np.uint16))
    bits = np.ascontiguousarray(x).view(np.int32)
    if x.size == 0 or (bits.min() >= 0 and bits.max() <= _INF):  # no negatives, no -0.0, no NaN
        return bits
    sign = np.right_shift(bits, 31)  # -1 for negatives and -0.0, else 0
    code = np.bitwise_and(bits, 0x7FFFFFFF)  # magnitude
    nan = code > _INF
    np.bitwise_xor(code, sign, out=code)
    np.subtract(code, sign, out=code)  # -magnitude for negatives: -0.0 -> 0
    if nan.any():
        code[nan] = _NAN_CODE
    return code


_F16_TABLE: list[np.ndarray] = []


def _f16_table() -> np.ndarray:
    """int32 code of every float16 bit pattern (as float32)."""
    if not _F16_TABLE:
        _F16_TABLE.append(_codes(np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)))
    return _F16_TABLE[0]


def _decode(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (int64) and float32 values of keys."""
    rows = (_ROW_MASK - (keys & np.uint64(_ROW_MASK))).astype(np.int64)
    code = (keys >> np.uint64(32)).astype(np.int64) - _SHIFT
    bits = np.where(code >= 0, code, (-code) | 0x80000000).astype(np.uint32)
    values = bits.view(np.float32).copy()
    values[code == _NAN_CODE] = np.nan
    return rows, values


# --------------------------------------------------------------------------- streaming


class TopKExemplars:
    """Per unit, the k largest responses seen so far and their rows, updated chunk by chunk.

    ``update(offset, chunk)``: rows ``offset .. offset + b - 1`` of the (sentences, units)
    responses, any b (also < k or 0), chunks in any order, no row twice. ``result()``: indices
    (units, k) int64 and values (units, k) float32, each row sorted best first (see the module
    docstring for ties and NaN). Memory: a (units, k) uint64 buffer (``buffer``) plus, during an
    update, at most (units, k + b) keys; ``peak_width`` records the widest (<= k + b)."""

    def __init__(self, units: int, k: int):
        for name, v in (("units", units), ("k", k)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InvalidInput(name, f"must be an integer >= 1, got {v!r}")
        self.units, self.k = int(units), int(k)
        self._buf = np.zeros((self.units, self.k), np.uint64)  # column 0 holds each row's minimum
        self._starts: list[int] = []  # disjoint [start, end) row intervals seen, sorted, merged
        self._ends: list[int] = []
        self.rows_seen = 0
        self.peak_width = self.k

    @property
    def buffer(self) -> np.ndarray:
        """The (units, k) keys held between updates (read-only view)."""
        view = self._buf.view()
        view.flags.writeable = False
        return view

    def _claim(self, offset: int, b: int) -> None:
        """Record rows [offset, offset + b); reject rows out of range or seen before."""
        end = offset + b
        if offset < 0 or end > _ROWS:
            raise InvalidInput("offset", f"rows {offset}..{end - 1} outside [0, 2**32)")
        i = bisect.bisect_right(self._starts, offset)
        if (i and self._ends[i - 1] > offset) or (i < len(self._starts) and self._starts[i] < end):
            raise InvalidInput("offset", f"rows {offset}..{end - 1} overlap rows already given")
        if i and self._ends[i - 1] == offset:  # merge with the interval before
            i -= 1
            self._ends[i] = end
        else:
            self._starts.insert(i, offset)
            self._ends.insert(i, end)
        if i + 1 < len(self._starts) and self._starts[i + 1] == end:  # and with the one after
            self._ends[i] = self._ends.pop(i + 1)
            self._starts.pop(i + 1)

    def update(self, offset: int, chunk) -> None:
        """Add rows ``offset .. offset + len(chunk) - 1`` (chunk: (b, units), any float/int dtype
        whose values float32 holds exactly; float16 responses as stored)."""
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
            raise InvalidInput("offset", f"must be an integer row index, got {offset!r}")
        x = _as_values(chunk, self.units, widen=False)
        b = x.shape[0]
        offset = int(offset)
        self._claim(offset, b)
        self.rows_seen += b
        if b == 0:
            return
        code = _codes(x)
        top = self._buf[:, 0]  # each unit's current k-th key (0 while a slot is empty)
        thr_code = ((top >> np.uint64(32)).astype(np.int64) - _SHIFT).astype(np.int32)
        thr_row = (_ROW_MASK - (top & np.uint64(_ROW_MASK))).astype(np.int64)
        mask = code > thr_code
        tie = code == thr_code
        if tie.any():  # equal value: a lower row beats the k-th
            tie &= (np.arange(offset, offset + b, dtype=np.int64)[:, None] < thr_row)
            mask |= tie
        del tie
        n_cand = int(np.count_nonzero(mask))
        if n_cand == 0:
            return
        rows = (_ROW_MASK - offset - np.arange(b, dtype=np.int64)).astype(np.uint64)
        if 4 * n_cand > mask.size:  # most entries compete (the first chunks): take them all
            del mask
            width = b
            work = np.empty((self.units, self.k + b), np.uint64)
            work[:, : self.k] = self._buf
            tail = work[:, self.k :]
            np.add(code.T, np.int64(_SHIFT), out=tail, casting="unsafe")  # int64 sum >= 1
            np.left_shift(tail, np.uint64(32), out=tail)
            np.bitwise_or(tail, rows, out=tail)
            del code, tail
            self.peak_width = max(self.peak_width, self.k + width)
            work.partition(width, axis=1)  # the k largest keys end up at [width:], their minimum first
            self._buf = np.ascontiguousarray(work[:, width:])
            return
        flat = np.flatnonzero(mask)  # row-major: contiguous, fast
        del mask
        rj, uj = np.divmod(flat, self.units)
        by_unit = np.argsort(uj)  # group the candidates unit by unit (order within a unit is free)
        rj, uj = rj[by_unit], uj[by_unit]
        del flat, by_unit
        counts = np.bincount(uj, minlength=self.units)
        width = int(counts.max())
        keys = (code[rj, uj].astype(np.int64) + _SHIFT).astype(np.uint64) << np.uint64(32)
        keys |= rows[rj]
        del code
        active = np.flatnonzero(counts)
        if active.size == self.units:
            local, buf = uj, self._buf
        else:  # only the units with a candidate take part
            local = np.cumsum(counts > 0)[uj] - 1
            buf = self._buf[active]
        starts = np.cumsum(counts[active]) - counts[active]
        slot = np.arange(uj.size) - starts[local]
        work = np.zeros((active.size, self.k + width), np.uint64)  # 0: empty, below every key
        work[:, : self.k] = buf
        work[local, self.k + slot] = keys
        del keys, slot, local, uj, rj
        self.peak_width = max(self.peak_width, self.k + width)
        work.partition(width, axis=1)  # the k largest keys end up at [width:], their minimum first
        if active.size == self.units:
            self._buf = np.ascontiguousarray(work[:, width:])
        else:
            self._buf[active] = work[:, width:]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices (units, k) int64, values (units, k) float32), each unit's best first."""
        if self.rows_seen < self.k:
            raise InvalidInput("k", f"{self.k} exemplars per unit asked, but only {self.rows_seen} rows were given")
        keys = np.sort(self._buf, axis=1)[:, ::-1]
        return _decode(keys)

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """What ``result`` gives, also with fewer than k rows seen: (indices, values), each
        (units, min(k, rows_seen)), best first. Candidates of disjoint rows merge exactly
        (``merge_candidates``)."""
        keys = np.sort(self._buf, axis=1)[:, ::-1][:, : min(self.k, self.rows_seen)]
        return _decode(keys)


# --------------------------------------------------------------------------- merging


def _encode(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The keys of (row, value) pairs (``_decode`` inverts it for values it produced)."""
    return ((_codes(values).astype(np.int64) + _SHIFT).astype(np.uint64) << np.uint64(32)) | (
        _ROW_MASK - rows).astype(np.uint64)


def merge_candidates(parts: Iterable[tuple[np.ndarray, np.ndarray]], k: int,
                     slab: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The k best of the union of ``parts``: (indices (units, m_i) int64, values (units, m_i)
    float32) per part, e.g. ``TopKExemplars.candidates`` of trackers fed disjoint rows, each part's
    rows in one shared numbering. The order is the tracker's (larger value first, then the lower
    row; NaN last), so merging the candidates of disjoint chunks gives what one tracker fed every
    chunk gives, in any order of the parts. Needs at least k candidates per unit in all, and no
    row twice for a unit (disjoint parts). ``slab`` units at a time bound the temporaries."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInput("k", f"must be an integer >= 1, got {k!r}")
    keys = None
    for i, (rows, values) in enumerate(parts):
        rows, values = np.asarray(rows), np.asarray(values)
        if (rows.ndim != 2 or rows.shape != values.shape or rows.dtype.kind not in "iu"
                or values.dtype not in (np.float16, np.float32)):
            raise InvalidInput(f"parts.{i}", f"need integer rows and float32 values of one (units, m) shape, got "
                                             f"{rows.dtype} {rows.shape} and {values.dtype} {values.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= _ROWS):
            raise InvalidInput(f"parts.{i}", "rows outside [0, 2**32)")
        if keys is not None and rows.shape[0] != keys.shape[0]:
            raise InvalidInput(f"parts.{i}", f"has {rows.shape[0]} units, expected {keys.shape[0]}")
        if keys is None:
            keys = np.zeros((rows.shape[0], 0), np.uint64)
        merged = np.empty((keys.shape[0], min(k, keys.shape[1] + rows.shape[1])), np.uint64)
        for s in range(0, keys.shape[0], slab):
            both = np.concatenate([keys[s:s + slab], _encode(rows[s:s + slab], values[s:s + slab])], axis=1)
            width = both.shape[1] - merged.shape[1]
            if width > 0:
                both.partition(width, axis=1)  # the k largest keys at [width:]
            merged[s:s + slab] = np.sort(both[:, width:], axis=1)[:, ::-1]
        if (merged.shape[1] > 1 and (merged[:, 1:] == merged[:, :-1]).any()):
            raise InvalidInput(f"parts.{i}", "the same (row, value) comes twice for a unit: the parts overlap")
        keys = merged
    if keys is None or keys.shape[1] < k:
        raise InvalidInput("k", f"{k} exemplars per unit asked, but the parts hold {0 if keys is None else keys.shape[1]}")
    return _decode(keys)


# --------------------------------------------------------------------------- reference and helpers


def dense_topk(matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: full (n, U) matrix, stable argsort of -values along the sentences.

    Returns (indices (U, k) int64, values (U, k) float32), same order and tie rule as
    ``TopKExemplars`` (NaN last: numpy sorts NaN to the end, stably)."""
    x = np.asarray(matrix)
    if x.dtype not in (np.float16, np.float32):
        x = _as_values(x, None, "matrix")
    elif x.ndim != 2:
        raise InvalidInput("matrix", f"must be a (rows, units) array, got shape {x.shape}")
    if not 1 <= k <= x.shape[0]:
        raise InvalidInput("k", f"must be in [1, {x.shape[0]}], got {k}")
    order = np.argsort(-x, axis=0, kind="stable")[:k]  # -x: one copy in the input dtype
    values = np.take_along_axis(x, order, axis=0).astype(np.float32) + np.float32(0.0)  # -0.0 -> +0.0
    return np.ascontiguousarray(order.T).astype(np.int64), np.ascontiguousarray(values.T)


def row_chunks(matrix, rows: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
    """(offset, matrix[offset:offset + rows]) over an (n, U) array, e.g. ``np.load(p, mmap_mode="r")``."""
    if rows < 1:
        raise InvalidInput("rows", f"must be >= 1, got {rows}")
    for start in range(0, matrix.shape[0], rows):
        yield start, matrix[start : start + rows]


def top_exemplars(
    chunks: Iterable[tuple[int, np.ndarray]], n_sentences: int, top_percent: float = 1.0, *, units: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's top ``top_percent``% of ``n_sentences`` rows, in one pass over ``chunks``.

    ``units`` defaults to the first chunk's width. Checks that exactly ``n_sentences`` rows came."""
    k = n_exemplars(n_sentences, top_percent)
    topk = None if units is None else TopKExemplars(units, k)
    for offset, chunk in chunks:
        if topk is None:
            chunk = _as_values(chunk, None)
            topk = TopKExemplars(chunk.shape[1], k)
        topk.update(offset, chunk)
        if topk.rows_seen > n_sentences:
            raise InvalidInput("chunks", f"more than n_sentences={n_sentences} rows given")
    if topk is None or topk.rows_seen != n_sentences:
        raise InvalidInput("chunks", f"{0 if topk is None else topk.rows_seen} rows given, expected {n_sentences}")
    return topk.result()
