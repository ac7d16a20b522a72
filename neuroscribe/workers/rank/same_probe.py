"""The rankings' own probes (docs/methods.md#c2, the same-probe confound): the elastic-net logistic
regression of ``linear`` (with the job's tolerance and iteration limit, as the ranking) and the
Gaussian class-conditional probe of ``gaussian``, as ``fit_predict(X_train, y_train, X_test)``."""

from __future__ import annotations

import math
import warnings

import numpy as np

from neuroscribe.jobs import RankJob

__all__ = ["same_probe_fns", "gaussian_probe"]


def same_probe_fns(job: RankJob, seed: int) -> dict:
    """Per ranking of the job that has a probe of its own, its ``fit_predict``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    spec = job.ranking

    def linear(xtr, ytr, xte):
        m = make_pipeline(StandardScaler(), LogisticRegression(solver="saga", l1_ratio=0.5, C=1.0, tol=spec.linear_tol,
                                                               max_iter=spec.linear_max_iter, random_state=seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return m.fit(xtr, ytr).predict(xte)

    def gaussian(xtr, ytr, xte):
        return gaussian_probe(xtr, ytr, xte, ridge=0.01)

    fns = {"linear": linear, "gaussian": gaussian}
    return {m: fns[m] for m in job.methods if m in fns}


def gaussian_probe(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, *, ridge: float) -> np.ndarray:
    """The gaussian ranking's probe as a classifier: per class the mean and full covariance of the
    standardised units plus ``ridge`` * I, class priors = frequencies; the most likely class."""
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
    sd[sd == 0] = 1.0
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    classes = np.unique(ytr)
    scores = np.empty((len(b), len(classes)))
    for j, c in enumerate(classes):
        xc = a[ytr == c]
        cov = np.atleast_2d(np.cov(xc, rowvar=False, bias=True)) + ridge * np.eye(a.shape[1])
        chol = np.linalg.cholesky(cov)
        z = np.linalg.solve(chol, (b - xc.mean(axis=0)).T)
        scores[:, j] = -0.5 * (z * z).sum(axis=0) - np.log(np.diag(chol)).sum() + math.log(len(xc) / len(a))
    return classes[scores.argmax(axis=1)]
