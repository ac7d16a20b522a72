"""What an intervention did (docs/methods.md#c3): per-example deltas, and ranked units against random sets.

``Delta``: per-example measures without (``base``) and with (``after``) one intervention.
``Effect``: one (mode, k, measure) of ``intervention_effects``: the per-example deltas of the
ranked top-k units and of each random k-set, with Student-t intervals over examples
(``workers.stats.t_bounds``; paired for the difference ranked - mean of the random draws; NaN
bounds with one example). ``InterventionEffects``: every ``Effect`` of a run, with the units used
and the positions edited (``all`` or ``attribute``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.stats import t_bounds

__all__ = ["Delta", "Effect", "InterventionEffects"]


@dataclass(frozen=True)
class Delta:
    """Per-example measures without (``base``) and with (``after``) an intervention; ``delta[m]`` = after - base."""

    base: dict[str, np.ndarray] = field(repr=False)
    after: dict[str, np.ndarray] = field(repr=False)

    measures = property(lambda self: tuple(self.base))
    delta_logprob = property(lambda self: self["logprob"])
    delta_logodds = property(lambda self: self["logodds"])
    delta_accuracy = property(lambda self: self["accuracy"])

    def __getitem__(self, measure: str) -> np.ndarray:
        if measure not in self.base:
            raise InvalidInput("measure", f"unknown measure {measure!r}; here: {', '.join(self.base)}")
        return self.after[measure] - self.base[measure]


@dataclass
class Effect:
    """One (mode, k, measure): per-example deltas of the ranked top-k and of each random draw."""

    mode: str
    k: int
    measure: str
    ranked: np.ndarray = field(repr=False)  # (n_examples,)
    random_draws: np.ndarray = field(repr=False)  # (n_random, n_examples)
    confidence: float = 0.95

    n_examples = property(lambda self: len(self.ranked))
    random = property(lambda self: self.random_draws.mean(axis=0))
    difference = property(lambda self: self.ranked - self.random)
    mean_ranked = property(lambda self: float(self.ranked.mean()))
    mean_random = property(lambda self: float(self.random.mean()))
    mean_difference = property(lambda self: float(self.difference.mean()))
    ci_ranked = property(lambda self: t_bounds(self.ranked, self.confidence))
    ci_random = property(lambda self: t_bounds(self.random, self.confidence))
    ci_difference = property(lambda self: t_bounds(self.difference, self.confidence))

    def summary(self) -> dict:
        keys = ("mode", "k", "measure", "n_examples", "mean_ranked", "ci_ranked", "mean_random", "ci_random",
                "mean_difference", "ci_difference")
        return {key: getattr(self, key) for key in keys}


@dataclass
class InterventionEffects:
    """``effects[(mode, k, measure)]``; ``self[mode, k]`` uses ``measure`` (the task's main one)."""

    site: str
    measure: str
    baseline: dict[str, np.ndarray] = field(repr=False)
    effects: dict[tuple[str, int, str], Effect] = field(repr=False)
    top_units: dict[int, dict[int, list[int]]] = field(repr=False)  # k -> layer -> units
    random_units: dict[int, list[dict[int, list[int]]]] = field(repr=False)  # k -> draws
    seed: int = 0
    positions: str = "all"  # where the units were edited: every position, or the target word's tokens

    def __getitem__(self, key) -> Effect:
        return self.effects[key if len(key) == 3 else (*key, self.measure)]

    def summary(self) -> list[dict]:
        return [e.summary() for e in self.effects.values()]
