"""Rankings of every unit of one layer for a categorical attribute (docs/methods.md#c1).

Input: responses ``X`` (n_samples, n_units) and labels ``y`` (n_samples,) of any hashable type
(encoded internally: sorted classes when they sort, else in order of first appearance). Output, per
method, a :class:`Ranking`: ``order`` (every unit once, best first), ``scores`` (per unit, in unit
order, higher = better; ``order`` sorts them descending, ties by lower unit index) and ``params``
(JSON-friendly). Methods, one registry entry each (:data:`RANKERS`):

``linear``    elastic-net logistic probe on all standardised units (multinomial for 3+ classes;
              sklearn ``LogisticRegression(solver="saga", l1_ratio=..., C=..., tol=...)``, the >= 1.8
              API without the deprecated ``penalty``), run to convergence (``tol`` 1e-4, at most
              ``max_iter`` 20,000 epochs); score = sum over classes of |weight| (binary: |w|).
              ``params``: ``n_iter``, ``converged`` (False when ``max_iter`` was reached), ``nonzero``.
``gaussian``  greedy forward selection under a Gaussian class-conditional probe (Torroba Hennigen et
              al. 2020): per-class means and a per-class full covariance (``covariance="full"``, or
              ``"shared"``: the pooled within-class one) of the selected standardised units plus
              ``ridge`` * I, class priors = class frequencies. Each step adds the unit that maximises
              the training log-likelihood of the labels, sum_i log p(y_i | x_i,S) (equivalently the
              plug-in mutual-information estimate H(Y) + mean log-likelihood, kept per step in
              ``params["mi_bits"]``; training accuracy in ``params["accuracy"]``). Ties: lower unit.
              After ``max_k`` steps the units never chosen follow, ordered by the objective each
              reaches *alone* (the first step's objective), which is also the ranking's ``relevance``
              (what bottom-k is taken from): a unit's gain given the selected units would call a
              unit redundant with them irrelevant. Score = n_units - position in ``order``.
``probeless`` sum over class pairs of |mean_a - mean_b| of the raw responses (Antverg & Belinkov).
``ap``        one-vs-rest: max over classes of max(AP(x), AP(-x)) (``experts.average_precision``,
              vectorised over units): how well the unit alone, in either direction, retrieves some class.
``random``    a permutation drawn from ``seed``; score = n_units - position.

The greedy selection is incremental. Adding unit s to the selected set S changes, for every class
(covariance group) g, the conditional covariance given S by a rank-1 term (the Schur complement):
``Sigma_{.j|S+s} = Sigma_{.j|S} - Sigma_{.s|S} Sigma_{sj|S} / Sigma_{ss|S}``; ``Sigma_{s.|S}`` is one
covariance row minus ``B[:, s] @ B`` with ``B`` = L^-1 Sigma_{S.} grown one row per step. Every sample's
residual of every candidate given S (its conditional mean is linear in x_S) takes the same rank-1
update, so a candidate's log-density given S+j is the one given S plus a 1-D Gaussian term. A step
costs O(n * units) per class instead of a refit per candidate (O(units * n * k^2));
:func:`gaussian_select_naive` is that refit, kept as the reference (tests, ``bench/bench_gaussian.py``).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import blas, cho_factor, solve_triangular

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.experts.ap import average_precision

__all__ = ["Ranking", "RANKERS", "MIN_PER_CLASS", "rank", "gaussian_select", "gaussian_select_naive"]

MIN_PER_CLASS = 5  # fewer examples than this in a class: InvalidInput
_LOG2PI = math.log(2 * math.pi)
_BLOCK_ELEMS = 1 << 19  # classes x samples x units per block of the candidate objective (4 MiB)


@dataclass(frozen=True, eq=False)
class Ranking:
    """One method's ranking of every unit: ``order`` (int64, best first), ``scores`` (unit order)."""

    method: str
    order: np.ndarray
    scores: np.ndarray
    params: dict = field(default_factory=dict)
    relevance: np.ndarray | None = None  # per unit, when bottom-k is not read from ``scores`` (gaussian)

    def top(self, k: int) -> np.ndarray:
        """The k best units."""
        return self.order[:k]

    @property
    def least_relevant_by(self) -> np.ndarray:
        """Per unit, the relevance bottom-k is the lowest of (``scores`` unless ``relevance`` is set)."""
        return self.scores if self.relevance is None else self.relevance


