"""Benchmark: greedy gaussian unit selection (METHODS.md part C), incremental vs refit per candidate.

Data (seeded): ``--samples`` sentences x ``--units`` units of GELU-like responses: a shared
low-rank part (32 latent factors, so units correlate as MLP units do) plus noise; 5% of the units
get a class-dependent shift (graded, 0 to 1 sd per class step), the rest carry no label signal.
Labels: ``--classes`` balanced classes. Defaults (1,536 units, the MLP width of the packaged
6-layer BERT, x 1,000 sentences, 2 classes, k = 50) keep the naive arm to a few minutes on 2 cores.

  incremental: ``gaussian_select``: per class, rank-1 (Schur complement) updates of every
               candidate's conditional variance and residuals; O(n * units) per class per step;
  naive:       ``gaussian_select_naive``: for every step and every candidate, refit the probe
               (class means, covariance, Cholesky) on the selected units + the candidate.
Both run in the same process on the same data; the incremental arm is timed best of ``--rounds``,
the naive arm once (it is the slow one). Prints both times, the speed-up ratio (target >= 10x),
whether both selected the same units in the same order, and the MI estimate along the path.
Both arms run under ``--blas-threads`` BLAS threads (default 1: on the shared 2-vCPU machine a
second BLAS thread made the naive arm's small Cholesky/triangular solves up to ~70x slower).
Always exits 0. ``--skip-naive`` times the incremental arm alone (e.g. at 9,216 units).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from neuroscribe.workers.rank.rankings import gaussian_select, gaussian_select_naive, rank


def responses(n_samples: int, n_units: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X float32, y, planted units): correlated GELU-like responses, 5% of units shifted per class."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_samples) % n_classes)
    factors = rng.standard_normal((n_samples, 32)) @ (rng.standard_normal((32, n_units)) / np.sqrt(32))
    h = 0.6 * factors + 0.8 * rng.standard_normal((n_samples, n_units))
    planted = rng.choice(n_units, max(1, n_units // 20), replace=False)
    h[:, planted] += y[:, None] * rng.uniform(0.0, 1.0, planted.size)
    x = 0.5 * h * (1 + np.tanh(0.7978845608 * (h + 0.044715 * h**3)))  # GELU (tanh form)
    return x.astype(np.float32), y, planted


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", type=int, default=1536, help="units in the layer (default 1536)")
    ap.add_argument("--samples", type=int, default=1000, help="sentences (default 1000)")
    ap.add_argument("--classes", type=int, default=2, help="classes of the attribute (default 2)")
    ap.add_argument("--k", type=int, default=50, help="units to select (default 50)")
    ap.add_argument("--covariance", choices=("full", "shared"), default="full", help="probe covariance (default full)")
    ap.add_argument("--ridge", type=float, default=1e-2, help="ridge added to the covariance (default 1e-2)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the incremental arm, best taken (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    ap.add_argument("--blas-threads", type=int, default=1, help="BLAS threads for both arms (default 1)")
    ap.add_argument("--skip-naive", action="store_true", help="time the incremental arm only")
    args = ap.parse_args(argv)
    with threadpool_limits(args.blas_threads):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    opts = dict(ridge=args.ridge, covariance=args.covariance)

    x, y, planted = responses(args.samples, args.units, args.classes, args.seed)
    print(f"machine: {os.cpu_count()} CPU threads, load average before: {os.getloadavg()[0]:.2f}")
    print(f"data: {args.samples} sentences x {args.units} units float32 (GELU-like, 32 latent factors),"
          f" {args.classes} classes, {planted.size} units with a planted class shift")
    print(f"selection: greedy gaussian to k={args.k}, covariance={args.covariance}, ridge={args.ridge:g},"
          f" {args.blas_threads} BLAS thread(s)")

    times = []
    for _ in range(max(1, args.rounds)):
        t0 = time.perf_counter()
        ours = gaussian_select(x, y, args.k, **opts)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"incremental (rank-1 updates per step):     {best:9.3f} s  (best of {len(times)}:"
          f" {', '.join(f'{t:.3f}' for t in times)})")
    if not args.skip_naive:
        t0 = time.perf_counter()
        ref = gaussian_select_naive(x, y, args.k, **opts)
        naive_s = time.perf_counter() - t0
        fits = args.k * args.units - args.k * (args.k - 1) // 2
        print(f"naive (refit per candidate, {fits} fits): {naive_s:9.3f} s  ({1e3 * naive_s / fits:.3f} ms per fit)")
        print(f"speed-up naive / incremental: {naive_s / best:.1f}x  (target >= 10x)")
        same = np.array_equal(ours, ref)
        print(f"same units in the same order: {'yes' if same else 'no'}")
        if not same:
            first = int(np.argmax(ours != ref)) if ours.size == ref.size else 0
            print(f"  first difference at step {first}: incremental {ours[first:first + 5].tolist()},"
                  f" naive {ref[first:first + 5].tolist()}")
    path = rank(x, y, methods=["gaussian"], max_k=args.k, **opts)["gaussian"].params
    print(f"selected (first 10): {ours[:10].tolist()}; planted among the {args.k}:"
          f" {np.isin(ours, planted).sum()} of {planted.size}")
    steps = sorted({1, 2, 5, 10, 20, args.k} & set(range(1, args.k + 1)))
    print("MI estimate (bits) / training accuracy after k units: " + ", ".join(
        f"k={k}: {path['mi_bits'][k - 1]:.3f} / {path['accuracy'][k - 1]:.3f}" for k in steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
