"""Benchmark and quality parity: the llama.cpp backend against the transformers backend, same run.

Both run the packaged SmolLM2-135M-Instruct GGUF on the CPU, without the generation cache, on
  concepts     the demo's concept sentences (cat, dog, bus, guitar; 20 positives and 20 negatives
               each, the job defaults): what the experts job writes
  descriptors  the descriptor prompts of the first N packaged Amazon sentences (--sentences, 100)
and print, per backend and workload: wall time, requests/s, generated tokens/s, and the quality
figures that decide whether a backend may be the default: for the concepts the sentences kept,
the shortfall and every drop reason (summed over concepts); for the descriptors the parse
failures by reason. Then the ratios llamacpp / transformers. Always exits 0.

    .venv/bin/python bench/bench_generate.py [--sentences 100] [--threads N] [--batch-size 16]
        [--backends transformers,llamacpp] [--workloads concepts,descriptors]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from importlib.resources import files

from neuroscribe.jobs import ExpertsJob, GeneratorSpec, SamplingSpec
from neuroscribe.workers.describe.descriptors import generate_descriptors
from neuroscribe.workers.experts.stages import sentences_stage
from neuroscribe.workers.generate import make_backend

CONCEPTS = ("cat", "dog", "bus", "guitar")
DESCRIBE_SAMPLING = {"temperature": 0.2, "top_p": 0.9, "max_new_tokens": 48, "repetition_penalty": 1.15}


class Counting:
    """Counts requests and generated tokens of the wrapped backend."""

    def __init__(self, inner):
        self.inner, self.info, self.requests, self.tokens = inner, inner.info, 0, 0

    def generate(self, requests, *, progress=True):
        out = self.inner.generate(requests, progress=progress)
        self.requests += len(out)
        self.tokens += sum(g.n_tokens for g in out)
        return out


def amazon(n: int) -> list[str]:
    lines = (files("neuroscribe") / "data" / "amazon_cells_labelled.txt").read_text(encoding="utf-8").split("\n")
    return [line.split("\t")[0].strip() for line in lines if line.strip()][:n]


def run(backend_name: str, n_sentences: int, threads: int | None, batch_size: int = 16,
        workloads=("concepts", "descriptors")) -> dict:
    spec = GeneratorSpec(backend=backend_name, model="smollm2", threads=threads, batch_size=batch_size)
    t0 = time.perf_counter()
    backend = make_backend(spec)
    load_s = time.perf_counter() - t0
    out = {"load_s": load_s}
    if "concepts" in workloads:
        out["concepts"] = concepts(spec, backend)
    if "descriptors" in workloads:
        out["descriptors"] = descriptors(backend, n_sentences)
    return out


def concepts(spec, backend) -> dict:
    job = ExpertsJob(concepts=[{"name": c} for c in CONCEPTS], generator=spec, stability=None)
    c = Counting(backend)
    t0 = time.perf_counter()
    s = sentences_stage(job, c, progress=False)
    concepts_s = time.perf_counter() - t0
    drops = Counter()
    for d in s.drops.values():
        drops.update(d)
    return {"s": concepts_s, "requests": c.requests, "tokens": c.tokens, "kept": len(s.records),
            "drops": dict(sorted(drops.items()))}


def descriptors(backend, n_sentences: int) -> dict:
    d = Counting(backend)
    t0 = time.perf_counter()
    ds = generate_descriptors(d, amazon(n_sentences), sampling=SamplingSpec(**DESCRIBE_SAMPLING), progress=False)
    desc_s = time.perf_counter() - t0
    return {"s": desc_s, "requests": d.requests, "tokens": d.tokens, "failed": ds.n_failed,
            "failures": dict(sorted(ds.failures.items()))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--backends", default="transformers,llamacpp")
    ap.add_argument("--batch-size", type=int, default=16, help="requests generated together (llamacpp: slots)")
    ap.add_argument("--workloads", default="concepts,descriptors")
    a = ap.parse_args(argv)
    results = {}
    for name in a.backends.split(","):
        results[name] = r = run(name, a.sentences, a.threads, a.batch_size, a.workloads.split(","))
        print(f"{name}: load {r['load_s']:.1f} s (threads {a.threads or 'default'}, batch {a.batch_size})")
        for w in [w for w in ("concepts", "descriptors") if w in r]:
            x = r[w]
            quality = (f"kept {x['kept']}, drops {x['drops']}" if w == "concepts"
                       else f"failed {x['failed']} of {a.sentences} ({x['failures']})")
            print(f"  {w:11s} {x['s']:7.1f} s  {x['requests'] / x['s']:6.2f} req/s  {x['tokens'] / x['s']:7.1f} tok/s  "
                  f"{quality}")
    if {"transformers", "llamacpp"} <= results.keys():
        t, l = results["transformers"], results["llamacpp"]
        print("llamacpp / transformers:")
        for w in [w for w in ("concepts", "descriptors") if w in t and w in l]:
            print(f"  {w:11s} tokens/s x{(l[w]['tokens'] / l[w]['s']) / (t[w]['tokens'] / t[w]['s']):.2f}  "
                  f"wall x{l[w]['s'] / t[w]['s']:.2f}")
        print(f"  load       x{l['load_s'] / t['load_s']:.2f}")


if __name__ == "__main__":
    main()
