"""The describe job's exemplars pass as a state that rows are folded into and that merges exactly
(docs/methods.md#b3): the engine under ``exemplar_stream.stream_exemplars`` (one state over every
row) and ``exemplar_shards`` (one state per shard of rows, merged in any order).

* ``ExemplarPlan``: what the whole dataset fixes before any row is captured -- the distinct rows of
  the dataset and of each half (``text_key`` first occurrences over ALL the rows), k per set, the
  layers, the firing rule, the capture options, and ``job``: the JSON that every shard of one job
  carries identically (options, the sha256 of the sentences and of the halves, the model).
* ``ExemplarAccumulator``: windows of responses (global row offset, float16 (b, units)) folded
  into per-set ``TopKExemplars`` trackers, the fixed ``ResponseHistogram``, exact ``UnitMoments``
  and the kept half's block of responses; ``shard()`` exports them as an ``ExemplarShard``.
* ``ExemplarShard``: per set its candidates (global rows and values, best first, min(k, rows of the
  set seen) of them), the histogram counts, the moments, the saturation count, the kept half's
  responses of its rows. ``save`` / ``load``: ``exemplar_shard.npz`` (deflated, no pickle) and
  ``exemplar_shard.json``.
* ``merge_shards``: checks that the shards are of one job and tile the rows exactly, adds counts and
  sums, merges the candidates in the trackers' total order (``exemplars.merge_candidates``), and
  only then applies the firing rule, takes maxima and builds the summary (``finalize``).

Every merged quantity is an exact function of the set of rows (top-k by a total order, integer
counts, fixed-point sums, minima), so the merge equals the one-pass result array for array.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.describe.exemplars import TopKExemplars, merge_candidates
from neuroscribe.workers.describe.response_histogram import (FIRING_RULES, FiringStats, ResponseHistogram,
                                                             bin_ceilings)
from neuroscribe.workers.describe.unit_summary import UnitMoments, UnitSummary

__all__ = ["ExemplarPlan", "ExemplarAccumulator", "ExemplarShard", "StreamedExemplars", "merge_shards", "FORMAT"]

FORMAT = 1  # of the saved shard
_NPZ, _JSON = "exemplar_shard.npz", "exemplar_shard.json"


def _savez_fast(path: Path, arrays: dict) -> None:
    """An ``.npz`` (``np.load`` reads it) deflated at level 1: at MiniLM's 9,216 units the default level 6
    of ``np.savez_compressed`` took 3.3 s of a 2,048-sentence shard's 9.4 s, level 1 a fraction of it."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)


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


@dataclass(frozen=True)
class ExemplarPlan:
    """The whole dataset's decisions (module docstring); ``exemplar_stream.plan_exemplars`` makes it."""

    sets: tuple[np.ndarray, ...]  # distinct rows (sorted, global): the dataset's, then each half's
    ks: tuple[int, ...]  # exemplars per set
    halves: tuple[np.ndarray, ...]
    keep_half: int | None
    layers: tuple[int, ...]
    rule: str
    window: int
    job: dict  # JSON, identical in every shard of one job

    @property
    def n_rows(self) -> int:
        return int(self.job["n_rows"])