class _Data:
    """Validated responses (float64), class codes 0..C-1, and a lazily standardised copy."""

    def __init__(self, X, y):
        x = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X)
        if x.ndim != 2 or x.dtype.kind not in "biuf" or x.shape[1] == 0:
            raise InvalidInput("X", f"must be a numeric (samples, units) matrix, got {x.dtype} {x.shape}")
        self.x = x.astype(np.float64, copy=False)
        bad = ~np.isfinite(self.x)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise InvalidInput("X", f"contains NaN or inf (sample {i}, unit {j})")
        y = y.detach().cpu().numpy() if hasattr(y, "detach") else y
        if isinstance(y, np.ndarray) and y.ndim != 1:
            raise InvalidInput("y", f"must be 1-D (one label per sample), got shape {y.shape}")
        labels = y.tolist() if isinstance(y, np.ndarray) else list(y)
        if len(labels) != x.shape[0]:
            raise InvalidInput("y", f"has {len(labels)} labels for {x.shape[0]} samples in X")
        try:
            distinct = set(labels)
        except TypeError as err:
            raise InvalidInput("y", f"labels must be hashable ({err})") from None
        try:
            self.classes = sorted(distinct)
        except TypeError:  # labels that do not sort: order of first appearance
            self.classes = list(dict.fromkeys(labels))
        if len(self.classes) < 2:
            raise InvalidInput("y", f"needs at least 2 classes, got only {self.classes!r}")
        index = {c: i for i, c in enumerate(self.classes)}
        self.codes = np.fromiter((index[v] for v in labels), np.int64, len(labels))
        self.counts = np.bincount(self.codes, minlength=len(self.classes))
        small = [f"{self.classes[c]!r} has {n}" for c, n in enumerate(self.counts) if n < MIN_PER_CLASS]
        if small:
            raise InvalidInput("y", f"every class needs >= {MIN_PER_CLASS} examples: " + ", ".join(small))
        self._z = None

    @property
    def z(self) -> np.ndarray:
        """Each unit z-scored over all samples (a constant unit becomes 0)."""
        if self._z is None:
            std = self.x.std(axis=0)
            self._z = (self.x - self.x.mean(axis=0)) / np.where(std > 0, std, 1.0)
        return self._z

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _by_scores(method: str, scores: np.ndarray, params: dict) -> Ranking:
    order = np.argsort(-scores, kind="stable").astype(np.int64)  # ties: lower unit index first
    return Ranking(method, order, scores.astype(np.float64), params)


def _by_order(method: str, order: np.ndarray, params: dict) -> Ranking:
    scores = np.empty(order.size, np.float64)
    scores[order] = np.arange(order.size, 0, -1)  # n_units for the first, 1 for the last
    return Ranking(method, np.asarray(order, np.int64), scores, params)


# --------------------------------------------------------------------------- one-pass methods


