"""Held-out verification of unit descriptions: does a descriptor predict the unit's response?

A description (unit m, descriptor c) is made on the calibration half (docs/methods.md#b4, #b5).
On the held-out half it becomes a prediction: the sentences holding c (positives) should get larger
responses of m than those not holding it (negatives). Sentences whose descriptor generation failed
(``None``) are left out of every test, as in B.4. Per pair:

- **AUROC** = U / (n_pos * n_neg), U the Mann-Whitney statistic of the positives, ties counting 1/2
  (equals ``sklearn.metrics.roc_auc_score``); **AP** as ``sklearn.metrics.average_precision_score``
  (``workers.experts.ap.average_precision``), with its chance level n_pos / (n_pos + n_neg).
- **p**: the Mann-Whitney test of ``alternative`` (default one-sided, AUROC > 0.5), equal to
  ``scipy.stats.mannwhitneyu(method="auto")``: *exact* when the unit has no tied responses on the
  held-out sentences and the smaller group has at most 8, else the normal approximation with tie
  and continuity corrections (``"asymptotic"``). The exact null counts are computed here as the
  q-binomial coefficients [n_pos + n_neg choose n_pos]_q in exact integers (scipy's recursion takes
  minutes at 8 x 50,000; this, under 1 s), and only while n_pos * n_neg <= ``_EXACT_CELLS``.
- A pair with no held-out positive or no negative is **untestable**: NaN scores (None in
  ``to_dict``), never verified, outside the BH family.
- **q**: Benjamini-Hochberg over the testable pairs (the family). **Verified**: q <= fdr and
  AUROC > 0.5.
- **Null** (``null="permute"``): the same procedure after one seeded permutation of the responses
  across the held-out (non-failed) sentences, the same for every unit: units keep their marginal
  distributions and their correlations but lose their link to the sentences. ``n_verified_null``
  is how many verifications chance alone gives.

Speed: each needed unit is ranked once (average ranks, tie term); the rank sums of its pairs are
gathered over the smaller side (the ranks sum to n(n+1)/2); the null reuses the ranks, permuted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtr

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.describe.incidence import incidence
from neuroscribe.workers.describe.pvalues import benjamini_hochberg
from neuroscribe.workers.experts.ap import average_precision

__all__ = ["Verification", "verify"]

_CELLS = 1 << 22  # sentences x units ranked at once
_GATHER = 1 << 23  # ranks gathered at once
_EXACT_SMALL = 8  # scipy's rule: exact when the smaller group has at most 8 (and no ties)
_EXACT_CELLS = 1 << 19  # ... and n_pos * n_neg at most this
_ALTERNATIVES = ("greater", "less", "two-sided")


@dataclass(frozen=True, eq=False)
class Verification:
    """Per pair (index i of ``pairs``): ``unit``, ``descriptor``, ``n_pos``, ``n_neg``, ``auroc``,
    ``ap``, ``ap_chance``, ``p``, ``q`` (float, NaN when untestable), ``exact`` (p from the exact
    distribution), ``verified``. ``n_sentences`` held-out sentences, ``n_failed`` of them left out."""

    unit: np.ndarray
    descriptor: tuple[str, ...]
    n_pos: np.ndarray
    n_neg: np.ndarray
    auroc: np.ndarray
    ap: np.ndarray
    ap_chance: np.ndarray
    p: np.ndarray
    q: np.ndarray
    exact: np.ndarray
    verified: np.ndarray
    fdr: float
    alternative: str
    n_sentences: int
    n_failed: int
    n_verified_null: int | None
    null: str | None
    null_seed: int

    @property
    def testable(self) -> np.ndarray:
        return (self.n_pos > 0) & (self.n_neg > 0)

    @property
    def n_pairs(self) -> int:
        return int(self.unit.size)

    @property
    def n_testable(self) -> int:
        return int(np.count_nonzero(self.testable))

    @property
    def n_untestable(self) -> int:
        return self.n_pairs - self.n_testable

    @property
    def n_verified(self) -> int:
        return int(np.count_nonzero(self.verified))

    def per_unit_best(self, n_units: int) -> list[float | None]:
        """Each unit's best held-out AUROC among its testable pairs (None without one)."""
        best = np.full(int(n_units), np.nan)
        t = self.testable
        if t.any() and int(self.unit[t].max()) >= n_units:
            raise InvalidInput("n_units", f"pairs name unit {int(self.unit[t].max())}, beyond {n_units}")
        np.fmax.at(best, self.unit[t], self.auroc[t])
        return [None if np.isnan(v) else float(v) for v in best]

    def to_dict(self) -> dict:
        """JSON-able summary and per-pair rows (NaN -> None)."""
        def num(v):
            return None if np.isnan(v) else float(v)
        rows = [{"unit": int(self.unit[i]), "descriptor": self.descriptor[i], "n_pos": int(self.n_pos[i]),
                 "n_neg": int(self.n_neg[i]), "auroc": num(self.auroc[i]), "ap": num(self.ap[i]),
                 "ap_chance": num(self.ap_chance[i]), "p": num(self.p[i]), "q": num(self.q[i]),
                 "exact": bool(self.exact[i]), "verified": bool(self.verified[i])} for i in range(self.n_pairs)]
        return {"fdr": self.fdr, "alternative": self.alternative, "null": self.null, "null_seed": self.null_seed,
                "n_sentences": self.n_sentences, "n_failed": self.n_failed, "n_pairs": self.n_pairs,
                "n_testable": self.n_testable, "n_untestable": self.n_untestable, "n_verified": self.n_verified,
                "n_verified_null": self.n_verified_null, "pairs": rows}


