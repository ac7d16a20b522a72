"""Judging unit rankings by probing (METHODS.md part C, steps 2 and 4; Antverg & Belinkov 2022).

A *ranking* is an ``order`` array: every unit index of ``X``'s columns exactly once, best first.

``probe_curve`` measures **encoded information**: for each ranking and each k it trains a
*separate* probe (``probe``, by default a standardised L2 logistic regression -- not the
elastic-net / Gaussian probes that produce the rankings) on the top-k, the bottom-k and random-k
units, and reports held-out accuracy.

* Seeds: seed index i uses the random state ``seed + i``. It fixes one stratified train/test split
  (``stratified_split``) and one random permutation of the units (``random_order``); random-k is
  that permutation's first k, so random-k sets are nested across k like a ranking's. Every ranking,
  selection and k of seed i uses the *same* split: differences between them are paired.
* Summary per (ranking, selection, k): the mean over seeds and a 95% Student-t interval
  ``mean +- t(0.975, n-1) * sd / sqrt(n)`` (``t_interval``; NaN bounds with one seed).
* Random-k does not depend on the ranking: it is computed once and reported under every ranking.
* Baseline: the majority class of each training split, scored on its test split.
* The units of a selection are sorted before fitting, and fits are cached per (seed, unit set):
  equal sets give equal accuracies whatever ranking or selection they came from.

**The confound.** A ranking judged by the probe that produced it mixes probe quality with ranking
quality. ``same_probe`` maps a ranking's name to that ranking's own probe as a callable
``fit_predict(X_train, y_train, X_test) -> y_pred`` (X_* are (n, k) float arrays holding the top-k
units only, in ascending unit order; y_pred has one label per test row). It is retrained on the
top-k units of every split and reported as selection ``"top_same_probe"`` beside the independent
probe's ``"top"`` (``ProbeCurve.side_by_side``).

``agreement`` measures step 4: pairwise overlap of top-k sets (``|A & B| / k`` and Jaccard), with
the chance overlap ``k / n_units`` of two random top-k sets for reference.

The plots use matplotlib's Agg canvas (``Figure``, no pyplot) and write a CSV of the plotted
numbers beside each PNG (same path, ``.csv``).
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from neuroscribe.errors import InvalidInput

__all__ = ["PROBES", "SELECTIONS", "MIN_PER_CLASS", "FitPredict", "t_interval", "stratified_split",
           "random_order", "Summary", "ProbeCurve", "probe_curve", "Agreement", "agreement",
           "plot_accuracy_vs_k", "plot_agreement"]

FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
SELECTIONS = ("top", "bottom", "random", "top_same_probe")
MIN_PER_CLASS = 5


# --------------------------------------------------------------------------- probes (a registry)


def _logreg(random_state: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))


def _linear_svm(random_state: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=5000, random_state=random_state))


def _mlp(random_state: int):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3,
                                                         max_iter=500, random_state=random_state))


PROBES: dict[str, Callable[[int], object]] = {
    "logreg": _logreg,  # standardised L2 logistic regression, C = 1 (the default)
    "linear_svm": _linear_svm,  # standardised linear SVM (squared hinge, L2), C = 1
    "mlp": _mlp,  # standardised one-hidden-layer MLP (64 ReLU units, alpha 1e-3)
}
"""Probe name -> factory ``(random_state) -> unfitted sklearn classifier``."""


# --------------------------------------------------------------------------- statistics, splits


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean; NaN bounds for fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, v.size - 1)) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, mean - half, mean + half


def stratified_split(y, test_size: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices, sorted: one stratified shuffle split, a function of its inputs."""
    from sklearn.model_selection import StratifiedShuffleSplit

    y = np.asarray(y)
    sss = StratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
    train, test = next(sss.split(np.zeros((len(y), 1)), y))
    return np.sort(train), np.sort(test)


def random_order(n_units: int, random_state: int) -> np.ndarray:
    """The random ranking of seed ``random_state``: random-k is its first k units."""
    return np.random.default_rng([random_state, 1]).permutation(n_units)


# --------------------------------------------------------------------------- validation


