"""Benchmark: the describe pass's per-value bookkeeping on the CPU (docs/scaling.md's key figure).

Each window of responses (sentences x units, float16) goes through the streaming top-k tracker
(``TopKExemplars``), the fixed histogram (``ResponseHistogram``) and the exact sums (``UnitMoments``)
-- what ``stream_exemplars`` and a shard's ``accumulate_exemplars`` do besides the forward pass.
Random float16 windows (normal, with exact zeros for a quarter of the values, as GELU outputs have),
``--window`` rows x ``--units``, k exemplars per unit; one thread (the workers' share of a core).
Prints values per second of each part and of the three together, beside the baseline of one
``np.copy`` of the window (memory bandwidth) in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def windows(n: int, rows: int, units: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x = rng.standard_normal((rows, units), dtype=np.float32)
        x[rng.random((rows, units)) < 0.25] = 0.0
        yield x.astype(np.float16)


def main(argv=None) -> int:
    from neuroscribe.workers.describe.exemplars import TopKExemplars
    from neuroscribe.workers.describe.response_histogram import ResponseHistogram
    from neuroscribe.workers.describe.unit_summary import UnitMoments

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", type=int, default=9_216)
    ap.add_argument("--window", type=int, default=2_048)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--k", type=int, default=20)
    args = ap.parse_args(argv)
    data = list(windows(args.windows, args.window, args.units, 0))
    n_values = args.windows * args.window * args.units
    times = {}
    t0 = time.perf_counter()
    for w in data:
        np.copy(w)
    times["np.copy (baseline)"] = time.perf_counter() - t0
    topk, hist, mom = TopKExemplars(args.units, args.k), ResponseHistogram(args.units), UnitMoments(args.units)
    for name, part in (("top-k", lambda i, w: topk.update(i * args.window, w)), ("histogram", lambda i, w: hist.update(w)),
                       ("sums", lambda i, w: mom.update(w))):
        t0 = time.perf_counter()
        for i, w in enumerate(data):
            part(i, w)
        times[name] = time.perf_counter() - t0
    times["all three"] = times["top-k"] + times["histogram"] + times["sums"]
    print(f"bookkeeping of {args.windows} windows of {args.window} x {args.units:,} float16 values (k {args.k}),"
          f" 1 thread:")
    for name, t in times.items():
        print(f"  {name:<20s} {t:8.3f} s  {n_values / t / 1e6:10.1f} M values/s"
              f"  ({t / times['np.copy (baseline)']:.0f}x the copy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
