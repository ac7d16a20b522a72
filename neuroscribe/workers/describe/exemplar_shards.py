"""The describe job's exemplars pass split into shards of sentences, run anywhere, merged exactly
(issue 17, part 2). The merge equals ``stream_exemplars`` over every row with the same options,
``np.array_equal`` on every array: exemplars and their values per set, the firing statistics,
the mean and display histogram, the kept validation half, the saturation count.

The API, in the order a sharded stage calls it::

    ranges = shard_ranges(len(texts), n_shards, window=window)       # fixed ids: 0 .. len(ranges) - 1
    # shard i, on any worker (any order, retried at will: the same range gives the same shard):
    shard = partial_exemplars(subject, texts, ranges[i], top_percent=..., halves=..., site=..., pooling=...,
                              layers=..., batch_size=..., max_length=..., window=window, rule=...,
                              keep_half=...)                          # stream_exemplars' options
    shard.save(folder_i)                                              # exemplar_shard.npz + .json
    # the reduce step, once every shard committed:
    ex = merge_exemplar_shards([folder_0, folder_1, ...])             # or ExemplarShard objects
    # ex is a StreamedExemplars: build the ExemplarsArtefact from it as exemplars_stage does

How it stays exact:

* **Whole-dataset decisions in every shard.** A shard is given ALL of ``texts`` and captures only
  its range: the distinct sentences (``text_key`` first occurrences), k per set and the halves'
  distinct rows are decided on the whole dataset, so a sentence whose first occurrence is in
  another shard is skipped here too. Rows are global everywhere.
* **The same batches.** ``capture_responses`` sorts a window's sentences by length into batches,
  and a batch's padding can change the last bits of a response; so ranges start on multiples of
  ``window`` (and end on one, or at the end), and a shard captures the very windows -- hence
  batches -- of the one-pass run. ``shard_ranges`` makes such ranges; ``partial_exemplars``
  refuses others. (Bit-identity also assumes the same model dtype, device kind and library
  versions on every worker; each shard records its ``environment``.)
* **Mergeable state.** Per set the min(k, rows seen) best candidates (global rows, values) -- the
  top k of a union is the top k of the parts' top k under the trackers' total order (value
  descending, the lower row first on ties, -0.0 == +0.0, NaN last: ``exemplars``); histogram counts
  add; sums are fixed-point, exact in any order (``unit_summary.UnitMoments``); the firing rule, the
  maxima and the display histogram are applied only to the merged state.
* **Refusals.** ``merge_exemplar_shards`` refuses shards of different jobs or options (every
  option, the sentences' and halves' sha256, the model and its weights: ``ExemplarShard.job``),
  different units, overlapping or missing rows, and malformed shard files, with an
  ``InvalidInput`` on field ``shards`` naming the shard and what differs.

Cost: a shard is its (units x k) candidates per set, the histogram (8 KB per unit before
compression) and its rows of the kept half; the merge is linear in units x k per shard plus the
histogram sums (``bench/bench_shards.py``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations import SubjectModel
from neuroscribe.workers.describe.exemplar_state import ExemplarShard, StreamedExemplars, merge_shards
from neuroscribe.workers.describe.exemplar_stream import WINDOW, accumulate_exemplars, plan_exemplars

__all__ = ["shard_ranges", "partial_exemplars", "merge_exemplar_shards", "ExemplarShard"]


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInput(name, f"must be an integer >= 1, got {value!r}")
    return int(value)


def shard_ranges(n_rows: int, n_shards: int | None = None, *, rows_per_shard: int | None = None,
                 window: int = WINDOW) -> list[range]:
    """Fixed, contiguous ranges covering rows 0 .. n_rows - 1, each a whole number of windows
    (the last may end short, at n_rows): ``n_shards`` as even as windows allow, or
    ``rows_per_shard`` rows each (rounded up to whole windows). Never an empty range: with fewer
    windows than ``n_shards``, one range per window."""
    n_rows, window = _positive("n_rows", n_rows), _positive("window", window)
    if (n_shards is None) == (rows_per_shard is None):
        raise InvalidInput("n_shards", "give exactly one of n_shards and rows_per_shard")
    n_windows = math.ceil(n_rows / window)
    if n_shards is not None:
        count = min(_positive("n_shards", n_shards), n_windows)
        base, extra = divmod(n_windows, count)
        sizes = [base + (i < extra) for i in range(count)]
    else:
        per = math.ceil(_positive("rows_per_shard", rows_per_shard) / window)
        sizes = [per] * (n_windows // per) + ([n_windows % per] if n_windows % per else [])
    out, at = [], 0
    for size in sizes:
        out.append(range(at * window, min(n_rows, (at + size) * window)))
        at += size
    return out


def _as_range(rows, n: int, window: int) -> range:
    """``rows`` (a range of step 1 or (start, stop)) checked: non-empty, in [0, n), on window edges."""
    if isinstance(rows, range):
        start, stop, step = rows.start, rows.stop, rows.step
    elif isinstance(rows, (tuple, list)) and len(rows) == 2:
        (start, stop), step = rows, 1
    else:
        raise InvalidInput("rows", f"must be a range or a (start, stop) pair, got {rows!r}")
    if step != 1 or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in (start, stop)):
        raise InvalidInput("rows", f"must be integer rows start..stop with step 1, got {rows!r}")
    start, stop = int(start), int(stop)
    if not 0 <= start < stop <= n:
        raise InvalidInput("rows", f"rows {start}..{stop - 1} are not a non-empty range of the {n} rows")
    if start % window or (stop % window and stop != n):
        raise InvalidInput("rows", f"rows {start}..{stop - 1} must start and end on a window boundary (a multiple of "
                                   f"window={window}, or the end, {n}) so that they are captured in the batches of "
                                   "the unsharded pass; use shard_ranges")
    return range(start, stop)


def partial_exemplars(subject: SubjectModel, texts: Sequence[str], rows, *, top_percent: float = 1.0,
                      halves: Sequence[np.ndarray] = (), site: str = "mlp_post", pooling: str = "cls",
                      layers: Sequence[int] | None = None, batch_size: int = 32, max_length: int = 128,
                      window: int = WINDOW, rule: str | None = None, keep_half: int | None = None,
                      progress: bool = True) -> ExemplarShard:
    """The mergeable state of ``rows`` (a range from ``shard_ranges``, or (start, stop)) of the pass
    ``stream_exemplars(subject, texts, **options)`` makes over every row: ``texts`` in full (for
    the distinct sentences), only ``rows`` captured. Options as ``stream_exemplars``'s."""
    plan = plan_exemplars(subject, texts, top_percent=top_percent, halves=halves, site=site, pooling=pooling,
                          layers=layers, batch_size=batch_size, max_length=max_length, window=window, rule=rule,
                          keep_half=keep_half)
    return accumulate_exemplars(subject, texts, plan, _as_range(rows, len(texts), plan.window), progress=progress)


def merge_exemplar_shards(shards: Sequence) -> StreamedExemplars:
    """The one-pass result from every shard of one pass: ``ExemplarShard`` objects or folders they
    were saved to (read one at a time), in any order. Refuses (``InvalidInput``, field
    ``shards``) shards of other jobs or options, other units, overlapping or missing rows."""
    return merge_shards(shards)
