"""Judging unit rankings by probing (docs/methods.md#c2; Antverg & Belinkov 2022).

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
  ``mean +- t(0.975, n-1) * sd / sqrt(n)`` (``workers.stats.t_interval``; NaN bounds with one seed).
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

Here: the probes (``PROBES``), the splits and ``probe_curve``. Beside it: ``probe_inputs``
(validation), ``probe_results`` (``ProbeCurve``, ``Summary``), ``agreement`` (step 4: overlap of the
rankings' top-k sets) and ``probing_plots`` (the figures, each with a CSV of its numbers). Their
public names, and ``t_interval``, are importable from here too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.rank.agreement import Agreement, agreement
from neuroscribe.workers.rank.probe_inputs import MIN_PER_CLASS, check_data, check_ks, check_rankings
from neuroscribe.workers.rank.probe_results import SELECTIONS, ProbeCurve, Summary
from neuroscribe.workers.rank.probing_plots import plot_accuracy_vs_k, plot_agreement
from neuroscribe.workers.stats import t_interval

__all__ = ["PROBES", "SELECTIONS", "MIN_PER_CLASS", "FitPredict", "t_interval", "stratified_split",
           "random_order", "Summary", "ProbeCurve", "probe_curve", "Agreement", "agreement",
           "plot_accuracy_vs_k", "plot_agreement"]

FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


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


# --------------------------------------------------------------------------- splits


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


# --------------------------------------------------------------------------- probe_curve


def _fit_score(probe: str, random_state: int, X_tr, y_tr, X_te, y_te) -> float:
    from sklearn.exceptions import ConvergenceWarning

    est = PROBES[probe](random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_tr, y_tr)
    return float(np.mean(est.predict(X_te) == y_te))


def probe_curve(X, y, rankings: Mapping[str, np.ndarray], ks: Sequence[int], *, probe: str = "logreg",
                seeds: int = 5, test_size: float = 0.3, seed: int = 0,
                same_probe: Mapping[str, FitPredict] | None = None,
                bottom: Mapping[str, Mapping[int, np.ndarray]] | None = None) -> ProbeCurve:
    """Held-out accuracy of a separate ``probe`` on the top-k / bottom-k / random-k units.

    ``X`` (n, n_units) responses, ``y`` (n,) class labels (at least two classes, each with at least
    ``MIN_PER_CLASS`` rows), ``rankings`` name -> order (a permutation of all units, best first),
    ``ks`` the k values (deduplicated and sorted), ``probe`` a name in ``PROBES``, ``seeds`` the
    number of paired splits, ``same_probe`` name -> ``fit_predict`` of that ranking's own probe,
    ``bottom`` name -> k -> the bottom-k units (``selections.bottom_sets``; default: the order's last k).
    """
    X, y, classes = check_data(X, y, test_size, seeds)
    n_units = X.shape[1]
    orders = check_rankings(rankings, n_units)
    ks_t = check_ks(ks, n_units)
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
            low = (bottom or {}).get(name, {}).get(k)
            low = order[-k:] if low is None else np.asarray(low)
            acc[(name, "bottom", k)] = np.array([score(i, low) for i in range(len(states))])
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