@lru_cache(maxsize=32)
def _exact_tail(n1: int, n2: int) -> tuple[np.ndarray, int]:
    """tail[u] = number of the C(n1+n2, n1) arrangements with U >= u (no ties), and that total.

    The counts of U are the coefficients of the q-binomial prod_i (1 - q^(n+i)) / (1 - q^i),
    i = 1..m (m <= n); after every factor the product is a polynomial with non-negative
    coefficients at most C(n+m, m), so int64 is exact while 2 C(n+m, m) < 2^62 (else Python ints)."""
    m, n = min(n1, n2), max(n1, n2)
    size, total = m * n + 1, math.comb(m + n, m)
    dtype = np.int64 if 2 * total < 1 << 62 else object
    c = np.zeros(size, dtype)
    c[0] = 1
    for i in range(1, m + 1):
        if n + i < size:  # times (1 - q^(n+i))
            c[n + i:] = c[n + i:] - c[: size - n - i]
        pad = np.zeros(-size % i, dtype)  # divided by (1 - q^i): cumulative sums with stride i
        c = np.cumsum(np.concatenate([c, pad]).reshape(-1, i), axis=0).ravel()[:size]
    return np.cumsum(c[::-1])[::-1], total


def _p_values(u1, n1, n2, tie, exact, alternative: str) -> np.ndarray:
    """Mann-Whitney p-values (as scipy) for statistics ``u1`` of the positives, per pair."""
    u2 = n1 * n2 - u1
    u = u1 if alternative == "greater" else u2 if alternative == "less" else np.maximum(u1, u2)
    nn = n1 + n2
    s = np.sqrt(n1 * n2 / 12 * ((nn + 1) - tie / (nn * (nn - 1.0))))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ndtr(-(u - n1 * n2 / 2 - 0.5) / s)
    idx = np.flatnonzero(exact)
    if idx.size:
        key = n1[idx] * (int(n1.max()) + int(n2.max()) + 1) + n2[idx]
        for k in np.unique(key):
            sel = idx[key == k]
            tail, total = _exact_tail(int(n1[sel[0]]), int(n2[sel[0]]))
            hits = tail[np.rint(u[sel]).astype(np.int64)]
            p[sel] = (hits / total).astype(np.float64) if hits.dtype == object else hits / float(total)
    if alternative == "two-sided":
        p = 2 * p
    return np.clip(p, 0.0, 1.0)


