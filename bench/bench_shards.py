"""Overhead of the sharded exemplars pass (issue 17, part 2): the packaged MiniLM (every layer,
``mlp_post``, mean pooling, top 1%, the describe job's defaults) over ~2,000 sentences: the 1,000
packaged Amazon sentences, then each of them with its words in reverse order (distinct texts of the
same lengths), split into two halves (seeded) with the validation half kept, as the describe job does.

  unsharded  ``stream_exemplars`` over every row
  sharded    ``partial_exemplars`` for each of ``--shards`` ranges (``shard_ranges``), one after
             the other in this process, each saved to a folder; then ``merge_exemplar_shards`` of the
             folders (loaded one at a time)
  merge      the merge alone: from the shard objects in memory, and from the saved folders

Both passes use the same ``--window`` (the shards must start on window edges to capture the same
batches), so the merged result must equal the unsharded one array by array: checked, and printed.
Prints the seconds of each, the shard sizes on disk and the ratios. Always exits 0.

    .venv/bin/python bench/bench_shards.py [--sentences 2000] [--shards 4] [--window 512] [--repeats 1]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np

import neuroscribe
from neuroscribe.workers.activations import load_subject_model
from neuroscribe.workers.datasets import load_dataset
from neuroscribe.workers.describe.exemplar_shards import merge_exemplar_shards, partial_exemplars, shard_ranges
from neuroscribe.workers.describe.exemplar_stream import stream_exemplars

AMAZON = Path(neuroscribe.__file__).parent / "data" / "amazon_cells_labelled.txt"


def sentences(n: int) -> list[str]:
    base = list(load_dataset(AMAZON).texts)
    out = list(base)
    while len(out) < n:
        out += [" ".join(reversed(t.split())) for t in base]
    return out[:n]


def same(a, b) -> bool:
    eq = lambda x, y: x is None and y is None or np.array_equal(x, y, equal_nan=True)  # noqa: E731
    ok = eq(a.rows, b.rows) and eq(a.values, b.values) and eq(a.heldout, b.heldout) and a.k == b.k
    ok &= all(eq(x[0], y[0]) and eq(x[1], y[1]) for x, y in zip(a.halves, b.halves)) and len(a.halves) == len(b.halves)
    ok &= all(eq(x, y) for x, y in zip(a.firing.arrays().values(), b.firing.arrays().values()))
    ok &= all(eq(x, y) for x, y in zip(a.summary.arrays().values(), b.summary.arrays().values()))
    return bool(ok and a.firing.meta() == b.firing.meta() and a.n_saturated == b.n_saturated)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each; the fastest is reported")
    args = ap.parse_args(argv)
    subject = load_subject_model("minilm", device="cpu")
    texts = sentences(args.sentences)
    perm = np.random.default_rng(0).permutation(len(texts))
    halves = [np.sort(perm[: len(texts) // 2]), np.sort(perm[len(texts) // 2:])]
    opts = dict(top_percent=1.0, halves=halves, keep_half=1, site="mlp_post", pooling="mean", batch_size=32,
                max_length=128, window=args.window, progress=False)
    ranges = shard_ranges(len(texts), args.shards, window=args.window)
    best: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            ref = timed("unsharded", lambda: stream_exemplars(subject, texts, **opts))
            shards, folders = [], []
            for i, r in enumerate(ranges):
                shard = timed(f"shard {i}", lambda: partial_exemplars(subject, texts, r, **opts))
                folders.append(Path(tmp) / f"{rep}-{i}")
                timed(f"save {i}", lambda: shard.save(folders[-1]))
                shards.append(shard)
            random.Random(rep).shuffle(folders)
            from_folders = timed("merge (folders)", lambda: merge_exemplar_shards(folders))
            from_objects = timed("merge (objects)", lambda: merge_exemplar_shards(shards[::-1]))
        size = sum(p.stat().st_size for p in folders[0].parent.glob(f"{args.repeats - 1}-*/*")) / 2 ** 20
    units = ref.n_units
    print(f"MiniLM {units:,} units, {len(texts):,} sentences ({ref.firing.n_sentences:,} distinct), k={ref.k}, "
          f"window {args.window}, shards {[len(r) for r in ranges]}, torch threads {__import__('torch').get_num_threads()}")
    for name, sec in best.items():
        print(f"  {name:<18} {sec:8.2f} s")
    capture = sum(best[f"shard {i}"] for i in range(len(ranges)))
    saves = sum(best[f"save {i}"] for i in range(len(ranges)))
    total = capture + saves + best["merge (folders)"]
    print(f"  shards on disk: {size:.1f} MiB in all ({size / len(ranges):.1f} MiB each)")
    print(f"  sharded total (shards + saves + merge from folders): {total:.2f} s = {total / best['unsharded']:.3f}x "
          f"the unsharded {best['unsharded']:.2f} s; shards alone {capture / best['unsharded']:.3f}x")
    print(f"  merge alone: {best['merge (objects)']:.3f} s from objects, {best['merge (folders)']:.3f} s from folders "
          f"({best['merge (folders)'] / best['unsharded']:.3f}x the unsharded pass)")
    print(f"  merged == unsharded (every array): from folders {same(from_folders, ref)}, "
          f"from objects {same(from_objects, ref)}")


if __name__ == "__main__":
    main()
