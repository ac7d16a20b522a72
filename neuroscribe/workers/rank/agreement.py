"""Agreement between unit rankings (docs/methods.md#c4; Antverg & Belinkov 2022).

``agreement`` measures step 4: pairwise overlap of top-k sets (``|A & B| / k`` and Jaccard), with
the chance overlap ``k / n_units`` of two random top-k sets for reference. A ranking is an
``order`` array, every unit exactly once, best first (``probe_inputs.check_rankings``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from neuroscribe.workers.rank.probe_inputs import check_ks, check_rankings

__all__ = ["Agreement", "agreement"]


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
    orders = check_rankings(rankings, n_units)
    n = int(next(iter(orders.values())).size)
    ks_t = check_ks(ks, n)
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