def _check_linear(d: _Data, *, seed: int, l1_ratio: float, C: float, max_iter: int, tol: float) -> None:
    if not 0 < tol <= 1:
        raise InvalidInput("tol", f"must be in (0, 1], got {tol}")
    if not 0.0 <= l1_ratio <= 1.0:
        raise InvalidInput("l1_ratio", f"must be in [0, 1], got {l1_ratio}")
    if not C > 0:
        raise InvalidInput("C", f"must be > 0, got {C}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InvalidInput("max_iter", f"must be an integer >= 1, got {max_iter!r}")


def _linear(d: _Data, *, seed: int, l1_ratio: float = 0.5, C: float = 1.0, max_iter: int = 20000,
            tol: float = 1e-4) -> Ranking:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    _check_linear(d, seed=seed, l1_ratio=l1_ratio, C=C, max_iter=max_iter, tol=tol)
    probe = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", max_iter=int(max_iter), tol=float(tol),
                               random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(d.z, d.codes)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in (w for w in caught if not issubclass(w.category, ConvergenceWarning)):  # the caller's business
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    scores = np.abs(probe.coef_).sum(axis=0)
    params = dict(l1_ratio=float(l1_ratio), C=float(C), tol=float(tol), max_iter=int(max_iter),
                  n_iter=int(np.max(probe.n_iter_)), converged=converged, nonzero=int(np.count_nonzero(scores)))
    return _by_scores("linear", scores, params)


def _probeless(d: _Data) -> Ranking:
    means = np.stack([d.x[d.codes == c].mean(axis=0) for c in range(d.n_classes)])
    a, b = np.triu_indices(d.n_classes, k=1)
    scores = np.abs(means[a] - means[b]).sum(axis=0)
    return _by_scores("probeless", scores, dict(pairs=int(a.size)))


def _ap(d: _Data) -> Ranking:
    scores = np.zeros(d.x.shape[1])
    for c in range(d.n_classes):
        hit = d.codes == c
        np.maximum(scores, average_precision(d.x, hit), out=scores)
        np.maximum(scores, average_precision(-d.x, hit), out=scores)
    return _by_scores("ap", scores, dict(combine="max over classes of max(AP(x), AP(-x)), one-vs-rest"))


def _random(d: _Data, *, seed: int) -> Ranking:
    return _by_order("random", np.random.default_rng(seed).permutation(d.x.shape[1]), dict(seed=int(seed)))

# --------------------------------------------------------------------------- gaussian


def _check_gaussian(d: _Data, *, max_k, ridge: float, covariance: str) -> int:
    if isinstance(max_k, bool) or not isinstance(max_k, (int, np.integer)) or not 1 <= max_k <= d.x.shape[1]:
        raise InvalidInput("max_k", f"must be an integer in [1, {d.x.shape[1]}] (the number of units), got {max_k!r}")
    if not ridge > 0:
        raise InvalidInput("ridge", f"must be > 0, got {ridge}")
    if covariance not in ("full", "shared"):
        raise InvalidInput("covariance", f"must be 'full' or 'shared', got {covariance!r}")
    return int(max_k)


def _logsumexp0(a: np.ndarray) -> np.ndarray:
    """log sum_c exp(a[c]) for a (C, ...) array, in whole-array passes (faster than np.logaddexp.reduce)."""
    top = a[0].copy()
    for c in range(1, a.shape[0]):
        np.maximum(top, a[c], out=top)
    acc, tmp = np.zeros_like(top), np.empty_like(top)
    for c in range(a.shape[0]):
        np.exp(np.subtract(a[c], top, out=tmp), out=tmp)
        acc += tmp
    return np.add(np.log(acc, out=acc), top, out=acc)


class _Greedy:
    """State of the incremental greedy selection (see the module docstring)."""

    def __init__(self, d: _Data, max_k: int, ridge: float, covariance: str):
        z, codes, C = d.z, d.codes, d.n_classes
        n, U = z.shape
        self.codes, self.ridge, self.n, self.t = codes, ridge, n, 0
        rows = [np.flatnonzero(codes == c) for c in range(C)]
        self.member = (codes == np.arange(C)[:, None]).astype(np.float64)  # (C, n) one-hot
        means = np.stack([z[r].mean(axis=0) for r in rows])
        centred = z - means[codes]
        # covariance groups: one per class ("full") or one pooled ("shared"); class -> group
        self.groups = [centred[r] for r in rows] if covariance == "full" else [centred]
        self.group_of = list(range(C)) if covariance == "full" else [0] * C
        self.var = np.stack([(g * g).mean(axis=0) + ridge for g in self.groups])  # Sigma_jj|S
        self.B = np.zeros((len(self.groups), max_k, U))  # rows of L^-1 Sigma_S.
        # residual of every sample, every unit, under each class's model given S (Fortran: in-place BLAS)
        self.res = [np.asfortranarray(z - means[c]) for c in range(C)]
        self.base = np.log(d.counts / n)[:, None] + np.zeros((C, n))  # log prior + log N(x_S) per sample
        self.selected = np.zeros(U, bool)

    def objective(self) -> np.ndarray:
        """Training log-likelihood of the labels with each unit added (-inf for selected units)."""
        C, (n, U) = len(self.res), self.res[0].shape
        out = np.empty(U)
        step = max(1, _BLOCK_ELEMS // (C * n))
        scale, shift = -0.5 / self.var, -0.5 * (_LOG2PI + np.log(self.var))
        for j0 in range(0, U, step):
            j1 = min(U, j0 + step)
            a = np.empty((C, j1 - j0, n))  # log p(x_i,S+j, class c) for candidate j, sample i
            true = np.zeros(j1 - j0)
            for c, g in enumerate(self.group_of):
                np.square(self.res[c][:, j0:j1].T, out=a[c])  # res is Fortran: rows of .T are contiguous
                a[c] *= scale[g, j0:j1, None]
                a[c] += shift[g, j0:j1, None]
                a[c] += self.base[c]
                true += a[c] @ self.member[c]
            out[j0:j1] = true - _logsumexp0(a).sum(axis=1)
        out[self.selected] = -np.inf
        return out

    def add(self, s: int) -> None:
        """Condition every class's model on unit s as well."""
        coef = []
        for g, cen in enumerate(self.groups):
            row = cen[:, s] @ cen / cen.shape[0]  # Sigma_s. (one row; the ridge sits on the diagonal)
            row[s] += self.ridge
            if self.t:
                row -= self.B[g, : self.t, s] @ self.B[g, : self.t]  # -> Sigma_s.|S
            vs = self.var[g, s]
            self.B[g, self.t] = row / math.sqrt(vs)
            self.var[g] -= row * row / vs
            np.maximum(self.var[g], self.ridge, out=self.var[g])  # >= ridge exactly; guards roundoff
            coef.append((row / vs, vs))
        for c, g in enumerate(self.group_of):
            k, vs = coef[g]
            r = self.res[c][:, s].copy()
            self.base[c] -= 0.5 * (_LOG2PI + math.log(vs) + r * r / vs)
            self.res[c] = blas.dger(-1.0, r, k, a=self.res[c], overwrite_a=True)  # res -= r k^T
        self.selected[s] = True
        self.t += 1

    def label_loglik(self) -> tuple[float, float]:
        """(mean log p(y|x_S), training accuracy) of the probe on the selected units."""
        lse = np.logaddexp.reduce(self.base, axis=0)
        ll = float((self.base[self.codes, np.arange(self.n)] - lse).mean())
        return ll, float(np.mean(self.base.argmax(axis=0) == self.codes))


def _greedy(d: _Data, max_k: int, ridge: float, covariance: str, *, rest: bool) -> tuple[np.ndarray, dict]:
    state = _Greedy(d, max_k, ridge, covariance)
    picks, mi, acc = [], [], []
    h_y = float(-(d.counts / d.counts.sum() * np.log(d.counts / d.counts.sum())).sum())
    alone = None
    for _ in range(max_k):
        objective = state.objective()
        alone = objective.copy() if alone is None else alone  # each unit alone: the first step's objective
        s = int(np.argmax(objective))
        state.add(s)
        picks.append(s)
        ll, a = state.label_loglik()
        mi.append((h_y + ll) / math.log(2))
        acc.append(a)
    order = np.asarray(picks, np.int64)
    if rest and max_k < d.x.shape[1]:
        others = np.flatnonzero(~state.selected)
        order = np.concatenate([order, others[np.argsort(-alone[others], kind="stable")]])
    return order, dict(mi_bits=mi, accuracy=acc, alone=alone)


def _gaussian(d: _Data, *, max_k: int = 50, ridge: float = 1e-2, covariance: str = "full") -> Ranking:
    max_k = _check_gaussian(d, max_k=max_k, ridge=ridge, covariance=covariance)
    order, path = _greedy(d, max_k, ridge, covariance, rest=True)
    alone = path.pop("alone")
    params = dict(max_k=max_k, ridge=float(ridge), covariance=covariance,
                  objective="training log-likelihood of the labels", selected=order[:max_k].tolist(),
                  rest="the units not selected follow by the objective each reaches alone (also bottom-k's relevance)",
                  **path)
    r = _by_order("gaussian", order, params)
    return Ranking(r.method, r.order, r.scores, r.params, relevance=alone)


def gaussian_select(X, y, max_k: int = 50, *, ridge: float = 1e-2, covariance: str = "full") -> np.ndarray:
    """The first ``max_k`` units of the greedy gaussian selection (incremental), in order."""
    d = _Data(X, y)
    max_k = _check_gaussian(d, max_k=max_k, ridge=ridge, covariance=covariance)
    return _greedy(d, max_k, ridge, covariance, rest=False)[0]


def _refit_loglik(d: _Data, cols: list[int], ridge: float, covariance: str) -> float:
    """Training log-likelihood of the labels under a probe fitted from scratch on units ``cols``."""
    zs, codes, n = d.z[:, cols], d.codes, d.x.shape[0]
    rows = [np.flatnonzero(codes == c) for c in range(d.n_classes)]
    means = np.stack([zs[r].mean(axis=0) for r in rows])
    centred = zs - means[codes]
    ridge_i = ridge * np.eye(len(cols))
    groups = [centred[r] for r in rows] if covariance == "full" else [centred] * len(rows)
    dens = np.empty((d.n_classes, n))
    for c, r in enumerate(rows):
        g = groups[c]
        lower = cho_factor(g.T @ g / g.shape[0] + ridge_i, lower=True)[0]  # refit (shared: once per class, too)
        w = solve_triangular(lower, (zs - means[c]).T, lower=True)
        log_det = 2 * np.log(np.diag(lower)).sum()
        dens[c] = math.log(r.size / n) - 0.5 * ((w * w).sum(axis=0) + log_det + len(cols) * _LOG2PI)
    return float((dens[codes, np.arange(n)] - np.logaddexp.reduce(dens, axis=0)).sum())


def gaussian_select_naive(X, y, max_k: int = 50, *, ridge: float = 1e-2, covariance: str = "full") -> np.ndarray:
    """Reference: the same greedy selection, refitting the probe (means, covariance, Cholesky) per candidate."""
    d = _Data(X, y)
    max_k = _check_gaussian(d, max_k=max_k, ridge=ridge, covariance=covariance)
    picks: list[int] = []
    for _ in range(max_k):
        values = [_refit_loglik(d, picks + [j], ridge, covariance) if j not in picks else -np.inf
                  for j in range(d.x.shape[1])]
        picks.append(int(np.argmax(values)))  # the first maximum: ties to the lower unit
    return np.asarray(picks, np.int64)


# --------------------------------------------------------------------------- entry point

RANKERS: dict[str, Callable[..., Ranking]] = {
    "linear": _linear,
    "gaussian": _gaussian,
    "probeless": _probeless,
    "ap": _ap,
    "random": _random,
}
_CHECKS = {"linear": _check_linear, "gaussian": _check_gaussian}  # all run before any method does


def _options(fn: Callable) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def rank(X, y, methods: Iterable[str] = tuple(RANKERS), seed: int = 0, max_k: int = 50, **opts) -> dict[str, Ranking]:
    """Rank every unit of ``X`` (samples, units) for labels ``y`` by each method, in the order given.

    ``opts`` go to the methods that take them: ``l1_ratio``, ``C``, ``max_iter``, ``tol`` (linear), ``ridge``,
    ``covariance`` (gaussian). ``max_k`` (gaussian only) must be at most the number of units.
    Raises ``InvalidInput`` naming the field: ``methods``, ``X``, ``y``, ``max_k`` or an option."""
    methods = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in methods if m not in RANKERS]
    if unknown or not methods:
        message = f"unknown method(s) {unknown} (known: {sorted(RANKERS)})" if unknown else "is empty"
        raise InvalidInput("methods", message)
    known = set().union(*(_options(fn) for fn in RANKERS.values())) - {"seed", "max_k"}
    for name in opts:
        if name not in known:
            raise InvalidInput(name, f"unknown option (known: {sorted(known)})")
    d = _Data(X, y)
    given = dict(opts, seed=seed, max_k=max_k)
    calls = {}
    for m in dict.fromkeys(methods):
        bound = inspect.signature(RANKERS[m]).bind(d, **{k: v for k, v in given.items() if k in _options(RANKERS[m])})
        bound.apply_defaults()
        if m in _CHECKS:
            _CHECKS[m](**bound.arguments)
        calls[m] = bound
    return {m: RANKERS[m](*b.args, **b.kwargs) for m, b in calls.items()}