def _check_ranking(name: str, order, n_units: int) -> np.ndarray:
    o = np.asarray(order)
    where = f"rankings:{name}"
    if o.ndim != 1 or o.dtype.kind not in "iu":
        raise InvalidInput(where, f"must be a 1-D integer array of unit indices, got {o.dtype} {o.shape}")
    if o.size != n_units or not np.array_equal(np.sort(o), np.arange(n_units)):
        raise InvalidInput(where, f"must be a permutation of all {n_units} units (each index 0..{n_units - 1} "
                                  f"once); got {o.size} entries, {np.unique(o).size} distinct")
    return o.astype(np.intp)


def _check_rankings(rankings: Mapping[str, np.ndarray], n_units: int | None) -> dict[str, np.ndarray]:
    if not isinstance(rankings, Mapping) or not rankings:
        raise InvalidInput("rankings", "give at least one ranking, as a mapping name -> order array")
    if n_units is None:
        n_units = int(np.asarray(next(iter(rankings.values()))).size)
    return {str(k): _check_ranking(str(k), v, n_units) for k, v in rankings.items()}


def _check_ks(ks, n_units: int) -> tuple[int, ...]:
    try:
        raw = np.atleast_1d(np.asarray(ks)).tolist()
        vals = [int(k) for k in raw]
    except (TypeError, ValueError):
        raise InvalidInput("ks", f"must be whole numbers, got {ks!r}") from None
    if any(v != r for v, r in zip(vals, raw)):
        raise InvalidInput("ks", f"must be whole numbers, got {ks!r}")
    if not vals:
        raise InvalidInput("ks", "give at least one k")
    for k in vals:
        if k < 1:
            raise InvalidInput("ks", f"k must be at least 1, got {k}")
        if k > n_units:
            raise InvalidInput("ks", f"k = {k} is larger than the number of units ({n_units})")
    return tuple(sorted(set(vals)))


