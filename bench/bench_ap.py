"""Benchmark: AP of 9,216 units x 2,000 sentences (float32, with ties) -- `make bench`.

Data (seeded): ReLU-like responses ``max(N(0, 1), 0)`` rounded to 2 decimals, so about half of
every unit's values tie at exactly 0 and the rest tie in steps of 0.01 (both realistic for MLP
activations); labels ~50% positives.

Measured in one run, interleaved so that load from other processes hits all alike:
  1. ``average_precision`` (default: 1 thread; and one thread per CPU);
  2. the per-unit ``sklearn.metrics.average_precision_score`` loop, timed on a subset of units
     and extrapolated linearly to all units;
  3. a bare ``np.sort`` of the same values laid out (units, sentences), sorting each unit's
     responses: the floor any sort-based exact AP pays.
Targets: >= 20x faster than the sklearn loop, <= 3x the bare sort. Always exits 0.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from neuroscribe.workers.experts.ap import average_precision

N_SENTENCES, N_UNITS, N_SKLEARN, REPEATS, SEED = 2_000, 9_216, 500, 5, 0


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    rng = np.random.default_rng(SEED)
    scores = np.maximum(rng.standard_normal((N_SENTENCES, N_UNITS), dtype=np.float32), 0).round(2)
    labels = rng.random(N_SENTENCES) < 0.5
    by_unit = np.ascontiguousarray(scores.T)  # (units, sentences) for the bare sort
    threads = os.cpu_count() or 1
    print(f"machine: {threads} CPU threads (torch sees {torch.get_num_threads()}); load average before:"
          f" {os.getloadavg()[0]:.2f} (other processes share these CPUs)")
    print(f"data: {N_SENTENCES} sentences x {N_UNITS} units float32, ReLU-like max(N(0,1),0) rounded to 0.01,"
          f" {np.mean(scores == 0):.0%} zeros, {labels.mean():.0%} positives")

    ours = average_precision(scores, labels)  # warm-up (and the values compared below)
    t_ours, t_all, t_sort = [], [], []
    for _ in range(REPEATS):
        t_sort.append(timed(lambda: np.sort(by_unit, axis=1)))
        t_ours.append(timed(lambda: average_precision(scores, labels)))
        if len(t_all) < 3:
            t_all.append(timed(lambda: average_precision(scores, labels, threads=threads)))
    subset = np.linspace(0, N_UNITS - 1, N_SKLEARN).astype(int)
    t0 = time.perf_counter()
    ref = np.array([average_precision_score(labels, scores[:, j]) for j in subset])
    t_sklearn = (time.perf_counter() - t0) * N_UNITS / N_SKLEARN
    ours_s, all_s, sort_s = (statistics.median(t) for t in (t_ours, t_all, t_sort))

    print(f"ours (default, 1 thread): median {ours_s * 1e3:8.1f} ms  (min {min(t_ours) * 1e3:.1f}, {REPEATS} runs)")
    print(f"ours ({threads} threads):        median {all_s * 1e3:8.1f} ms  (min {min(t_all) * 1e3:.1f}, {len(t_all)} runs)")
    print(f"bare np.sort:             median {sort_s * 1e3:8.1f} ms  (min {min(t_sort) * 1e3:.1f}, {REPEATS} runs)")
    print(f"sklearn loop:                    {t_sklearn * 1e3:8.1f} ms  (timed on {N_SKLEARN} units, extrapolated"
          f" linearly to {N_UNITS})")
    speedup, over_sort = t_sklearn / ours_s, ours_s / sort_s
    print(f"speed-up vs sklearn: {speedup:6.1f}x  (target >= 20x: {'met' if speedup >= 20 else 'MISSED'})")
    print(f"ours / bare sort:    {over_sort:6.2f}x  (target <= 3x: {'met' if over_sort <= 3 else 'MISSED'});"
          f" {threads} threads: {all_s / sort_s:.2f}x")
    print(f"max |ours - sklearn| over the {N_SKLEARN} units: {np.abs(ours[subset] - ref).max():.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
