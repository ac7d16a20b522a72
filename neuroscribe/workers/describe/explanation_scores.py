"""Scores of explanations on held-out sentences and their summaries (docs/methods.md#b7).

* ``detection_score``: the LLM's yes/no answers against the unit's firing -> balanced accuracy
  (mean of the true-positive and true-negative rates; 0.5 = chance whatever the class sizes). With
  binary answers the ROC curve has one point, so AUROC equals the balanced accuracy.
* ``auroc``: Mann-Whitney AUROC of a graded score (the embedding cosine) against firing, ties 1/2.
* ``derangement``: the seeded shuffle that gives each unit another unit's explanation (a random
  cyclic permutation, Sattolo's algorithm: no unit keeps its own).
* ``summarise``: the mean over units of a score and of its shuffled baseline, and of their paired
  difference, each with a percentile bootstrap interval over units (the same resampled units for
  all three), and a verdict.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from neuroscribe.jobs.explanations import DetectionScore, ScoreSummary
from neuroscribe.workers.describe.intervals import percentile_interval

__all__ = ["detection_score", "auroc", "derangement", "summarise", "verdict", "BOOTSTRAP", "CONFIDENCE", "CHANCE"]

BOOTSTRAP = 1000
CONFIDENCE = 0.95
CHANCE = 0.5


def detection_score(answers: Sequence[bool | None], fires: Sequence[bool]) -> DetectionScore:
    """``answers[i]``: the parsed yes/no on sentence i (None: unparsed, left out); ``fires[i]``: the
    unit fires on it."""
    a = [(bool(x), bool(f)) for x, f in zip(answers, fires) if x is not None]
    pos = [x for x, f in a if f]
    neg = [x for x, f in a if not f]
    tpr = sum(pos) / len(pos) if pos else None
    tnr = (len(neg) - sum(neg)) / len(neg) if neg else None
    ba = None if tpr is None or tnr is None else (tpr + tnr) / 2
    return DetectionScore(balanced_accuracy=ba, true_positive_rate=tpr, true_negative_rate=tnr, n_pos=len(pos),
                          n_neg=len(neg), n_unparsed=sum(x is None for x in answers))


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative) + 1/2 P(tie); None without both classes."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(scores)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def derangement(n: int, seed) -> np.ndarray:
    """A seeded permutation of range(n) with no fixed point (n >= 2): one random n-cycle."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    rng = np.random.default_rng(seed)
    p = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))  # Sattolo: j < i
        p[i], p[j] = p[j], p[i]
    return p


def verdict(mean: float | None, difference_ci: tuple[float, float] | None, chance: float = CHANCE,
            ci: tuple[float, float] | None = None) -> str:
    """"below chance" when the mean is under chance (saying so when its interval still holds
    chance), then where the paired difference's interval puts it against the shuffled baseline."""
    if mean is None:
        return "no unit scored"
    parts = []
    if mean < chance:
        parts.append("below chance" + (f" (its interval holds {chance:g})" if ci and ci[1] >= chance else ""))
    if difference_ci is None:
        parts.append("no shuffled baseline")
    elif difference_ci[0] > 0:
        parts.append("above the shuffled baseline")
    elif difference_ci[1] < 0:
        parts.append("below the shuffled baseline")
    else:
        parts.append("not above the shuffled baseline")
    return "; ".join(parts)


def summarise(values: Sequence[float | None], shuffled: Sequence[float | None], *, n_boot: int = BOOTSTRAP,
              confidence: float = CONFIDENCE, seed=0, chance: float = CHANCE) -> ScoreSummary:
    """Over the units where both are defined: means, bootstrap intervals (units resampled with
    replacement, the same draws for the score, its baseline and their difference) and the verdict.
    When no unit has a shuffled score (a single explained unit), the score alone."""
    v = np.asarray([np.nan if x is None else x for x in values], np.float64)
    s = np.asarray([np.nan if x is None else x for x in shuffled], np.float64)
    both = ~np.isnan(v) & ~np.isnan(s)
    if not both.any():
        alone = v[~np.isnan(v)]
        if not alone.size:
            return ScoreSummary(n_units=0, chance=chance, verdict=verdict(None, None, chance))
        mean = float(alone.mean())
        ci = percentile_interval(_boot(alone, n_boot, seed), confidence)
        return ScoreSummary(n_units=int(alone.size), chance=chance, mean=mean, ci=ci,
                            verdict=verdict(mean, None, chance, ci))
    v, s = v[both], s[both]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    dv, ds = v[idx].mean(axis=1), s[idx].mean(axis=1)
    diff_ci, ci = percentile_interval(dv - ds, confidence), percentile_interval(dv, confidence)
    return ScoreSummary(n_units=int(v.size), chance=chance, mean=float(v.mean()), ci=ci,
                        shuffled_mean=float(s.mean()), shuffled_ci=percentile_interval(ds, confidence),
                        difference_mean=float((v - s).mean()), difference_ci=diff_ci,
                        verdict=verdict(float(v.mean()), diff_ci, chance, ci))


def _boot(x: np.ndarray, n_boot: int, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
