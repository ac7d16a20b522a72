"""Benchmark: top-1% exemplars of 9,216 units over 20,000 sentences, streaming vs dense.

Data (seeded): float16 ReLU-like responses ``max(N(0, 1), 0)`` rounded to 0.1, generated chunk by
chunk (512 rows) from one seeded generator, so both approaches see the same numbers: about half of
each unit's values tie at 0 and the top 1% (200 exemplars per unit) tie in steps of 0.1, so the
tie rule (lower row first) decides many of them.

  streaming  ``TopKExemplars.update`` on each chunk as it is generated: the full matrix never exists;
  dense      the chunks written into one (20,000, 9,216) float16 matrix, then ``dense_topk``
             (stable argsort of the whole matrix along the sentences).

Each approach runs in its own ``multiprocessing`` spawn process, one after the other, and reports
its time (generation and selection apart) and its peak memory two ways: ``ru_maxrss`` (the RSS
high-water mark) minus that of an idle child that only imported the same modules, and the
``tracemalloc`` peak of the run (numpy reports its allocations to tracemalloc). The parent checks
that both gave the same exemplars (indices and values, in order) and prints the ratios.
Targets: streaming <= 0.1x the dense peak memory at <= 1.5x its time. Always exits 0.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

from neuroscribe.workers.describe.exemplars import TopKExemplars, dense_topk, n_exemplars

N_SENTENCES, N_UNITS, CHUNK, TOP_PERCENT, SEED = 20_000, 9_216, 512, 1.0, 0


def chunks():
    """(offset, (b, N_UNITS) float16) chunks, the same numbers on every call."""
    rng = np.random.default_rng(SEED)
    for offset in range(0, N_SENTENCES, CHUNK):
        b = min(CHUNK, N_SENTENCES - offset)
        yield offset, np.maximum(rng.standard_normal((b, N_UNITS), dtype=np.float32), 0).round(1).astype(np.float16)


def run_streaming(k: int):
    topk = TopKExemplars(N_UNITS, k)
    t_gen = t_sel = 0.0
    it = chunks()
    while True:
        t0 = time.perf_counter()
        item = next(it, None)
        t1 = time.perf_counter()
        t_gen += t1 - t0
        if item is None:
            break
        topk.update(*item)
        del item
        t_sel += time.perf_counter() - t1
    t1 = time.perf_counter()
    out = topk.result()
    return out, t_gen, t_sel + time.perf_counter() - t1


def run_dense(k: int):
    t0 = time.perf_counter()
    matrix = np.empty((N_SENTENCES, N_UNITS), np.float16)
    for offset, chunk in chunks():
        matrix[offset : offset + chunk.shape[0]] = chunk
    t1 = time.perf_counter()
    out = dense_topk(matrix, k)
    return out, t1 - t0, time.perf_counter() - t1


def child(approach: str, conn) -> None:
    k = n_exemplars(N_SENTENCES, TOP_PERCENT)
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    if approach == "idle":
        out, t_gen, t_sel = None, 0.0, 0.0
    else:
        out, t_gen, t_sel = (run_streaming if approach == "streaming" else run_dense)(k)
    wall = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    conn.send(dict(out=out, t_gen=t_gen, t_sel=t_sel, wall=wall, traced=traced_peak, maxrss=maxrss))
    conn.close()


def measure(approach: str) -> dict:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child, args=(approach, send))
    proc.start()
    send.close()
    res = recv.recv()
    proc.join()
    return res


def mib(x: float) -> str:
    return f"{x / 2**20:8.1f} MiB"


def main() -> int:
    k = n_exemplars(N_SENTENCES, TOP_PERCENT)
    print(f"machine: {os.cpu_count()} CPU threads; load average before: {os.getloadavg()[0]:.2f}")
    print(f"data: {N_SENTENCES} sentences x {N_UNITS} units float16 (dense matrix {mib(N_SENTENCES * N_UNITS * 2).strip()}),"
          f" ReLU-like max(N(0,1),0) rounded to 0.1, chunks of {CHUNK} rows; top {TOP_PERCENT:g}% = {k} exemplars per unit")
    idle = measure("idle")
    stream = measure("streaming")
    dense = measure("dense")
    (si, sv), (di, dv) = stream["out"], dense["out"]
    same = np.array_equal(si, di) and np.array_equal(sv, dv, equal_nan=True)
    tied = np.mean((dv[:, -1:] == dv[:, :-1]).any(axis=1))
    print(f"exemplar sets identical (indices and values, in order): {same}"
          f"  (units whose k-th value equals another exemplar's: {tied:.0%}; median row of the k-th exemplar:"
          f" {int(np.median(di[:, -1]))})")
    print(f"{'':10s} {'generation':>11s} {'selection':>10s} {'total':>8s}   {'RSS peak - idle':>16s} {'tracemalloc peak':>17s}")
    for name, r in (("streaming", stream), ("dense", dense)):
        print(f"{name:10s} {r['t_gen']:10.2f}s {r['t_sel']:9.2f}s {r['wall']:7.2f}s   {mib(r['maxrss'] - idle['maxrss']):>16s}"
              f" {mib(r['traced']):>17s}")
    print(f"idle child RSS peak: {mib(idle['maxrss']).strip()}")
    mem_rss = (stream["maxrss"] - idle["maxrss"]) / max(1, dense["maxrss"] - idle["maxrss"])
    mem_tm = stream["traced"] / max(1, dense["traced"])
    t_sel = stream["t_sel"] / dense["t_sel"]
    t_all = stream["wall"] / dense["wall"]
    print(f"memory streaming/dense: {mem_rss:.3f}x (RSS above idle), {mem_tm:.3f}x (tracemalloc)"
          f"  (target <= 0.1x: {'met' if max(mem_rss, mem_tm) <= 0.1 else 'MISSED'})")
    print(f"time streaming/dense:   {t_sel:.3f}x (selection only), {t_all:.3f}x (with generation)"
          f"  (target <= 1.5x: {'met' if max(t_sel, t_all) <= 1.5 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # a benchmark, not a test: report and exit 0
        print(f"benchmark failed: {type(err).__name__}: {err}")
    sys.exit(0)
