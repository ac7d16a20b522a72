"""What ``probe_curve`` measured (docs/methods.md#c2): per-seed accuracies and their summaries.

``ProbeCurve.accuracy[(ranking, selection, k)]`` holds one held-out accuracy per seed; selections are
``SELECTIONS`` (``top_same_probe`` only for rankings given their own probe). ``Summary`` is the mean
over seeds with a 95% Student-t interval (``workers.stats.t_interval``; NaN bounds with one seed);
``ProbeCurve.to_rows`` / ``side_by_side`` flatten them for CSVs (one row: ``curve_row``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroscribe.workers.stats import t_interval

__all__ = ["SELECTIONS", "Summary", "ProbeCurve", "curve_row"]

SELECTIONS = ("top", "bottom", "random", "top_same_probe")


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
                    rows.append(curve_row(r, sel, "same" if sel == "top_same_probe" else self.probe, k, s))
        if baseline:
            rows.append(curve_row("", "majority", "majority", 0, self.majority_summary()))
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


def curve_row(ranking: str, selection: str, probe: str, k: int, s: Summary) -> dict:
    """One row of ``ProbeCurve.to_rows`` (and of the accuracy plot's CSV)."""
    return {"ranking": ranking, "selection": selection, "probe": probe, "k": int(k), "accuracy": s.mean,
            "ci_low": s.ci_low, "ci_high": s.ci_high, "n_seeds": s.n_seeds}
