"""Exemplars and firing statistics straight from the model (docs/methods.md#b3): responses are
captured window by window and folded into streaming top-k% trackers and per-unit histograms, so
the sentences x units matrix never exists (except the validation half's, kept on request).

**Distinct sentences.** Exemplars are distinct texts: a sentence whose whitespace-normalised text
(``text_key``, the key ``generate_descriptors`` asks the LLM once per) came at an earlier row is
left out of the trackers and histograms, so a text repeated in the data fills one exemplar slot,
not several (its count is ``occurrences``). k is the top k% of the *distinct* sentences; within a
half, of the half's distinct sentences. Ties keep the lower row first, as before.

**Firing and statistics** (the fixed float16 histogram, the ``zero`` / ``fence`` rules, exact
maxima, quantiles, density): ``response_histogram``, whose names this module re-exports; the
mean and display histogram: ``unit_summary``.

**How.** ``plan_exemplars`` fixes what the whole dataset decides (distinct rows, k per set, the
options: ``exemplar_state.ExemplarPlan``); ``accumulate_exemplars`` captures a range of rows window
by window -- windows start at multiples of ``window`` from row 0, so every range captures its rows
in the batches the whole pass would -- into an ``ExemplarShard``; ``exemplar_state.merge_shards``
applies the firing rule once the whole histogram is known and returns ``StreamedExemplars``.
``stream_exemplars`` is the three over every row; ``exemplar_shards`` runs ranges on different
workers and merges them to the same result.

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

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations import SubjectModel, capture_responses, dataset_sha256
from neuroscribe.workers.activations.capture import check_layers
from neuroscribe.workers.activations.sites import get_site
from neuroscribe.workers.describe.exemplar_state import (ExemplarAccumulator, ExemplarPlan, ExemplarShard,
                                                         StreamedExemplars, merge_shards)
from neuroscribe.workers.describe.exemplars import n_exemplars
from neuroscribe.workers.describe.response_histogram import (FIRING_RULES, N_BINS, QUANTILE_LEVELS, QUANTILE_METHOD,
                                                             TUKEY_FENCE, FiringStats, ResponseHistogram, bin_ceiling,
                                                             firing_rule)
from neuroscribe.workers.describe.unit_summary import UnitSummary

__all__ = ["StreamedExemplars", "ExemplarsArtefact", "FiringStats", "ResponseHistogram", "bin_ceiling",
           "stream_exemplars", "plan_exemplars", "accumulate_exemplars", "text_key", "first_occurrences",
           "occurrences", "firing_rule", "FIRING_RULES", "QUANTILE_LEVELS", "QUANTILE_METHOD", "N_BINS",
           "TUKEY_FENCE", "WINDOW"]

WINDOW = 2048  # sentences captured at a time (and sorted by length into batches within)


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


# --------------------------------------------------------------------------- the stream


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



def _sha256_rows(arrays: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256(len(arrays).to_bytes(8, "big"))
    for a in arrays:
        h.update(len(a).to_bytes(8, "big"))
        h.update(np.ascontiguousarray(a, np.int64).tobytes())
    return h.hexdigest()


def plan_exemplars(subject: SubjectModel, texts: Sequence[str], *, top_percent: float = 1.0,
                   halves: Sequence[np.ndarray] = (), site: str = "mlp_post", pooling: str = "cls",
                   layers: Sequence[int] | None = None, batch_size: int = 32, max_length: int = 128,
                   window: int = WINDOW, rule: str | None = None, keep_half: int | None = None) -> ExemplarPlan:
    """The whole dataset's decisions for ``stream_exemplars`` with these options (its docstring),
    every option checked; ``plan.job`` is what every shard of the pass must share."""
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
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or int(window) < 1:
        raise InvalidInput("window", f"must be an integer >= 1, got {window!r}")
    try:
        dtype = str(next(subject.model.parameters()).dtype).removeprefix("torch.")
    except (AttributeError, StopIteration):
        dtype = None
    job = {"n_rows": n, "data_sha256": dataset_sha256(list(texts)), "halves_sha256": _sha256_rows(halves),
           "half_sizes": [len(h) for h in halves], "set_sizes": [len(d) for d in sets], "ks": ks,
           "top_percent": float(top_percent), "layers": chosen, "rule": rule, "keep_half": keep_half,
           "window": int(window), "site": get_site(subject.model_type, site).name, "pooling": pooling,
           "batch_size": int(batch_size), "max_length": int(max_length),
           "model": {"model_id": subject.model_id, "revision": subject.revision,
                     "weight_sha256": subject.weight_sha256, "model_type": subject.model_type, "dtype": dtype}}
    return ExemplarPlan(sets=tuple(sets), ks=tuple(ks), halves=tuple(halves), keep_half=keep_half,
                        layers=tuple(chosen), rule=rule, window=int(window), job=json.loads(json.dumps(job)))


def accumulate_exemplars(subject: SubjectModel, texts: Sequence[str], plan: ExemplarPlan, rows: range, *,
                         progress: bool = True) -> ExemplarShard:
    """Capture ``rows`` (a range starting on a window boundary) window by window into a shard."""
    if rows.step != 1 or rows.start % plan.window or not 0 <= rows.start < rows.stop <= len(texts):
        raise InvalidInput("rows", f"must be a range of rows starting at a multiple of window={plan.window}, "
                                   f"non-empty, within the {len(texts)} rows; got {rows}")
    job = plan.job
    acc = ExemplarAccumulator(plan, rows)
    with tqdm(total=len(rows), desc="exemplars", unit="sent", disable=not progress) as bar:
        for start in range(rows.start, rows.stop, plan.window):
            stop = min(start + plan.window, rows.stop)
            resp = capture_responses(subject, list(texts[start:stop]), site=job["site"], pooling=job["pooling"],
                                     layers=list(plan.layers), batch_size=job["batch_size"],
                                     max_length=job["max_length"], progress=False)
            acc.add(start, resp.matrix(list(plan.layers)), resp.meta.n_saturated)
            del resp
            bar.update(stop - start)
    return acc.shard(subject.environment())


def stream_exemplars(subject: SubjectModel, texts: Sequence[str], *, top_percent: float = 1.0,
                     halves: Sequence[np.ndarray] = (), site: str = "mlp_post", pooling: str = "cls",
                     layers: Sequence[int] | None = None, batch_size: int = 32, max_length: int = 128,
                     window: int = WINDOW, rule: str | None = None, keep_half: int | None = None,
                     progress: bool = True) -> StreamedExemplars:
    """Top ``top_percent``% distinct sentences of every unit of ``layers`` (all by default), over all
    of ``texts`` and, for each of ``halves`` (sorted row arrays), over that half's rows; the firing
    statistics under ``rule`` (default ``firing_rule`` of the model and site); with ``keep_half``,
    the responses of every row of ``halves[keep_half]``."""
    plan = plan_exemplars(subject, texts, top_percent=top_percent, halves=halves, site=site, pooling=pooling,
                          layers=layers, batch_size=batch_size, max_length=max_length, window=window, rule=rule,
                          keep_half=keep_half)
    return merge_shards([accumulate_exemplars(subject, texts, plan, range(len(texts)), progress=progress)])