def _check_data(X, y, test_size: float, seeds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] == 0:
        raise InvalidInput("X", f"must be a 2-D (examples, units) array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise InvalidInput("X", "contains NaN or infinite values")
    if y.ndim != 1 or len(y) != len(X):
        raise InvalidInput("y", f"needs one label per row of X: X has {len(X)} rows, y has shape {y.shape}")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise InvalidInput("y", f"only one class ({classes[0].item()!r}) in y; probing needs at least two"
                           if classes.size else "y is empty")
    for c, n in zip(classes, counts):
        if n < MIN_PER_CLASS:
            raise InvalidInput("y", f"class {c.item()!r} has {n} examples; each class needs at least {MIN_PER_CLASS}")
    if not 0.0 < float(test_size) < 1.0:
        raise InvalidInput("test_size", f"must be a fraction in (0, 1), got {test_size!r}")
    n_test = math.ceil(float(test_size) * len(y))
    if n_test < classes.size or len(y) - n_test < classes.size:
        raise InvalidInput("test_size", f"{test_size} of {len(y)} rows leaves a side smaller than the "
                                        f"{classes.size} classes")
    if int(seeds) < 1:
        raise InvalidInput("seeds", f"must be at least 1, got {seeds!r}")
    return X, y, classes


# --------------------------------------------------------------------------- probe_curve


@dataclass(frozen=True)
class Summary:
    """Accuracy over seeds: mean, 95% t-interval, number of seeds, per-seed values."""

    mean: float
    ci_low: float
    ci_high: float
    n_seeds: int
    per_seed: tuple[float, ...]

    @classmethod
    def of(cls, values) -> Summary:
        mean, lo, hi = t_interval(values)
        return cls(mean, lo, hi, len(values), tuple(float(v) for v in values))


@dataclass(frozen=True, eq=False)
class ProbeCurve:
    """What ``probe_curve`` measured. ``accuracy[(ranking, selection, k)]``: per-seed accuracies."""

    probe: str
    rankings: tuple[str, ...]
    ks: tuple[int, ...]
    n_units: int
    classes: tuple
    random_states: tuple[int, ...]
    splits: tuple[tuple[np.ndarray, np.ndarray], ...]  # per seed: (train rows, test rows)
    random_orders: tuple[np.ndarray, ...]  # per seed: random-k is the first k
    accuracy: dict[tuple[str, str, int], np.ndarray]
    majority: np.ndarray  # per seed: majority-class baseline accuracy
    same_probe: tuple[str, ...] = field(default=())  # rankings evaluated with their own probe too

    def summary(self, ranking: str, selection: str, k: int) -> Summary:
        return Summary.of(self.accuracy[(ranking, selection, int(k))])

    def majority_summary(self) -> Summary:
        return Summary.of(self.majority)

    def selections(self, ranking: str) -> tuple[str, ...]:
        return SELECTIONS if ranking in self.same_probe else SELECTIONS[:3]

    def to_rows(self, *, baseline: bool = True) -> list[dict]:
        """Flat rows for a CSV: ranking, selection, probe, k, accuracy (seed mean), ci_low, ci_high,
        n_seeds. ``probe`` is the independent probe's name, or ``"same"`` for ``top_same_probe``.
        With ``baseline``, one last row ``ranking="", selection="majority", probe="majority", k=0``."""
        rows = []
        for r in self.rankings:
            for sel in self.selections(r):
                for k in self.ks:
                    s = self.summary(r, sel, k)
                    rows.append(_row(r, sel, "same" if sel == "top_same_probe" else self.probe, k, s))
        if baseline:
            rows.append(_row("", "majority", "majority", 0, self.majority_summary()))
        return rows

    def side_by_side(self) -> list[dict]:
        """Per ranking with a same-probe and k: independent vs own-probe top-k accuracy, and the gap."""
        rows = []
        for r in self.same_probe:
            for k in self.ks:
                ind, own = self.summary(r, "top", k), self.summary(r, "top_same_probe", k)
                rows.append({"ranking": r, "k": k, "probe": self.probe, "independent": ind.mean,
                             "independent_ci_low": ind.ci_low, "independent_ci_high": ind.ci_high,
                             "same_probe": own.mean, "same_probe_ci_low": own.ci_low,
                             "same_probe_ci_high": own.ci_high, "gap": own.mean - ind.mean})
        return rows


def _row(ranking: str, selection: str, probe: str, k: int, s: Summary) -> dict:
    return {"ranking": ranking, "selection": selection, "probe": probe, "k": int(k), "accuracy": s.mean,
            "ci_low": s.ci_low, "ci_high": s.ci_high, "n_seeds": s.n_seeds}


def _fit_score(probe: str, random_state: int, X_tr, y_tr, X_te, y_te) -> float:
    from sklearn.exceptions import ConvergenceWarning

    est = PROBES[probe](random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_tr, y_tr)
    return float(np.mean(est.predict(X_te) == y_te))


def probe_curve(X, y, rankings: Mapping[str, np.ndarray], ks: Sequence[int], *, probe: str = "logreg",
                seeds: int = 5, test_size: float = 0.3, seed: int = 0,
                same_probe: Mapping[str, FitPredict] | None = None) -> ProbeCurve:
    """Held-out accuracy of a separate ``probe`` on the top-k / bottom-k / random-k units.

    ``X`` (n, n_units) responses, ``y`` (n,) class labels (at least two classes, each with at least
    ``MIN_PER_CLASS`` rows), ``rankings`` name -> order (a permutation of all units, best first),
    ``ks`` the k values (deduplicated and sorted), ``probe`` a name in ``PROBES``, ``seeds`` the
    number of paired splits, ``same_probe`` name -> ``fit_predict`` of that ranking's own probe.
    """
    X, y, classes = _check_data(X, y, test_size, seeds)
    n_units = X.shape[1]
    orders = _check_rankings(rankings, n_units)
    ks_t = _check_ks(ks, n_units)
    if probe not in PROBES:
        raise InvalidInput("probe", f"unknown probe {probe!r}; choose one of {sorted(PROBES)}")
    same = dict(same_probe or {})
    for name, fn in same.items():
        if name not in orders:
            raise InvalidInput("same_probe", f"{name!r} is not one of the rankings {list(orders)}")
        if not callable(fn):
            raise InvalidInput("same_probe", f"the probe of {name!r} must be a callable "
                                             "fit_predict(X_train, y_train, X_test) -> y_pred")

    states = tuple(int(seed) + i for i in range(int(seeds)))
    splits = tuple(stratified_split(y, test_size, rs) for rs in states)
    rand = tuple(random_order(n_units, rs) for rs in states)
    acc: dict[tuple[str, str, int], np.ndarray] = {}
    cache: dict[tuple[int, bytes], float] = {}

    def score(i: int, units: np.ndarray) -> float:
        units = np.sort(units)
        key = (i, units.tobytes())
        if key not in cache:
            tr, te = splits[i]
            cache[key] = _fit_score(probe, states[i], X[np.ix_(tr, units)], y[tr], X[np.ix_(te, units)], y[te])
        return cache[key]

    for k in ks_t:
        random_k = np.array([score(i, rand[i][:k]) for i in range(len(states))])
        for name, order in orders.items():
            acc[(name, "top", k)] = np.array([score(i, order[:k]) for i in range(len(states))])
            acc[(name, "bottom", k)] = np.array([score(i, order[-k:]) for i in range(len(states))])
            acc[(name, "random", k)] = random_k
            if name in same:
                units = np.sort(order[:k])
                acc[(name, "top_same_probe", k)] = np.array(
                    [_same_score(name, same[name], X, y, splits[i], units) for i in range(len(states))])

    majority = []
    for tr, te in splits:
        labels, counts = np.unique(y[tr], return_counts=True)
        majority.append(float(np.mean(y[te] == labels[np.argmax(counts)])))
    return ProbeCurve(probe=probe, rankings=tuple(orders), ks=ks_t, n_units=n_units,
                      classes=tuple(classes.tolist()), random_states=states, splits=splits,
                      random_orders=rand, accuracy=acc, majority=np.array(majority),
                      same_probe=tuple(n for n in orders if n in same))


def _same_score(name: str, fit_predict: FitPredict, X, y, split, units) -> float:
    tr, te = split
    pred = np.asarray(fit_predict(X[np.ix_(tr, units)], y[tr], X[np.ix_(te, units)]))
    if pred.shape != (len(te),):
        raise InvalidInput(f"same_probe:{name}", f"fit_predict returned shape {pred.shape}, "
                                                 f"expected ({len(te)},): one label per test row")
    return float(np.mean(pred == y[te]))


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True, eq=False)
class Agreement:
    """Pairwise top-k overlap. ``overlap[k]`` / ``jaccard[k]``: (R, R) matrices in ``names`` order
    (diagonal 1); ``chance[k] = k / n_units``, the expected ``|A & B| / k`` of two random top-k sets;
    ``rows``: one dict per unordered pair and k."""

    names: tuple[str, ...]
    ks: tuple[int, ...]
    n_units: int
    overlap: dict[int, np.ndarray]
    jaccard: dict[int, np.ndarray]
    chance: dict[int, float]
    rows: list[dict]


