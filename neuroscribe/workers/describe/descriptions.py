"""Descriptions of units from sentence descriptors (docs/methods.md#b4 to #b6): pure statistics.

Inputs are the descriptor set C(d_i) of every sentence (already mapped to vocabulary names; ``None``
for a sentence whose descriptor generation FAILED) and, per unit, the row indices of its exemplar
sentences E_m, an int array (U, k) as a streaming top-k% gives (``workers.exemplars``). Units are
row indices of that array: a caller with several layers maps them back to (layer, index).

Here: the assignment (``assign`` and its results). Beside it: ``incidence`` (the inputs and their
checks) and ``pvalues`` (the hypergeometric tail and Benjamini-Hochberg); their public names
``Incidence``, ``incidence`` and ``benjamini_hochberg`` are importable from here too.

Representation: ``incidence`` turns the descriptor sets into a sparse boolean (sentences x
descriptors) CSR matrix X. The exemplars become a sparse (units x sentences) indicator E, and the
exemplar counts of every (unit, descriptor) are one sparse product ``E @ X``: no Python loop over
units or descriptors, and only the pairs with count >= 1 are ever stored.

Assignment (``assign``), with N the sentences of the population whose generation succeeded, K_c
those of them that contain c, k_m the exemplars of unit m that are such sentences and x the
exemplars of m that contain c:
* f_m(c) = 100 * x / k_m (percent, as in the paper); base(c) = 100 * K_c / N (percent);
  enrichment = f / base.
* p = P(X >= x) for X ~ Hypergeometric(population N, successes K_c, draws k_m) -- one-sided: is c
  over-represented among the exemplars? It is ``scipy.stats.hypergeom.sf(x - 1, N, K_c, k_m)``,
  computed as a tail sum of ``hypergeom.logpmf`` (``pvalues.hypergeom_sf``: why, and its accuracy).
  Computed only for pairs with x >= 1; every other pair has p = 1 (P(X >= 0)). A descriptor
  present in every sentence has p = 1 whatever f: under ``fdr`` it is never assigned, which is why
  the test exists (without ``fdr`` it is assigned wherever f >= t, exactly as in the paper).
* c is assigned to m when f >= t (default 50) and, when ``fdr`` is given, its Benjamini-Hochberg
  adjusted p-value q <= fdr. The BH family (``family``): ``"tested"`` (default) is every
  (unit, descriptor) pair with x >= 1, the pairs for which a p-value is computed; ``"all"`` is
  every unit x every descriptor present in the population (K_c >= 1), the pairs with x = 0
  entering with p = 1 (only m grows): more conservative, and free of the selection by x >= 1.

Failed sentences (``None``): they are missing data, not sentences without descriptors. They are
left out of the base-rate population N AND out of each unit's exemplar denominator k_m: f is the
share of the exemplars whose descriptors are KNOWN that contain c. Counting them in k as if they
had no descriptor would bias every f downwards by the failure rate among the exemplars (a unit
whose exemplars failed more often, e.g. because they are long or odd, would lose descriptors for
a reason unrelated to its response), and would make the hypergeometric model draw k from a
population that is not the one of N and K_c. The cost: a unit with many failed exemplars has a
smaller k_m, so a noisier f; each unit reports k, its valid exemplars and its failed ones, the
p-value accounts for the smaller k_m, and a unit whose exemplars all failed gets no descriptor.
Sentences with an empty (successfully parsed) descriptor set are valid: they count in N and k_m.

Valid exemplars (``mask``, ``min_valid``): a caller passes per unit which of its exemplars count
(those the unit fires on: a prefix of its best-first row) and the least number of valid exemplars
(counted and with known descriptors) a description needs; a unit below it gets no descriptor, and
its pairs are neither tested nor in the BH family. ``min_valid_exemplars`` is that number for k
exemplars, ``unit_statuses`` says why a unit is (not) described, ``exemplar_hubs`` finds the
sentences that are exemplars of many units.

Consistency and evaluation live in ``describe.quality``. Conventions as in ``stability``:
Jaccard of two empty sets is NaN (undefined, counted separately, never 1); means are over the
defined values with ``math.fsum``; bad input raises ``InvalidInput(field, message)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.describe.incidence import Incidence, check_exemplars, check_percent, incidence
from neuroscribe.workers.describe.pvalues import benjamini_hochberg, hypergeom_sf

__all__ = ["Incidence", "incidence", "benjamini_hochberg", "DescriptorStat", "UnitDescription", "TestedPairs",
           "Assignment", "assign", "min_valid_exemplars", "unit_statuses", "exemplar_hubs", "STATUSES"]

_FAMILIES = ("tested", "all")


# --------------------------------------------------------------------------- checks


def _fdr(value) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("fdr", f"must be in (0, 1) or None, got {value!r}") from None
    if not 0.0 < v < 1.0:
        raise InvalidInput("fdr", f"must be in (0, 1) or None, got {value!r}")
    return v


def _rows(rows, n: int) -> np.ndarray:
    """Population mask (n,) from row indices (None: every row)."""
    if rows is None:
        return np.ones(n, bool)
    r = np.asarray(rows)
    if r.ndim != 1 or r.dtype.kind not in "iu" or r.size == 0 or r.min() < 0 or r.max() >= n:
        raise InvalidInput("rows", f"must be a non-empty 1-D array of sentence rows in [0, {n})")
    mask = np.zeros(n, bool)
    mask[r] = True
    return mask


# --------------------------------------------------------------------------- assignment


@dataclass(frozen=True)
class DescriptorStat:
    """One assigned descriptor of a unit. ``f`` and ``base_rate`` in percent; ``q`` is the
    BH-adjusted p-value (None when no ``fdr`` was asked)."""

    descriptor: str
    count: int  # valid exemplars that contain it
    f: float
    base_rate: float
    enrichment: float
    p: float
    q: float | None


@dataclass(frozen=True)
class UnitDescription:
    """A unit's assigned descriptors, sorted by f (desc), then p, then name. ``k`` exemplars counted
    (all, or those of ``mask``), of which ``n_valid`` have a descriptor set and ``n_failed`` do not
    (f is over ``n_valid``)."""

    unit: int
    k: int
    n_valid: int
    n_failed: int
    descriptors: tuple[DescriptorStat, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.descriptor for d in self.descriptors)

    def to_dict(self) -> dict:
        return {"unit": self.unit, "k": self.k, "n_valid": self.n_valid, "n_failed": self.n_failed,
                "descriptors": [d.__dict__.copy() for d in self.descriptors]}


@dataclass(frozen=True, eq=False)
class TestedPairs:
    """Every (unit, descriptor) pair with count >= 1, assigned or not, in (unit, descriptor) order.
    ``q`` is NaN without ``fdr``."""

    unit: np.ndarray
    descriptor: np.ndarray  # column index into ``Assignment.descriptors``
    count: np.ndarray
    f: np.ndarray
    enrichment: np.ndarray
    p: np.ndarray
    q: np.ndarray
    assigned: np.ndarray


@dataclass(frozen=True, eq=False)
class Assignment:
    """The result of ``assign``. Counts: ``n_sentences`` in the population, ``n_valid`` of them with
    a descriptor set (the base-rate population N), ``n_failed`` without; ``n_tests`` is the BH family
    size (pairs with count >= 1 for family "tested"). ``base_rate`` (D,) in percent and
    ``descriptor_counts`` (K_c) follow ``descriptors``; ``counts`` is the sparse (U, D) exemplar count."""

    threshold: float
    fdr: float | None
    family: str
    n_sentences: int
    n_valid: int
    n_failed: int
    n_tests: int
    descriptors: tuple[str, ...]
    descriptor_counts: np.ndarray
    base_rate: np.ndarray
    counts: sp.csr_matrix
    exemplars: np.ndarray
    units: tuple[UnitDescription, ...]
    tested: TestedPairs = field(repr=False)
    min_valid: int = 0  # units with fewer valid exemplars were not tested

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def n_described(self) -> int:
        """Units with at least one assigned descriptor."""
        return sum(1 for u in self.units if u.descriptors)

    def assigned_sets(self) -> list[frozenset[str]]:
        return [frozenset(u.names) for u in self.units]

    def ranked(self) -> list[tuple[str, ...]]:
        return [u.names for u in self.units]

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "fdr": self.fdr, "family": self.family,
                "n_sentences": self.n_sentences, "n_valid": self.n_valid, "n_failed": self.n_failed,
                "n_tests": self.n_tests, "n_units": self.n_units, "n_described": self.n_described,
                "units": [u.to_dict() for u in self.units]}


def assign(descriptor_sets, exemplars, *, threshold: float = 50.0, fdr: float | None = None,
           family: str = "tested", rows=None, vocabulary: Sequence[str] | None = None, mask=None,
           min_valid: int = 0) -> Assignment:
    """Assign descriptors to units (see the module docstring for f, base rate, p, BH and failed
    sentences).

    ``descriptor_sets``: per sentence a set of descriptor names or None (failed), or an
    ``Incidence``. ``exemplars``: (U, k) sentence rows per unit. ``rows``: restrict the population
    to these sentences (e.g. one half of ``split_half``; every exemplar must be among them), so one
    incidence serves both halves. ``threshold`` t in percent, (0, 100]. ``fdr`` in (0, 1) or None.
    ``mask``: (U, k) bool, the exemplars that count (default all); ``min_valid``: a unit with fewer
    counted exemplars of known descriptors gets none and is not tested."""
    inc = incidence(descriptor_sets, vocabulary=vocabulary)
    t = check_percent(threshold, "threshold")
    alpha = _fdr(fdr)
    if family not in _FAMILIES:
        raise InvalidInput("family", f"must be one of {_FAMILIES}, got {family!r}")
    n_total = inc.n_sentences
    pop = _rows(rows, n_total)
    ex = check_exemplars(exemplars, n_total)
    if not pop[ex].all():
        raise InvalidInput("exemplars", "some exemplar rows are outside the population given by rows")
    use = np.ones(ex.shape, bool) if mask is None else np.asarray(mask)
    if use.shape != ex.shape or use.dtype != bool:
        raise InvalidInput("mask", f"must be a bool array shaped like the exemplars {ex.shape}")
    if isinstance(min_valid, bool) or not isinstance(min_valid, (int, np.integer)) or min_valid < 0:
        raise InvalidInput("min_valid", f"must be an integer >= 0, got {min_valid!r}")
    valid = pop & ~inc.failed
    n_valid = int(np.count_nonzero(valid))
    if n_valid == 0:
        raise InvalidInput("descriptor_sets", "descriptor generation failed for every sentence of the population")
    x = inc.matrix.astype(np.int64)
    big_k = np.asarray(x.T @ valid.astype(np.int64)).ravel()  # sentences of the population holding c
    base = 100.0 * big_k / n_valid

    n_units = ex.shape[0]
    k_unit = use.sum(axis=1).astype(np.int64)
    ind = sp.csr_matrix((np.ones(int(k_unit.sum()), np.int64), ex[use], np.r_[0, np.cumsum(k_unit)]),
                        shape=(n_units, n_total))
    counts = (ind @ x).tocsr()  # failed rows of x are empty: they never count
    counts.sum_duplicates()
    counts.eliminate_zeros()
    counts.sort_indices()
    n_failed_ex = (inc.failed[ex] & use).sum(axis=1).astype(np.int64)
    k_valid = k_unit - n_failed_ex
    eligible = k_valid >= max(1, int(min_valid))

    coo = counts.tocoo()
    pu, pd, pc = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.int64)
    keep = eligible[pu]
    pu, pd, pc = pu[keep], pd[keep], pc[keep]
    kv = k_valid[pu]
    f = 100.0 * pc / kv
    enr = f / base[pd]
    p = hypergeom_sf(pc, n_valid, big_k[pd], kv)
    n_tested_units = n_units if min_valid == 0 else int(np.count_nonzero(eligible))
    n_tests = pc.size if family == "tested" else n_tested_units * int(np.count_nonzero(big_k))
    ok = f >= t
    if alpha is not None:
        q = benjamini_hochberg(p, n_tests)
        ok &= q <= alpha
    else:
        q = np.full(p.shape, np.nan)

    name_rank = np.empty(len(inc.names), np.int64)
    name_rank[np.argsort(np.array(inc.names, dtype=object), kind="stable")] = np.arange(len(inc.names))
    sel = np.flatnonzero(ok)
    sel = sel[np.lexsort((name_rank[pd[sel]], p[sel], -f[sel], pu[sel]))]
    bounds = np.searchsorted(pu[sel], np.arange(n_units + 1))
    names = inc.names
    units = []
    for u in range(n_units):
        idx = sel[bounds[u]:bounds[u + 1]]
        stats = tuple(DescriptorStat(descriptor=names[pd[i]], count=int(pc[i]), f=float(f[i]),
                                     base_rate=float(base[pd[i]]), enrichment=float(enr[i]), p=float(p[i]),
                                     q=None if alpha is None else float(q[i])) for i in idx)
        units.append(UnitDescription(unit=u, k=int(k_unit[u]), n_valid=int(k_valid[u]), n_failed=int(n_failed_ex[u]),
                                     descriptors=stats))
    tested = TestedPairs(unit=pu, descriptor=pd, count=pc, f=f, enrichment=enr, p=p, q=q, assigned=ok)
    return Assignment(threshold=t, fdr=alpha, family=family, n_sentences=int(np.count_nonzero(pop)),
                      n_valid=n_valid, n_failed=int(np.count_nonzero(pop & inc.failed)), n_tests=int(n_tests),
                      descriptors=names, descriptor_counts=big_k, base_rate=base, counts=counts, exemplars=ex,
                      units=tuple(units), tested=tested, min_valid=int(min_valid))


# --------------------------------------------------------------------------- valid exemplars


STATUSES = ("described", "no descriptor passed", "too few valid exemplars", "rare", "dead")


def min_valid_exemplars(k: int, min_valid: int = 5, fraction: float = 0.5) -> int:
    """The valid exemplars a unit with k exemplars needs: max(min_valid, ceil(fraction * k)), exact
    (``fraction`` read as the decimal it prints as)."""
    return max(int(min_valid), math.ceil(Fraction(repr(float(fraction))) * int(k)))


def unit_statuses(n_firing, n_valid, n_assigned, min_valid: int) -> list[str]:
    """Why each unit is (not) described, first match: ``dead`` (fires on no sentence), ``rare`` (on
    fewer than ``min_valid``), ``too few valid exemplars`` (generation failed on too many of the
    exemplars it fires on), ``no descriptor passed`` (none reached t, or its FDR), ``described``."""
    out = []
    for fire, valid, n in zip(np.asarray(n_firing), np.asarray(n_valid), np.asarray(n_assigned)):
        out.append(STATUSES[4] if fire == 0 else STATUSES[3] if fire < min_valid else
                   STATUSES[2] if valid < min_valid else STATUSES[1] if n == 0 else STATUSES[0])
    return out


def exemplar_hubs(exemplars, mask, n_sentences: int, *, top: int = 10,
                  share: float = 0.05) -> tuple[list[tuple[int, int]], int]:
    """Sentences that are (counted) exemplars of many units: the ``top`` ones as (row, units), most
    units first (ties: lower row), and how many are exemplars of at least ``share`` of the units."""
    ex = np.asarray(exemplars)
    per = np.bincount(ex[np.asarray(mask, bool)], minlength=int(n_sentences))
    order = np.lexsort((np.arange(per.size), -per))[:top]
    hubs = [(int(r), int(per[r])) for r in order if per[r] > 0]
    return hubs, int(np.count_nonzero((per > 0) & (per >= share * ex.shape[0])))
