"""Quality of unit descriptions (docs/methods.md#b5 to #b6): the calibration/validation split
and the per-unit consistency of the two halves' descriptions (``split_half``, ``consistency``),
and precision@K / recall@K against reference labels (``reference_sets``, ``precision_recall_at_k``).
Conventions as in ``workers.descriptions``: Jaccard of two empty sets is NaN (counted separately,
never 1); means over defined values with ``math.fsum``; bad input raises ``InvalidInput``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from neuroscribe.errors import InvalidInput

from neuroscribe.workers.describe.descriptions import Assignment
from neuroscribe.workers.describe.incidence import Incidence, check_exemplars, check_percent, incidence

__all__ = ["split_half", "Consistency", "consistency", "reference_sets", "PrecisionRecall", "precision_recall_at_k"]


# --------------------------------------------------------------------------- calibration / validation


def _label_values(labels) -> list:
    """A label column as a list of plain Python values (one per sentence)."""
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    if labels is None or isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
        raise InvalidInput("label", "must hold one label per sentence")
    arr = np.asarray(labels, dtype=object)
    if arr.ndim != 1:
        raise InvalidInput("label", f"must be one label per sentence (1-D), got shape {arr.shape}")
    return [v.item() if isinstance(v, np.generic) else v for v in arr]


def _label_codes(values: list, n: int) -> tuple[np.ndarray, list]:
    """Integer codes (n,) of a label column and its classes in order of first appearance;
    InvalidInput("label", ...) for a wrong length, a missing value or a single class."""
    if len(values) != n:
        raise InvalidInput("label", f"has {len(values)} values for {n} sentences")
    index: dict = {}
    codes = np.empty(n, np.int64)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise InvalidInput("label", f"sentence {i} has no label")
        codes[i] = index.setdefault(v, len(index))
    if len(index) < 2:
        raise InvalidInput("label", f"has a single class ({next(iter(index))!r}): nothing to stratify or evaluate")
    return codes, list(index)


def _descriptor_strata(inc: Incidence) -> np.ndarray:
    """Stratum per sentence: its descriptor with the largest dataset count (ties: first name in
    sorted order), skipping descriptors held by every valid sentence (they separate nothing);
    sentences with no such descriptor form one stratum, failed sentences another."""
    x = inc.matrix.tocsr()
    big_k = np.asarray(x.sum(axis=0)).ravel().astype(np.int64)
    n_valid = inc.n_sentences - inc.n_failed
    d = len(inc.names)
    rank = np.empty(d, np.int64)
    rank[np.argsort(np.array(inc.names, dtype=object), kind="stable")] = np.arange(d)
    score = np.where(big_k < n_valid, big_k * (d + 1) + (d - rank), 0)  # unique per descriptor, > 0
    best = np.zeros(inc.n_sentences, np.int64)
    if x.nnz:
        row_of = np.repeat(np.arange(inc.n_sentences), np.diff(x.indptr))
        np.maximum.at(best, row_of, score[x.indices])
    best[inc.failed] = -1
    return best


def split_half(descriptor_sets, *, labels=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded 50/50 split of the sentences into (calibration, validation) sorted row arrays,
    disjoint and covering every row.

    Strata: the label when ``labels`` is given (one per sentence; a single class raises
    ``InvalidInput("label", ...)``); otherwise, "by descriptor where possible" (docs/methods.md#b5),
    each sentence's most frequent descriptor in the dataset (``_descriptor_strata``: ubiquitous
    descriptors skipped, sentences without one pooled, failed sentences pooled). A sentence holds
    several descriptors but can sit in one stratum only, so only the stratifying descriptor is
    balanced exactly; the others are balanced in expectation.
    Within each stratum (shuffled) the first floor(n/2) go to calibration, the next floor(n/2) to
    validation; the odd sentence of odd strata is pooled, shuffled and dealt alternately from a
    random side. So every stratum's halves differ by at most one, and so do the two halves.

    Use (docs/methods.md#b5): exemplars are chosen within each half (top k% of that half's rows), then
    ``assign(sets, exemplars_half, rows=half)`` per half and ``consistency(calib, valid)``."""
    inc = incidence(descriptor_sets)
    n = inc.n_sentences
    if n < 2:
        raise InvalidInput("descriptor_sets", f"need at least 2 sentences to split in halves, got {n}")
    strata = _label_codes(_label_values(labels), n)[0] if labels is not None else _descriptor_strata(inc)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    order = perm[np.argsort(strata[perm], kind="stable")]
    s = strata[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[starts, n])
    pos = np.arange(n) - np.repeat(starts, sizes)
    half = np.repeat(sizes // 2, sizes)
    calib = order[pos < half]
    valid = order[(pos >= half) & (pos < 2 * half)]
    pool = rng.permutation(order[pos >= 2 * half])
    first = int(rng.integers(2))
    calib = np.concatenate([calib, pool[first::2]])
    valid = np.concatenate([valid, pool[1 - first::2]])
    return np.sort(calib), np.sort(valid)


@dataclass(frozen=True, eq=False)
class Consistency:
    """Per-unit Jaccard of two assignments. ``per_unit`` is NaN where both sides are empty
    (``n_both_empty``, undefined, not 1); a unit described on one side only has 0
    (``n_one_side_empty``). ``mean`` is over the ``n_defined`` other units (NaN if none).
    ``histogram``: counts of the defined values in 10 bins [0, .1), ..., [.9, 1.0] (exact rational
    binning: a Jaccard of 3/10 lands in [.3, .4))."""

    mean: float
    per_unit: np.ndarray
    histogram: np.ndarray
    bin_edges: np.ndarray
    n_units: int
    n_defined: int
    n_both_empty: int
    n_one_side_empty: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "per_unit": [None if math.isnan(v) else float(v) for v in self.per_unit],
                "histogram": self.histogram.tolist(), "bin_edges": self.bin_edges.tolist(),
                "n_units": self.n_units, "n_defined": self.n_defined, "n_both_empty": self.n_both_empty,
                "n_one_side_empty": self.n_one_side_empty}