def agreement(rankings: Mapping[str, np.ndarray], ks: Sequence[int], *, n_units: int | None = None) -> Agreement:
    """Overlap of the rankings' top-k sets: ``|A & B| / k`` and ``|A & B| / |A | B|``, per pair and k.

    ``n_units`` defaults to the first ranking's length; every ranking must be a permutation of it.
    Each row also carries ``chance_overlap = k / n`` and the plug-in ``chance_jaccard = c / (2 - c)``.
    """
    orders = _check_rankings(rankings, n_units)
    n = int(next(iter(orders.values())).size)
    ks_t = _check_ks(ks, n)
    names = tuple(orders)
    R = len(names)
    ov, jac, chance, rows = {}, {}, {}, []
    for k in ks_t:
        member = np.zeros((R, n), dtype=np.float64)
        for i, name in enumerate(names):
            member[i, orders[name][:k]] = 1.0
        inter = member @ member.T
        ov[k] = inter / k
        jac[k] = inter / (2 * k - inter)
        c = k / n
        chance[k] = c
        for i, j in combinations(range(R), 2):
            rows.append({"k": k, "a": names[i], "b": names[j], "intersection": int(inter[i, j]),
                         "overlap": float(ov[k][i, j]), "jaccard": float(jac[k][i, j]),
                         "chance_overlap": c, "chance_jaccard": c / (2 - c)})
    return Agreement(names=names, ks=ks_t, n_units=n, overlap=ov, jaccard=jac, chance=chance, rows=rows)


