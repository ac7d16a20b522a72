"""Benchmark: the (n+, n-, tau) stability sweep, AP once per subsample vs once per grid point.

Data (seeded): 9,216 units x 400 sentences (200 positives), float32 ReLU-like responses
``max(N(0, 1), 0)`` rounded to 0.01 (many ties); 5% of the units get a graded shift on the
positives (0 to 3 sd) so that every tau of the grid has experts of every stability.
Grid: n+ in (50, 100, 150) x n- in (50, 100, 150) x tau in (0.8, 0.85, 0.9, 0.95, 0.99), 3 repeats
(every tau above the base rate n+/(n+ + n-) <= 0.75, the AP of an uninformative unit).

  ours:  ``stability_sweep``: the AP of every unit on each of the 9 x 3 subsamples, computed once
         (one sort per unit per subsample) and reused for all 5 taus (27 AP passes);
  naive: for every grid point, ``subsample_splits`` + ``expert_sets`` (AP recomputed) +
         ``mean_pairwise_jaccard`` on Python sets (135 AP passes).
Both run in the same process, interleaved; the best of ROUNDS is printed for each, with the ratio
and the largest difference between their Jaccards (both NaN counts as equal). Always exits 0.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from neuroscribe.workers.experts.stability import (
    best_per_tau,
    expert_sets,
    mean_pairwise_jaccard,
    stability_sweep,
    subsample_splits,
)

N_SENTENCES, N_UNITS, SEED, ROUNDS = 400, 9_216, 0, 2
GRID = dict(n_pos=(50, 100, 150), n_neg=(50, 100, 150), taus=(0.8, 0.85, 0.9, 0.95, 0.99), repeats=3, seed=SEED)


def naive(x, labels) -> dict:
    out = {}
    for a in GRID["n_pos"]:
        for b in GRID["n_neg"]:
            for tau in GRID["taus"]:
                splits = subsample_splits(labels, a, b, GRID["repeats"], seed=GRID["seed"])
                out[a, b, tau] = mean_pairwise_jaccard(expert_sets(x, labels, splits, tau))
    return out


def main() -> int:
    rng = np.random.default_rng(SEED)
    labels = np.zeros(N_SENTENCES, bool)
    labels[rng.choice(N_SENTENCES, N_SENTENCES // 2, replace=False)] = True
    x = np.maximum(rng.standard_normal((N_SENTENCES, N_UNITS), dtype=np.float32), 0)
    planted = rng.choice(N_UNITS, N_UNITS // 20, replace=False)
    x[:, planted] += labels[:, None] * rng.uniform(0, 3, planted.size).astype(np.float32)
    x = x.round(2)
    n_grid = len(GRID["n_pos"]) * len(GRID["n_neg"])
    print(f"machine: {os.cpu_count()} CPU threads, load average before: {os.getloadavg()[0]:.2f}")
    print(f"data: {N_SENTENCES} sentences x {N_UNITS} units float32 (ReLU-like, rounded to 0.01,"
          f" {np.mean(x == 0):.0%} zeros), {labels.sum()} positives, {planted.size} units with a planted shift")
    print(f"grid: n+ {GRID['n_pos']} x n- {GRID['n_neg']} x tau {GRID['taus']}, {GRID['repeats']} repeats:"
          f" {n_grid * len(GRID['taus'])} grid points; AP passes ours {n_grid * GRID['repeats']},"
          f" naive {n_grid * len(GRID['taus']) * GRID['repeats']}")

    t_ours, t_naive = [], []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        rows = stability_sweep(x, labels, **GRID)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = naive(x, labels)
        t_naive.append(time.perf_counter() - t0)

    diffs = []
    for r in rows:  # both NaN: equal; one NaN: infinitely different
        a, b = r.jaccard, ref[r.n_pos, r.n_neg, r.tau]
        nan = math.isnan(a) + math.isnan(b)
        diffs.append(0.0 if nan == 2 else math.inf if nan else abs(a - b))
    ours_s, naive_s = min(t_ours), min(t_naive)
    print(f"ours  (AP once per subsample, reused across tau): {ours_s:7.3f} s  (best of {ROUNDS}: {t_ours})")
    print(f"naive (AP recomputed for every grid point):       {naive_s:7.3f} s  (best of {ROUNDS}: {t_naive})")
    print(f"ratio naive / ours: {naive_s / ours_s:.2f}x  (AP passes ratio {len(GRID['taus'])}x)")
    print(f"max |jaccard ours - naive| over {len(rows)} rows: {max(diffs):.3g}")
    print("rows (n+, n-, tau: mean Jaccard, experts mean +- std, empty subsamples, base rate):")
    for r in rows:
        print(f"  {r.n_pos:4d} {r.n_neg:4d} {r.tau:.2f}: J={r.jaccard:.3f}  experts {r.n_experts_mean:7.1f}"
              f" +- {r.n_experts_std:5.1f}  empty {r.n_empty}  base {r.base_rate:.2f}")
    for tau, r in best_per_tau(rows).items():
        print(f"best at tau={tau:.2f}: " + ("none" if r is None else
              f"n+={r.n_pos} n-={r.n_neg} J={r.jaccard:.3f} with {r.n_experts_mean:.1f} experts"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
