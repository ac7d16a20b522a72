"""Benchmark capture_responses against a bare forward pass (packaged MiniLM, 1,000 Amazon reviews).

Times, in one run and on the same sentences (batch 32, max_length 128):
  bare      model(**batch) over the length-sorted batches capture would use (prebuilt, no hooks);
  sorted    capture_responses(all 6 layers, max pooling, sort_by_length=True);
  unsorted  the same with sort_by_length=False.
After a short warm-up the three are timed round-robin (so a load change on a shared machine hits
all three alike), ``--repeats`` times (default 3); the medians are reported.
  full      sorted capture without its early stop after the deepest requested layer (like for like).
Targets: capture throughput >= 0.9 x bare forward; sorted >= 1.3 x faster than unsorted.
Always exits 0 (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from importlib.resources import files

import torch

from neuroscribe.workers.activations import capture as capture_mod
from neuroscribe.workers.activations import capture_responses, load_subject_model
from neuroscribe.workers.activations.capture import iter_batches, tokenize_texts

BATCH, MAX_LENGTH = 32, 128


def amazon_sentences() -> list[str]:
    text = (files("neuroscribe") / "data" / "amazon_cells_labelled.txt").read_text(encoding="utf-8")
    return [line.rsplit("\t", 1)[0].strip() for line in text.splitlines() if line.strip()]


def median_times(fns: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Time each function ``repeats`` times, interleaved; per function the median (wall s, CPU s)."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - w, time.process_time() - c))
    return {name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
            for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    subject = load_subject_model(args.model)
    texts = amazon_sentences()
    tok = tokenize_texts(subject.tokenizer, texts, MAX_LENGTH)
    pad = subject.tokenizer.pad_token_id or 0
    batches = [b.model_inputs() for b in iter_batches(tok, BATCH, sort_by_length=True, pad_id=pad,
                                                      device=subject.device)]

    def bare():
        with torch.inference_mode():
            for batch in batches:
                subject.model(**batch)

    def capture_full_forward():
        # the same capture without its early stop: the rest of the model (last output dense,
        # LayerNorm, pooler) runs too, as in the bare forward -- the like-for-like comparison
        orig = capture_mod.SiteHooks
        capture_mod.SiteHooks = functools.partial(orig, stop_early=False)
        try:
            capture(True)()
        finally:
            capture_mod.SiteHooks = orig

    def capture(sort: bool, subset=texts):
        return lambda: capture_responses(subject, subset, pooling="max", batch_size=BATCH, max_length=MAX_LENGTH,
                                         sort_by_length=sort, progress=False)

    capture(True, texts[:96])()  # warm-up

    n = len(texts)
    print(f"model {subject.model_id}, {subject.n_layers} layers, device {subject.device}, "
          f"{torch.get_num_threads()} threads; {n} sentences, batch {BATCH}, max_length {MAX_LENGTH}, "
          f"median of {args.repeats}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    times = median_times({
        "bare forward (sorted batches)": bare,
        "capture, sort_by_length=True": capture(True),
        "capture, sort_by_length=False": capture(False),
        "capture, full forward (no stop)": capture_full_forward,
    }, args.repeats)
    print(f"{'':32s} {'wall s':>8s} {'sentences/s':>12s} {'CPU s':>8s}")
    for name, (wall, cpu) in times.items():
        print(f"{name:32s} {wall:8.3f} {n / wall:12.1f} {cpu:8.3f}")
    (bare_w, bare_c), (sorted_w, sorted_c), (unsorted_w, unsorted_c), (full_w, full_c) = times.values()
    overhead, speedup = bare_w / sorted_w, unsorted_w / sorted_w  # throughput ratios (wall clock)
    print(f"capture / bare forward throughput: {overhead:.2f} (target >= 0.90: "
          f"{'met' if overhead >= 0.9 else 'NOT met'}; by CPU time {bare_c / sorted_c:.2f})")
    print(f"  without the early stop:        {bare_w / full_w:.2f} (by CPU time {bare_c / full_c:.2f})")
    print(f"sorted / unsorted speedup:         {speedup:.2f} (target >= 1.30: "
          f"{'met' if speedup >= 1.3 else 'NOT met'}; by CPU time {unsorted_c / sorted_c:.2f})")
    print("(on a shared machine wall times are noisy; CPU time with --threads 1 is the steadier measure)")


if __name__ == "__main__":
    main()