class ExemplarAccumulator:
    """Windows of rows in ``rows`` (a range of the dataset), folded into the mergeable state."""

    def __init__(self, plan: ExemplarPlan, rows: range):
        self.plan, self.rows = plan, rows
        self.member = []
        for d in plan.sets:
            m = np.zeros(plan.n_rows, bool)
            m[d] = True
            self.member.append(m)
        self.trackers: list[TopKExemplars] = []
        self.hist = self.moments = self.kept = None
        self.kept_start = 0
        self.n_saturated = self.n_added = 0

    def _start(self, units: int) -> None:
        self.trackers = [TopKExemplars(units, k) for k in self.plan.ks]
        self.hist, self.moments = ResponseHistogram(units), UnitMoments(units)
        if self.plan.keep_half is not None:
            h = self.plan.halves[self.plan.keep_half]
            self.kept_start = int(np.searchsorted(h, self.rows.start))
            stop = int(np.searchsorted(h, self.rows.stop))
            self.kept = np.empty((stop - self.kept_start, units), np.float16)

    def add(self, start: int, chunk: np.ndarray, n_saturated: int = 0) -> None:
        """Fold in rows ``start .. start + len(chunk) - 1`` (float16 (b, units)), each row once."""
        stop = start + len(chunk)
        if start < self.rows.start or stop > self.rows.stop:
            raise InvalidInput("rows", f"rows {start}..{stop - 1} outside the shard's {self.rows.start}.."
                                       f"{self.rows.stop - 1}")
        if not self.trackers:
            self._start(chunk.shape[1])
        for i, (d, m, t) in enumerate(zip(self.plan.sets, self.member, self.trackers)):
            sel = m[start:stop]
            if sel.any():  # the set's own numbering of its first row in this window
                t.update(int(np.searchsorted(d, start)), chunk[sel])
                if i == 0:
                    self.hist.update(chunk[sel])
                    self.moments.update(chunk[sel])
        if self.kept is not None:
            h = self.plan.halves[self.plan.keep_half]
            a, b = np.searchsorted(h, start), np.searchsorted(h, stop)
            self.kept[a - self.kept_start:b - self.kept_start] = chunk[h[a:b] - start]
        self.n_saturated += int(n_saturated)
        self.n_added += stop - start

    def shard(self, environment: dict | None = None) -> "ExemplarShard":
        """The state, once every row of the range was added."""
        if self.n_added != len(self.rows) or not self.trackers:
            raise RuntimeError(f"{self.n_added} of the shard's {len(self.rows)} rows were added")
        cands = []
        for d, t in zip(self.plan.sets, self.trackers):
            local, values = t.candidates()
            cands.append((d[local], values))
        return ExemplarShard(job=self.plan.job, rows=(self.rows.start, self.rows.stop),
                             units_per_layer=self.trackers[0].units // len(self.plan.layers), candidates=cands,
                             seen=[t.rows_seen for t in self.trackers], histogram=self.hist, moments=self.moments,
                             n_saturated=self.n_saturated, kept=self.kept, kept_start=self.kept_start,
                             environment=dict(environment or {}))


