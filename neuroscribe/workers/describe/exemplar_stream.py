"""Exemplars straight from the model (docs/methods.md#b3): responses are captured window by
window and folded into streaming top-k% trackers, so the sentences x units matrix never exists.

Memory: one window of responses (``window`` sentences x units of the chosen layers, float16; 2,048
x 9,216 is 38 MB) plus, per tracker, a (units, k) buffer. The split-half consistency (B.5) needs
exemplars chosen *within* each half, so the same pass feeds one tracker per half: a half's rows are
sorted, so the rows of one window that belong to it are consecutive in the half's own numbering.

The result holds global row indices (rows of ``texts``) for the whole dataset and for each half.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations import SubjectModel, capture_responses
from neuroscribe.workers.activations.capture import check_layers
from neuroscribe.workers.describe.exemplars import TopKExemplars, n_exemplars

__all__ = ["StreamedExemplars", "stream_exemplars"]


@dataclass
class StreamedExemplars:
    """Exemplar rows (global) and responses per unit; units are layer-major: unit u of the
    concatenation is ``(layers[u // units_per_layer], u % units_per_layer)``."""

    layers: list[int]
    units_per_layer: int
    k: int
    rows: np.ndarray  # (U, k) int64
    values: np.ndarray  # (U, k) float32
    halves: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # per half: (rows, values)
    n_saturated: int = 0

    @property
    def n_units(self) -> int:
        return self.rows.shape[0]


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
                     window: int = 2048, progress: bool = True) -> StreamedExemplars:
    """Top ``top_percent``% sentences of every unit of ``layers`` (all by default), over all of
    ``texts`` and, for each of ``halves`` (sorted row arrays), over that half's rows."""
    n = len(texts)
    k = n_exemplars(n, top_percent)
    halves = _check_halves(halves, n)
    half_k = [n_exemplars(len(h), top_percent) for h in halves]
    chosen = check_layers(layers, subject.n_layers)
    if int(window) < 1:
        raise InvalidInput("window", f"must be >= 1, got {window}")
    window = int(window)
    member = [np.zeros(n, bool) for _ in halves]
    for m, h in zip(member, halves):
        m[h] = True
    full = halves_t = None
    units_per_layer = 0
    saturated = 0
    with tqdm(total=n, desc="exemplars", unit="sent", disable=not progress) as bar:
        for start in range(0, n, window):
            stop = min(start + window, n)
            resp = capture_responses(subject, list(texts[start:stop]), site=site, pooling=pooling, layers=chosen,
                                     batch_size=batch_size, max_length=max_length, progress=False)
            saturated += resp.meta.n_saturated
            chunk = resp.matrix(chosen)
            del resp
            if full is None:
                units_per_layer = chunk.shape[1] // len(chosen)
                full = TopKExemplars(chunk.shape[1], k)
                halves_t = [TopKExemplars(chunk.shape[1], hk) for hk in half_k]
            full.update(start, chunk)
            for h, m, t in zip(halves, member, halves_t):
                sel = m[start:stop]
                if sel.any():  # the half's own numbering of its first row in this window
                    t.update(int(np.searchsorted(h, start)), chunk[sel])
            del chunk
            bar.update(stop - start)
    rows, values = full.result()
    out_halves = []
    for h, t in zip(halves, halves_t):
        local, vals = t.result()
        out_halves.append((h[local], vals))
    return StreamedExemplars(layers=chosen, units_per_layer=units_per_layer, k=k, rows=rows, values=values,
                             halves=out_halves, n_saturated=saturated)
