"""Expert units for concepts (docs/methods.md#a2): the AP of every unit at once.

``average_precision`` equals ``sklearn.metrics.average_precision_score`` column by column, ties
included. sklearn's sum over distinct thresholds, (R_t - R_prev) * P_t, regroups as
``(1/P) * sum over distinct values v held by positives of npos(v) * tp(>= v) / all(>= v)``.

No argsort and no loop over units: each unit's responses become exact integer keys
``2 * code(value) + is_negative`` (``code``: an order-preserving integer image of the float with
``-0.0 == +0.0``; 32-bit keys when they fit, else 64-bit; a float64 chunk spanning almost all
magnitudes falls back to dense ranks), sorted per unit with numpy's SIMD sort. Within a run of equal values the
positives then come first, so the positive that opens a value's run sits at position
``#all < v`` and is preceded by ``#pos < v`` positives: both counts are read off the sorted keys.
The work goes in L2-sized chunks of units (transpose, encode, sort, count), optionally over
threads (numpy releases the GIL), reusing buffers: fresh large temporaries cost page faults.
``bench/bench_ap.py`` measures it against sklearn and a bare ``np.sort``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import ConceptExperts, ConceptSpec, ExpertUnit

__all__ = ["average_precision", "ap_matrix", "concept_experts"]

_CHUNK_ELEMS = 1 << 17  # units per chunk x sentences: 0.5 MiB of 32-bit keys, fits in L2
_BLOCK = 64  # sentences per transposed block
_INT = {4: (np.int32, np.uint32, 0x7F800000), 8: (np.int64, np.uint64, 0x7FF0000000000000)}


# --------------------------------------------------------------------------- inputs


def _as_scores(scores) -> np.ndarray:
    """(n, U) native float32 or float64 array holding exactly the input values."""
    if hasattr(scores, "detach"):  # torch tensor; bfloat16/float16 widen exactly to float32
        t = scores.detach().cpu()
        scores = (t.float() if t.is_floating_point() and t.element_size() < 4 else t).numpy()
    x = np.asarray(scores)
    if x.ndim != 2 or x.dtype.kind not in "biuf":
        raise InvalidInput("scores", f"must be a numeric (sentences, units) matrix, got {x.dtype} {x.shape}")
    # float16 -> float32 is exact; bool/int -> float64 is exact below 2**53 (long double is rounded)
    x = x.astype(np.float32 if x.dtype.kind == "f" and x.dtype.itemsize <= 4 else np.float64, copy=False)
    if x.dtype == np.float64:
        with np.errstate(over="ignore"):
            narrow = x.astype(np.float32)
        if np.array_equal(narrow, x):  # exact in float32: narrower keys, no rank fallback
            x = narrow
    return x


def _as_labels(labels, n: int) -> np.ndarray:
    """(n,) bool labels with at least one positive and one negative."""
    y = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise InvalidInput("labels", f"must have shape ({n},) to match scores, got {y.shape}")
    if y.dtype != bool:
        if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
            raise InvalidInput("labels", "must be bool or 0/1")
        y = y.astype(bool)
    n_pos = int(y.sum())
    if n_pos in (0, n):
        raise InvalidInput("labels", f"no {'positives' if n_pos == 0 else 'negatives'}: AP is undefined")
    return y


# --------------------------------------------------------------------------- the kernel


class _Work:
    """Buffers one thread reuses from chunk to chunk (fresh large temporaries cost page faults)."""

    def __init__(self, rows: int, n: int, n_pos: int, sint):
        self.bits = np.empty((rows, n), sint)
        self.tmp = np.empty((rows, n), sint)
        self.mask = np.empty((rows, n), bool)
        self.pkey = np.empty(rows * n_pos, sint)
        self.first = np.empty(rows * n_pos, bool)
        self.ratio = np.empty((rows, n_pos))
        self.i1, self.i2, self.i3 = (np.empty(rows * n_pos, np.intp) for _ in range(3))
        self.tp = np.arange(n_pos, 0, -1, dtype=np.float64)  # positives at or above the e-th


def _keys(bits: np.ndarray, neg: np.ndarray, j0: int, tmp: np.ndarray) -> np.ndarray:
    """Sortable unsigned keys 2*code+is_negative for a (c, n) block of float bit patterns.

    ``bits`` is overwritten. Raises on NaN (``j0`` numbers the block's first unit)."""
    sint, uint, inf = _INT[bits.itemsize]
    lo, hi = bits.min(), bits.max()
    if lo >= 0 and hi <= inf:  # common case: no negative values, no -0.0, no NaN
        key = np.left_shift(bits, 1, out=bits).view(uint)
        return np.bitwise_or(key, neg.astype(uint), out=key)
    sign = np.right_shift(bits, 8 * bits.itemsize - 1, out=tmp)  # -1 for negatives and -0.0
    mag = np.bitwise_and(bits, np.iinfo(sint).max, out=bits)
    top = int(mag.max())
    if top > inf:
        raise InvalidInput("scores", f"contains NaN (unit {j0 + int(np.argmax((mag > inf).any(axis=1)))})")
    mag -= 1  # squeeze out the magnitudes no value uses: 0 stays 0, the smallest non-zero one -> 1
    low = int(mag.view(uint).min())  # smallest non-zero magnitude - 1 (0 became the largest unsigned)
    top = top - low if low != np.iinfo(uint).max else 0  # largest squeezed magnitude
    mag -= sint(low - 1 if top else -1)
    np.maximum(mag, 0, out=mag)
    code = np.subtract(np.bitwise_xor(mag, sign, out=mag), sign, out=mag)  # in [-top, top], -0.0 == +0.0
    if bits.itemsize == 4 and top >= 1 << 30:  # 2*(2*top)+1 needs 33 bits: use 64-bit keys
        code, uint = code.astype(np.int64), np.uint64
    elif bits.itemsize == 8 and top >= 1 << 62:  # float64 spanning ~all magnitudes:
        perm = np.argsort(code, axis=1)  # dense ranks instead (rare, slower)
        srt = np.take_along_axis(code, perm, axis=1)
        rank = np.zeros(code.shape, np.int64)
        np.cumsum(srt[:, 1:] != srt[:, :-1], axis=1, out=rank[:, 1:])
        np.put_along_axis(code, perm, rank, axis=1)
        top = 0
    key = np.add(code.view(uint), uint(top), out=code.view(uint))  # now in [0, 2*top]
    return np.bitwise_or(np.left_shift(key, 1, out=key), neg.astype(uint), out=key)


def _ap_sorted(key: np.ndarray, ws: _Work) -> np.ndarray:
    """AP per row of sorted keys (c, n), where positives have even keys and lead every tie.

    With e = #positives before a positive and k its position, a positive that opens its value's
    run of ties has tp = P - e positives and tot = n - k units at or above its value; the others
    in the run take the counts of the one that opens it."""
    c, n = key.shape
    n_pos = ws.tp.size
    size = c * n_pos
    same = key.itemsize == ws.tmp.itemsize
    odd = np.bitwise_and(key, 1, out=ws.tmp[:c].view(key.dtype) if same else None)
    mask = np.equal(odd, 0, out=ws.mask[:c])
    kpos = np.flatnonzero(mask)  # r*n + k of every positive, row by row, in order
    pkey = np.take(key.ravel(), kpos, out=ws.pkey[:size].view(key.dtype) if same else None, mode="clip")
    first = ws.first[:size]  # opens a run of tied positives (index r*P + e)
    np.not_equal(pkey[1:], pkey[:-1], out=first[1:])
    first[::n_pos] = True
    n_tied = size - np.count_nonzero(first)
    if 16 * n_tied > size:  # many ties: one term per distinct value (buffers: no page faults)
        e = np.flatnonzero(first)  # r*P + #pos < v, once per distinct positive value v
        g = e.size
        npos, r1, at = ws.i1[:g], ws.i2[:g], ws.i3[:g]
        np.subtract(e[1:], e[:-1], out=npos[:-1])  # positives with value v
        npos[-1] = size - e[-1]
        np.floor_divide(e, n_pos, out=r1)
        r1 += 1
        np.take(kpos, e, out=at, mode="clip")
        w = np.multiply(r1, n, out=ws.ratio.ravel()[:g])
        w -= at  # all >= v
        np.multiply(r1, n_pos, out=r1)
        r1 -= e  # positives >= v
        np.divide(r1, w, out=w)
        w *= npos
        return np.add.reduceat(w, np.searchsorted(e, np.arange(c) * n_pos)) / n_pos
    rowend = np.arange(n, (c + 1) * n, n, dtype=np.float64)[:, None]
    ratio = np.subtract(rowend, kpos.reshape(c, n_pos), out=ws.ratio[:c])
    np.divide(ws.tp, ratio, out=ratio)
    total = ratio.sum(axis=1)
    if n_tied:  # a few ties: their terms become those of the positive opening their run
        tied = np.flatnonzero(~first)
        block = np.ones(n_tied, bool)  # consecutive tied positives share one opener
        np.not_equal(np.diff(tied), 1, out=block[1:])
        starts = np.flatnonzero(block)
        opener = tied[starts].repeat(np.diff(starts, append=n_tied)) - 1
        fix = ratio.ravel()[opener] - ratio.ravel()[tied]
        total += np.bincount(tied // n_pos, fix, minlength=c)
    return total / n_pos


def _ap_chunks(x: np.ndarray, neg: np.ndarray, n_pos: int, out: np.ndarray, todo) -> None:
    """Write the AP of the units in each (j0, j1) range of ``todo`` into ``out``."""
    n = x.shape[0]
    sint = _INT[x.itemsize][0]
    xb = x.view(sint)
    ws = None
    for j0, j1 in todo:
        c = j1 - j0
        ws = ws or _Work(c, n, n_pos, sint)
        bits = ws.bits[:c]
        for k in range(0, n, _BLOCK):  # blocked transpose: each unit's responses become one row
            bits[:, k : k + _BLOCK] = xb[k : k + _BLOCK, j0:j1].T
        key = _keys(bits, neg, j0, ws.tmp[:c])
        key.sort(axis=1)
        out[j0:j1] = _ap_sorted(key, ws)


def average_precision(scores, labels, *, threads: int | None = None) -> np.ndarray:
    """AP of every column of ``scores`` (n, U) for binary ``labels`` (n,): float64 (U,).

    Equals ``sklearn.metrics.average_precision_score(labels, scores[:, j])`` for every j, ties
    included, computed on the exact input values (float16 widens exactly). Accepts numpy arrays
    or torch tensors. ``threads``: threads sharing the chunks of units (default 1: on the 2-vCPU
    development machine a second thread gave no speed-up, see ``bench/bench_ap.py``).
    """
    x = _as_scores(scores)
    y = _as_labels(labels, x.shape[0])
    n, n_units = x.shape
    out = np.empty(n_units, np.float64)
    step = max(1, min(n_units, _CHUNK_ELEMS // n))
    todo = [(j, min(j + step, n_units)) for j in range(0, n_units, step)]
    threads = max(1, min(len(todo), threads or 1))
    args = (x, (~y).view(np.uint8), int(y.sum()), out)
    if threads == 1:
        _ap_chunks(*args, todo)
    else:
        with ThreadPoolExecutor(threads) as pool:
            for f in [pool.submit(_ap_chunks, *args, todo[t::threads]) for t in range(threads)]:
                f.result()
    return out


# --------------------------------------------------------------------------- per concept


def ap_matrix(
    responses: Mapping[int, object], groups: Mapping[str, tuple[object, object]], *, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP of every unit of every layer for every group of rows (one group per concept).

    ``responses``: layer -> (n, U_l) responses; ``groups``: name -> (row indices (k,), labels (k,)).
    Returns ``unit_layers`` (U,), ``unit_index`` (U,) and ``ap`` (U, len(groups)), layers in sorted
    order, columns in the order of ``groups``."""
    layers = sorted(responses)
    mats = [_as_scores(responses[layer]) for layer in layers]
    if len({m.shape[0] for m in mats}) > 1:
        raise InvalidInput("responses", "every layer must have the same number of sentences (rows)")
    sizes = [m.shape[1] for m in mats]
    unit_layers = np.repeat(np.array(layers, np.int64), sizes)
    unit_index = np.concatenate([np.arange(size, dtype=np.int64) for size in sizes] or [np.zeros(0, np.int64)])
    ap = np.empty((unit_layers.size, len(groups)))
    for g, (name, (rows, labels)) in enumerate(groups.items()):
        rows = np.asarray(rows.detach().cpu() if hasattr(rows, "detach") else rows)
        n = mats[0].shape[0] if mats else 0
        if rows.ndim != 1 or rows.dtype.kind not in "iu" or not np.all((rows >= 0) & (rows < n)):
            raise InvalidInput(f"groups[{name}]", f"rows must be a 1-D array of row indices in [0, {n})")
        try:
            ap[:, g] = np.concatenate([average_precision(m[rows], labels, threads=threads) for m in mats] or [[]])
        except InvalidInput as err:
            raise InvalidInput(f"groups[{name}].{err.field}", err.message) from None
    return unit_layers, unit_index, ap


def concept_experts(
    concept: ConceptSpec, ap, unit_layers, unit_index, layers: Sequence[int], *, tau: float, top_n: int, n_pos: int, n_neg: int
) -> ConceptExperts:
    """Experts (AP >= tau, best first; ties by layer, then unit), counts per layer, top-N units."""
    if not 0.0 < tau <= 1.0:  # also rejects NaN
        raise InvalidInput("tau", f"must be in (0, 1], got {tau}")
    if top_n < 1:
        raise InvalidInput("top_n", f"must be >= 1, got {top_n}")
    ap, unit_layers, unit_index = (np.asarray(a).ravel() for a in (ap, unit_layers, unit_index))
    if not ap.size == unit_layers.size == unit_index.size:
        raise InvalidInput("ap", f"{ap.size} APs for {unit_layers.size} layers and {unit_index.size} units")
    if np.isnan(ap).any():
        raise InvalidInput("ap", "contains NaN")
    unknown = set(unit_layers.tolist()) - set(layers)
    if unknown:
        raise InvalidInput("layers", f"units come from layers {sorted(unknown)} that are not listed")
    order = np.lexsort((unit_index, unit_layers, -ap))  # AP descending, then layer, then unit

    def units(idx) -> tuple[ExpertUnit, ...]:
        return tuple(ExpertUnit(layer=int(unit_layers[i]), unit=int(unit_index[i]), ap=float(ap[i])) for i in idx)

    experts = order[: np.count_nonzero(ap >= tau)]
    counts = dict.fromkeys((int(layer) for layer in layers), 0)
    counts.update(zip(*(v.tolist() for v in np.unique(unit_layers[experts], return_counts=True))))
    return ConceptExperts(concept=concept.name, category=concept.category, n_pos=n_pos, n_neg=n_neg,
                          experts=units(experts), counts_per_layer=counts, top=units(order[:top_n]))