# --------------------------------------------------------------------------- plots (+ CSV beside)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in row])


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def plot_accuracy_vs_k(result: ProbeCurve, path, *, same_probe: bool = True) -> tuple[Path, Path]:
    """Accuracy vs k: one solid line per ranking (top-k) with its 95% band; random-k dashed (grey);
    each ranking's own probe dash-dotted in its colour (when given and ``same_probe``); the
    majority baseline dotted. Writes ``path`` (PNG) and ``path`` with ``.csv`` holding exactly the
    plotted numbers (columns of ``ProbeCurve.to_rows``; random-k and the baseline with ranking "").
    Returns (png, csv)."""
    png = Path(path)
    png.parent.mkdir(parents=True, exist_ok=True)
    ks = list(result.ks)
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    rows: list[dict] = []

    def line(ranking: str, selection: str, probe: str, label: str, **style):
        ss = [result.summary(ranking or result.rankings[0], selection, k) for k in ks]
        mean = [s.mean for s in ss]
        ax.plot(ks, mean, marker="o", markersize=3, label=label, **style)
        if all(not math.isnan(s.ci_low) for s in ss):
            ax.fill_between(ks, [s.ci_low for s in ss], [s.ci_high for s in ss], alpha=0.15,
                            color=style.get("color"), linewidth=0)
        rows.extend(_row(ranking, selection, probe, k, s) for k, s in zip(ks, ss))

    for i, r in enumerate(result.rankings):
        line(r, "top", result.probe, f"{r} top-k", color=f"C{i % 10}", linestyle="-")
        if same_probe and r in result.same_probe:
            line(r, "top_same_probe", "same", f"{r} top-k, own probe", color=f"C{i % 10}", linestyle="-.")
    line("", "random", result.probe, "random-k", color="0.4", linestyle="--")
    maj = result.majority_summary()
    ax.axhline(maj.mean, color="0.6", linestyle=":", linewidth=1, label="majority class")
    rows.append(_row("", "majority", "majority", 0, maj))
    if ks[-1] / ks[0] >= 20:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if len(ks) <= 12:
        ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (units kept)")
    ax.set_ylabel(f"held-out accuracy ({result.probe} probe)")
    ax.set_title(f"Probing accuracy vs k ({len(result.random_states)} seeds, 95% CI)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.savefig(png, format="png", metadata={"Software": None})
    out_csv = png.with_suffix(".csv")
    header = list(rows[0])
    _write_csv(out_csv, header, [[r[h] for h in header] for r in rows])
    return png, out_csv


def plot_agreement(matrix, names: Sequence[str], path, *, title: str = "Top-k overlap") -> tuple[Path, Path]:
    """Heatmap of a square ``matrix`` (e.g. ``Agreement.overlap[k]``) labelled by ``names``; writes
    ``path`` (PNG) and ``path`` with ``.csv`` (a header row of names, then one row per name).
    Returns (png, csv)."""
    m = np.asarray(matrix, dtype=np.float64)
    names = [str(n) for n in names]
    if m.ndim != 2 or m.shape != (len(names), len(names)):
        raise InvalidInput("matrix", f"must be square with one row per name ({len(names)}), got {m.shape}")
    png = Path(path)
    png.parent.mkdir(parents=True, exist_ok=True)
    side = 2.5 + 0.45 * len(names)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    im = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if len(names) <= 12:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if m[i, j] > 0.6 else "white")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    fig.savefig(png, format="png", metadata={"Software": None})
    out_csv = png.with_suffix(".csv")
    _write_csv(out_csv, ["", *names], [[n, *m[i].tolist()] for i, n in enumerate(names)])
    return png, out_csv