def _unit_sets(assigned, field_name: str) -> list[frozenset]:
    if isinstance(assigned, Assignment):
        return assigned.assigned_sets()
    if isinstance(assigned, (str, bytes)) or not isinstance(assigned, Sequence):
        raise InvalidInput(field_name, "must be an Assignment or a sequence with one descriptor set per unit")
    out = []
    for i, s in enumerate(assigned):
        if isinstance(s, (str, bytes)) or not isinstance(s, Collection):
            raise InvalidInput(f"{field_name}:{i}", f"must be a collection of descriptor names, got {s!r}")
        out.append(frozenset(s))
    return out


def _sparse_sets(sets: list[frozenset], index: dict) -> sp.csr_matrix:
    cols = [index[e] for s in sets for e in s]
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    return sp.csr_matrix((np.ones(len(cols), np.int64), np.asarray(cols, np.int64), indptr),
                         shape=(len(sets), len(index)))


def consistency(assigned_a, assigned_b) -> Consistency:
    """Per-unit Jaccard of the descriptor sets of two assignments (``Assignment`` objects, e.g. on
    the calibration and validation halves, or sequences of per-unit sets), unit i against unit i."""
    a, b = _unit_sets(assigned_a, "assigned_a"), _unit_sets(assigned_b, "assigned_b")
    if len(a) != len(b):
        raise InvalidInput("assigned_b", f"has {len(b)} units, assigned_a has {len(a)}")
    if not a:
        raise InvalidInput("assigned_a", "no unit")
    index: dict = {}
    for s in a + b:
        for e in s:
            index.setdefault(e, len(index))
    ma, mb = _sparse_sets(a, index), _sparse_sets(b, index)
    inter = np.asarray(ma.multiply(mb).sum(axis=1)).ravel().astype(np.int64)
    size_a = np.asarray(ma.sum(axis=1)).ravel().astype(np.int64)
    size_b = np.asarray(mb.sum(axis=1)).ravel().astype(np.int64)
    union = size_a + size_b - inter
    defined = union > 0
    per_unit = np.full(len(a), np.nan)
    per_unit[defined] = inter[defined] / union[defined]
    bins = np.minimum(10 * inter[defined] // union[defined], 9)  # exact: floor(10 J), J = 1 in the last bin
    hist = np.bincount(bins, minlength=10).astype(np.int64)
    vals = per_unit[defined].tolist()
    one_side = int(np.count_nonzero(defined & ((size_a == 0) | (size_b == 0))))
    return Consistency(mean=math.fsum(vals) / len(vals) if vals else math.nan, per_unit=per_unit, histogram=hist,
                       bin_edges=np.linspace(0.0, 1.0, 11), n_units=len(a), n_defined=len(vals),
                       n_both_empty=int(np.count_nonzero(~defined)), n_one_side_empty=one_side)


# --------------------------------------------------------------------------- evaluation


def reference_sets(labels, exemplars, label_map: Mapping, *, threshold: float = 50.0) -> list[frozenset[str]]:
    """Per unit, the reference descriptors: ``label_map[l]`` for every label l carried by at least
    ``threshold`` percent of the unit's exemplars (all k of them: labels do not depend on descriptor
    generation). ``labels`` holds one label per sentence (the rows ``exemplars`` index); a single
    class raises ``InvalidInput("label", ...)``; every label must be a key of ``label_map`` (e.g.
    ``{0: "negative", 1: "positive"}``), whose values are descriptor names."""
    t = check_percent(threshold, "threshold")
    if not isinstance(label_map, Mapping) or not label_map:
        raise InvalidInput("label_map", "must map every label to a descriptor name")
    values = _label_values(labels)
    codes, classes = _label_codes(values, len(values))
    ex = check_exemplars(exemplars, len(values))
    names = []
    for key in classes:
        if key not in label_map:
            raise InvalidInput("label_map", f"has no entry for label {key!r}")
        name = label_map[key]
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("label_map", f"label {key!r} must map to a descriptor name, got {name!r}")
        names.append(name)
    n_cls = len(classes)
    u, k = ex.shape
    per = np.bincount((np.arange(u)[:, None] * n_cls + codes[ex]).ravel(), minlength=u * n_cls).reshape(u, n_cls)
    hit = 100.0 * per / k >= t
    return [frozenset(names[c] for c in np.flatnonzero(row)) for row in hit]


@dataclass(frozen=True, eq=False)
class PrecisionRecall:
    """precision@K and recall@K for each K of ``ks``, averaged over the ``n_units`` units with at
    least one assigned descriptor (recall: over the ``n_recall_units`` of them with a non-empty
    reference). Per unit (rows) and K (columns): ``hits`` = |top-K & reference|, ``n_top`` =
    |top-K| = min(K, assigned); ``n_reference`` = |reference|. NaN means when no unit counts."""

    ks: tuple[int, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    n_units: int
    n_recall_units: int
    n_units_total: int
    hits: np.ndarray
    n_top: np.ndarray
    n_reference: np.ndarray

    def at(self, k: int) -> tuple[float, float]:
        i = self.ks.index(k)
        return self.precision[i], self.recall[i]

    def to_dict(self) -> dict:
        return {"ks": list(self.ks), "precision": list(self.precision), "recall": list(self.recall),
                "n_units": self.n_units, "n_recall_units": self.n_recall_units, "n_units_total": self.n_units_total}


def _ranked(assigned) -> list[tuple[str, ...]]:
    if isinstance(assigned, Assignment):
        return assigned.ranked()
    if isinstance(assigned, (str, bytes)) or not isinstance(assigned, Sequence):
        raise InvalidInput("assigned", "must be an Assignment or a sequence of ranked descriptor lists per unit")
    out = []
    for i, r in enumerate(assigned):
        if isinstance(r, (str, bytes)) or not isinstance(r, Sequence):
            if isinstance(r, (set, frozenset)) and len(r) <= 1:
                r = tuple(r)
            else:
                raise InvalidInput(f"assigned:{i}", "must be a ranked sequence of descriptor names (best first)")
        out.append(tuple(r))
    return out


def precision_recall_at_k(assigned, reference, ks: Sequence[int] = (1, 2, 3)) -> PrecisionRecall:
    """precision@K and recall@K of assigned descriptors against reference descriptors (docs/methods.md#b6).

    The paper (Mondal et al. 2024, arXiv 2401.16731; seed ``002_9388afadafaaa440``) reports
    "75% precision@2 and 50% recall@2 in correctly tagging neurons with appropriate descriptors"
    for a neuron's top descriptors, judged by ChatGPT and manual annotation; the seed notes that the
    annotation protocol is not detailed. We follow the usual ranked-retrieval reading with the
    dataset's labels as the annotation: for unit m, ``top_K`` = its first K assigned descriptors
    (ranked by f, then p: ``Assignment`` order) and ``R_m`` = its reference set (``reference_sets``:
    the mapped labels present in >= t% of its exemplars). Then
      precision@K = |top_K & R_m| / |top_K|   (|top_K| = min(K, #assigned): a unit with fewer than K
                                               descriptors is judged on those it has),
      recall@K    = |top_K & R_m| / |R_m|.
    Means are over units with at least one assigned descriptor (``n_units``); recall also needs
    R_m non-empty (``n_recall_units``). With a reference of sentiment labels only, a correct topical
    descriptor counts as a miss: precision is then a lower bound of the paper's annotated one.
    ``hits`` and ``n_top`` per unit allow other conventions (e.g. trec_eval divides by K)."""
    ranked = _ranked(assigned)
    if isinstance(reference, (str, bytes)) or not isinstance(reference, Sequence):
        raise InvalidInput("reference", "must hold one set of reference descriptor names per unit")
    refs = _unit_sets(reference, "reference")
    if len(refs) != len(ranked):
        raise InvalidInput("reference", f"has {len(refs)} units, assigned has {len(ranked)}")
    if not ranked:
        raise InvalidInput("assigned", "no unit")
    ks = tuple(ks) if not isinstance(ks, (int, np.integer)) else (ks,)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise InvalidInput("ks", f"must be positive integers, got {ks!r}")
    ks = tuple(dict.fromkeys(int(k) for k in ks))
    u = len(ranked)
    hits = np.zeros((u, len(ks)), np.int64)
    n_top = np.zeros((u, len(ks)), np.int64)
    n_ref = np.array([len(r) for r in refs], np.int64)
    for i, (r, ref) in enumerate(zip(ranked, refs)):
        for j, k in enumerate(ks):
            top = r[:k]
            n_top[i, j] = len(top)
            hits[i, j] = sum(1 for c in top if c in ref)
    described = np.array([len(r) > 0 for r in ranked])
    rec_units = described & (n_ref > 0)
    prec, rec = [], []
    for j in range(len(ks)):
        pv = (hits[described, j] / n_top[described, j]).tolist()
        rv = (hits[rec_units, j] / n_ref[rec_units]).tolist()
        prec.append(math.fsum(pv) / len(pv) if pv else math.nan)
        rec.append(math.fsum(rv) / len(rv) if rv else math.nan)
    return PrecisionRecall(ks=ks, precision=tuple(prec), recall=tuple(rec), n_units=int(described.sum()),
                           n_recall_units=int(rec_units.sum()), n_units_total=u, hits=hits, n_top=n_top,
                           n_reference=n_ref)