def _rank_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based) in every row of x (c, n), and each row's tie term sum(t^3 - t)."""
    c, n = x.shape
    order = np.argsort(x, axis=1)
    s = np.take_along_axis(x, order, axis=1)
    new = np.ones((c, n), bool)
    np.not_equal(s[:, 1:], s[:, :-1], out=new[:, 1:])
    starts = np.flatnonzero(new)  # runs of equal values, row after row
    lengths = np.diff(starts, append=c * n)
    ranks = np.empty((c, n))
    np.put_along_axis(ranks, order, np.repeat((2 * (starts % n) + lengths + 1) / 2.0, lengths).reshape(c, n), axis=1)
    t = lengths.astype(np.float64)
    return ranks, np.bincount(starts // n, t ** 3 - t, minlength=c)


def _rank_sums(x, known, unit, inv, sides, perm) -> tuple[np.ndarray, np.ndarray]:
    """Per pair (unit[i], side inv[i]): the sum of the unit's ranks over the side's rows, with the
    responses as given (row 0) and permuted by ``perm`` (row 1, when given), and the unit's tie term.
    Units are ranked in chunks of ``_CELLS``; the ranks are gathered in batches of ``_GATHER``."""
    side_len = np.array([r.size for r in sides], np.int64)
    side_ptr, side_all = np.cumsum(side_len) - side_len, np.concatenate(sides)
    rsum, tie = np.zeros((2, unit.size)), np.zeros(unit.size)
    order = np.argsort(unit, kind="stable")
    needed = np.unique(unit)
    step = max(1, _CELLS // known.size)
    for c0 in range(0, needed.size, step):
        cu = needed[c0:c0 + step]
        lo, hi = np.searchsorted(unit[order], [cu[0], cu[-1] + 1])
        block = np.ascontiguousarray(x[np.ix_(known, cu)].T, np.float64)
        if np.isnan(block).any():
            raise InvalidInput("responses", "contains NaN")
        ranks, tie_u = _rank_rows(block)
        ps = order[lo:hi]  # this chunk's pairs
        col = np.searchsorted(cu, unit[ps])
        tie[ps] = tie_u[col]
        lens = side_len[inv[ps]]
        cum = np.cumsum(lens)
        b0 = 0
        while b0 < ps.size:
            b1 = max(b0 + 1, int(np.searchsorted(cum, cum[b0] - lens[b0] + _GATHER, side="right")))
            ln = lens[b0:b1]
            ofs = np.cumsum(ln) - ln
            flat = side_all[np.repeat(side_ptr[inv[ps[b0:b1]]] - ofs, ln) + np.arange(ln.sum())]
            cols = np.repeat(col[b0:b1], ln)
            rsum[0, ps[b0:b1]] = np.add.reduceat(ranks[cols, flat], ofs)
            if perm is not None:
                rsum[1, ps[b0:b1]] = np.add.reduceat(ranks[cols, perm[flat]], ofs)
            b0 = b1
    return rsum, tie


def _check_pairs(pairs, n_units: int) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise InvalidInput("pairs", "must be a sequence of (unit index, descriptor) pairs")
    units, names = np.zeros(len(pairs), np.int64), []
    for i, pair in enumerate(pairs):
        try:
            u, d = pair
        except (TypeError, ValueError):
            raise InvalidInput(f"pairs:{i}", f"must be a (unit index, descriptor) pair, got {pair!r}") from None
        if isinstance(u, (bool, np.bool_)) or not isinstance(u, (int, np.integer)) or not 0 <= u < n_units:
            raise InvalidInput(f"pairs:{i}", f"unit must be an integer in [0, {n_units}), got {u!r}")
        if not isinstance(d, str):
            raise InvalidInput(f"pairs:{i}", f"descriptor must be a string, got {d!r}")
        units[i] = u
        names.append(d)
    return units, tuple(names)


def verify(responses, holds, pairs, *, fdr: float = 0.05, alternative: str = "greater", null_seed: int = 0,
           null: str | None = "permute") -> Verification:
    """Verify every (unit, descriptor) pair of ``pairs`` on held-out sentences.

    ``responses``: (n, U) responses of every unit on the held-out sentences (computed in float64);
    ``holds``: n descriptor sets (``None``: generation failed; an ``Incidence`` is accepted);
    ``pairs``: (unit index, descriptor) to test. See the module docstring for the statistics."""
    x = np.asarray(responses)
    if x.ndim != 2 or x.dtype.kind not in "biuf":
        raise InvalidInput("responses", f"must be a numeric (sentences, units) matrix, got {x.dtype} {x.shape}")
    n, n_units = x.shape
    if isinstance(fdr, bool) or not isinstance(fdr, (int, float)) or not 0.0 < fdr <= 1.0:
        raise InvalidInput("fdr", f"must be in (0, 1], got {fdr!r}")
    if alternative not in _ALTERNATIVES:
        raise InvalidInput("alternative", f"must be one of {_ALTERNATIVES}, got {alternative!r}")
    if null not in ("permute", None):
        raise InvalidInput("null", f"must be 'permute' or None, got {null!r}")
    inc = incidence(holds)
    if inc.n_sentences != n:
        raise InvalidInput("holds", f"{inc.n_sentences} descriptor sets for {n} held-out sentences (responses rows)")
    unit, names = _check_pairs(pairs, n_units)
    known = np.flatnonzero(~inc.failed)
    n_known = known.size
    col_of = {name: j for j, name in enumerate(inc.names)}
    csc = inc.matrix.tocsc()
    csc.sort_indices()
    pos_count = np.diff(csc.indptr)  # failed rows are empty: every positive is a known sentence
    d_col = np.array([col_of.get(d, -1) for d in names], np.int64)
    n_pos = np.zeros(unit.size, np.int64)
    n_pos[d_col >= 0] = pos_count[d_col[d_col >= 0]]
    n_neg = n_known - n_pos
    testable = (n_pos > 0) & (n_neg > 0)
    nan = np.full(unit.size, np.nan)
    auroc, ap, p, q, ap_chance = nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy()
    exact, verified = np.zeros(unit.size, bool), np.zeros(unit.size, bool)
    n_verified_null = None if null is None else 0
    tidx = np.flatnonzero(testable)
    if tidx.size:
        known_pos = np.cumsum(~inc.failed) - 1  # sentence row -> position among the known sentences
        used, inv = np.unique(d_col[tidx], return_inverse=True)
        positives = [known_pos[csc.indices[csc.indptr[c]:csc.indptr[c + 1]]] for c in used]
        sides = [np.setdiff1d(np.arange(n_known), r) if 2 * r.size > n_known else r for r in positives]
        use_neg = np.array([2 * r.size > n_known for r in positives])  # gather the smaller side
        perm = np.random.default_rng(null_seed).permutation(n_known) if null else None
        rsum, tie = _rank_sums(x, known, unit[tidx], inv, sides, perm)
        n1, n2 = n_pos[tidx].astype(np.float64), n_neg[tidx].astype(np.float64)
        u1 = np.where(use_neg[inv], n_known * (n_known + 1) / 2.0 - rsum, rsum) - n1 * (n1 + 1) / 2
        ex = exact[tidx] = (tie == 0) & (np.minimum(n1, n2) <= _EXACT_SMALL) & (n1 * n2 <= _EXACT_CELLS)
        auroc[tidx], ap_chance[tidx] = u1[0] / (n1 * n2), n1 / (n1 + n2)
        p[tidx] = _p_values(u1[0], n_pos[tidx], n_neg[tidx], tie, ex, alternative)
        q[tidx] = benjamini_hochberg(p[tidx])
        verified[tidx] = (q[tidx] <= fdr) & (auroc[tidx] > 0.5)
        if perm is not None:
            q_null = benjamini_hochberg(_p_values(u1[1], n_pos[tidx], n_neg[tidx], tie, ex, alternative))
            n_verified_null = int(np.count_nonzero((q_null <= fdr) & (u1[1] > n1 * n2 / 2)))
        by_desc = np.argsort(inv, kind="stable")
        bounds = np.searchsorted(inv[by_desc], np.arange(used.size + 1))
        for j, rows in enumerate(positives):  # AP: one call per descriptor, over all its units
            sel = tidx[by_desc[bounds[j]:bounds[j + 1]]]
            labels = np.zeros(n_known, bool)
            labels[rows] = True
            ap[sel] = average_precision(x[np.ix_(known, unit[sel])], labels)
    return Verification(unit=unit, descriptor=names, n_pos=n_pos, n_neg=n_neg, auroc=auroc, ap=ap,
                        ap_chance=ap_chance, p=p, q=q, exact=exact, verified=verified, fdr=float(fdr),
                        alternative=alternative, n_sentences=n, n_failed=inc.n_failed,
                        n_verified_null=n_verified_null, null=null, null_seed=int(null_seed))