@dataclass
class ExemplarShard:
    """The mergeable state of one shard of rows (module docstring)."""

    job: dict
    rows: tuple[int, int]  # [start, stop) of the dataset
    units_per_layer: int
    candidates: list[tuple[np.ndarray, np.ndarray]]  # per set: global rows (U, m) int64, values (U, m) float32
    seen: list[int]  # per set: its rows in this shard
    histogram: ResponseHistogram
    moments: UnitMoments
    n_saturated: int
    kept: np.ndarray | None  # (rows of the kept half in this shard, U) float16
    kept_start: int  # position in the kept half of kept's first row
    environment: dict = field(default_factory=dict)  # device and library versions of the capture

    def meta(self) -> dict:
        return {"format": FORMAT, "job": self.job, "rows": list(self.rows), "units_per_layer": self.units_per_layer,
                "seen": self.seen, "n_saturated": self.n_saturated, "kept_start": self.kept_start,
                "kept_rows": None if self.kept is None else len(self.kept), "environment": self.environment}

    def save(self, directory: Path) -> None:
        """``exemplar_shard.npz`` then ``exemplar_shard.json`` into ``directory`` (made if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {**self.histogram.packed(), **self.moments.arrays()}
        for i, (r, v) in enumerate(self.candidates):
            arrays[f"set{i}_rows"], arrays[f"set{i}_values"] = r, v
        if self.kept is not None:
            arrays["kept"] = self.kept
        _savez_fast(directory / _NPZ, arrays)
        (directory / _JSON).write_text(json.dumps(self.meta(), indent=1), encoding="utf-8")

    @staticmethod
    def read_meta(directory: Path) -> dict:
        """The checked ``exemplar_shard.json`` of a saved shard (no arrays read). A missing file
        raises ``FileNotFoundError`` (the storage's problem); a malformed one ``InvalidInput``."""
        path = Path(directory) / _JSON
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            meta = json.loads(text)
        except ValueError as e:
            raise InvalidInput("shards", f"cannot read the exemplar shard {str(path)!r}: {e}") from None
        _check_meta(meta, str(directory))
        return meta

    @classmethod
    def load(cls, directory: Path) -> "ExemplarShard":
        """A saved shard, every array checked against its json."""
        meta = cls.read_meta(directory)
        where, (a, b) = str(directory), meta["rows"]
        try:
            with np.load(Path(directory) / _NPZ, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
            raise InvalidInput("shards", f"cannot read the arrays of the exemplar shard {where!r}: {e}") from None
        units = len(meta["job"]["layers"]) * meta["units_per_layer"]
        need = {"hist_first", "hist_width", "hist_counts", "moments_high", "moments_low", "moments_special", "moments_minimum"}
        need |= {f"set{i}_{x}" for i in range(len(meta["seen"])) for x in ("rows", "values")}
        need |= {"kept"} if meta["kept_rows"] is not None else set()
        if set(arrays) != need:
            raise InvalidInput("shards", f"{where!r} holds arrays {sorted(arrays)}, expected {sorted(need)}")
        cands = []
        for i, (k, seen) in enumerate(zip(meta["job"]["ks"], meta["seen"])):
            r, v = arrays[f"set{i}_rows"], arrays[f"set{i}_values"]
            shape = (units, min(k, seen))
            if r.dtype != np.int64 or v.dtype != np.float32 or r.shape != shape or v.shape != shape:
                raise InvalidInput("shards", f"{where!r}: set {i}'s candidates are {r.dtype} {r.shape} / {v.dtype} "
                                             f"{v.shape}, expected int64 / float32 {shape}")
            if r.size and (r.min() < a or r.max() >= b):
                raise InvalidInput("shards", f"{where!r}: set {i} has candidate rows outside its rows {a}..{b - 1}")
            cands.append((r, v))
        hist = ResponseHistogram.from_packed(arrays)
        if hist.counts.shape[0] != units or (hist.counts.sum(axis=1, dtype=np.int64) != meta["seen"][0]).any():
            raise InvalidInput("shards", f"{where!r}: the histogram does not hold {meta['seen'][0]} rows of {units} units")
        moments = UnitMoments.from_arrays(arrays, meta["seen"][0])
        kept = arrays.get("kept")
        if kept is not None and (kept.dtype != np.float16 or kept.shape != (meta["kept_rows"], units)):
            raise InvalidInput("shards", f"{where!r}: kept responses {kept.dtype} {kept.shape}, expected float16 "
                                         f"({meta['kept_rows']}, {units})")
        if len(moments.high) != units:
            raise InvalidInput("shards", f"{where!r}: moments of {len(moments.high)} units, expected {units}")
        return cls(meta["job"], (a, b), meta["units_per_layer"], cands, meta["seen"], hist, moments,
                   meta["n_saturated"], kept, meta["kept_start"], meta["environment"])


def _count(x, lo: int = 0) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= lo


def _check_meta(meta, where: str) -> None:
    """The json of a shard: the fields and their types (a shard file is not trusted blindly)."""
    ok = isinstance(meta, dict) and meta.get("format") == FORMAT and isinstance(meta.get("job"), dict)
    job = meta.get("job") if ok else {}
    ok = ok and all(_count(job.get(k)) for k in ("n_rows", "window")) and isinstance(job.get("ks"), list)
    ok = ok and isinstance(job.get("layers"), list) and job["layers"] and all(_count(x) for x in job["layers"])
    ok = ok and isinstance(job.get("set_sizes"), list) and len(job["set_sizes"]) == len(job["ks"]) >= 1
    ok = ok and all(_count(k, 1) and _count(n, k) for k, n in zip(job["ks"], job["set_sizes"]))
    ok = ok and isinstance(job.get("half_sizes"), list) and all(_count(x, 1) for x in job["half_sizes"])
    ok = ok and len(job["half_sizes"]) == len(job["ks"]) - 1 and job.get("rule") in FIRING_RULES
    ok = ok and (job.get("keep_half") is None or (_count(job["keep_half"]) and job["keep_half"] < len(job["half_sizes"])))
    ok = ok and isinstance(meta.get("rows"), list) and len(meta["rows"]) == 2 and all(_count(x) for x in meta["rows"])
    ok = ok and _count(meta.get("units_per_layer"), 1) and _count(meta.get("n_saturated"))
    ok = ok and isinstance(meta.get("seen"), list) and len(meta["seen"]) == len(job["ks"])
    ok = ok and all(_count(x) for x in meta["seen"]) and _count(meta.get("kept_start"))
    ok = ok and (meta.get("kept_rows") is None or _count(meta["kept_rows"])) and isinstance(meta.get("environment"), dict)
    if not ok:
        raise InvalidInput("shards", f"{where!r} is not an exemplar shard of format {FORMAT} (missing or malformed fields)")
    a, b = meta["rows"]
    if not 0 <= a < b <= job["n_rows"]:
        raise InvalidInput("shards", f"{where!r}: rows {a}..{b - 1} outside the dataset's {job['n_rows']}")


# --------------------------------------------------------------------------- merging


def _check_tiling(metas: list[dict], names: list[str]) -> None:
    """Refuses shards of different jobs or units, overlapping or missing rows (or kept rows)."""
    first = metas[0]
    for i, m in enumerate(metas[1:], 1):
        if m["job"] != first["job"]:
            diff = "; ".join(f"{k} is {m['job'].get(k)!r} there, {first['job'].get(k)!r} here"
                             for k in sorted(set(m["job"]) | set(first["job"])) if m["job"].get(k) != first["job"].get(k))
            raise InvalidInput("shards", f"{names[i]} is of another job or other options than {names[0]}: {diff}")
        if m["units_per_layer"] != first["units_per_layer"]:
            raise InvalidInput("shards", f"{names[i]} has {m['units_per_layer']} units per layer, {names[0]} "
                                         f"{first['units_per_layer']}")
    order = sorted(range(len(metas)), key=lambda i: tuple(metas[i]["rows"]))
    n, at = first["job"]["n_rows"], 0
    for i in order:
        a, b = metas[i]["rows"]
        if a < at:
            raise InvalidInput("shards", f"{names[i]} (rows {a}..{b - 1}) overlaps another shard (rows up to {at - 1})")
        if a > at:
            raise InvalidInput("shards", f"rows {at}..{a - 1} are in no shard (of {n} rows)")
        at = b
    if at != n:
        raise InvalidInput("shards", f"rows {at}..{n - 1} are in no shard (of {n} rows)")
    if first["job"]["keep_half"] is not None:
        at = 0
        for i in order:  # the kept half's rows, block after block
            if metas[i]["kept_rows"] is None or metas[i]["kept_start"] != at:
                raise InvalidInput("shards", f"{names[i]}: its kept responses do not continue the kept half at {at}")
            at += metas[i]["kept_rows"]
        if at != first["job"]["half_sizes"][first["job"]["keep_half"]]:
            raise InvalidInput("shards", f"the shards keep {at} rows of the kept half, expected "
                                         f"{first['job']['half_sizes'][first['job']['keep_half']]}")
    for s, size in enumerate(first["job"]["set_sizes"]):
        if sum(m["seen"][s] for m in metas) != size:
            raise InvalidInput("shards", f"the shards hold {sum(m['seen'][s] for m in metas)} rows of set {s}, "
                                         f"expected {size}")


def merge_shards(shards: Sequence["ExemplarShard | str | Path"]) -> StreamedExemplars:
    """One result from the shards of one job (objects, or folders loaded one at a time), in any
    order: what the one-pass stream over every row gives (module docstring). The json of every
    folder is checked before any array is read, and each folder's arrays against its json;
    objects are taken as ``ExemplarAccumulator.shard`` made them."""
    shards = list(shards)
    if not shards:
        raise InvalidInput("shards", "no shards to merge")
    metas = [s.meta() if isinstance(s, ExemplarShard) else ExemplarShard.read_meta(s) for s in shards]
    names = [f"shard {i} ({s if not isinstance(s, ExemplarShard) else 'rows %d..%d' % (s.rows[0], s.rows[1] - 1)})"
             for i, s in enumerate(shards)]
    _check_tiling(metas, names)
    job = metas[0]["job"]
    ks, keep = job["ks"], job["keep_half"]
    cands: list = [None] * len(ks)
    hist = moments = kept = None
    saturated = 0
    for i, s in enumerate(shards):
        s = s if isinstance(s, ExemplarShard) else ExemplarShard.load(s)
        if s.meta() != metas[i]:
            raise InvalidInput("shards", f"{names[i]} changed while merging")
        if hist is None:
            units = s.histogram.counts.shape[0]
            hist, moments = ResponseHistogram(units), UnitMoments(units)
            if keep is not None:
                kept = np.empty((job["half_sizes"][keep], units), np.float16)
        hist.add(s.histogram)
        moments.add(s.moments)
        saturated += s.n_saturated
        for j, part in enumerate(s.candidates):
            have = 0 if cands[j] is None else cands[j][0].shape[1]
            k = min(ks[j], have + part[0].shape[1])
            if k:
                cands[j] = merge_candidates([part] if cands[j] is None else [cands[j], part], k)
        if kept is not None:
            kept[s.kept_start:s.kept_start + len(s.kept)] = s.kept
    (rows, values), halves = cands[0], cands[1:]
    firing = FiringStats.from_histogram(hist, values[:, 0], job["rule"])
    return StreamedExemplars(layers=list(job["layers"]), units_per_layer=metas[0]["units_per_layer"], k=ks[0],
                             rows=rows, values=values, halves=list(halves), n_saturated=saturated, firing=firing,
                             heldout=kept, summary=moments.summary(hist.counts, bin_ceilings(), values[:, 0]))

