"""Smoke test of bench/bench_vocabulary.py at a tiny size with random embeddings (no model)."""

import importlib.util
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_vocabulary.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_vocabulary", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_phrases_are_distinct_short_and_seeded():
    bench = _bench()
    phrases = bench.descriptor_phrases(500, seed=3)
    assert len(phrases) == len(set(phrases)) == 500
    assert all(1 <= len(p.split()) <= 3 for p in phrases)
    assert phrases == bench.descriptor_phrases(500, seed=3) != bench.descriptor_phrases(500, seed=4)


def test_bench_prints_ratio_and_ari(capsys):
    assert _bench().main(["--n", "200", "--embed", "random", "--reduce-to", "8"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"time ratio reduced/full: \d+\.\d+x", out)
    aris = [float(v) for v in re.findall(r"^ARI \(.*?\):\s+(\S+)$", out, flags=re.M)]
    assert len(aris) == 3 and all(-1.0 <= a <= 1.0 for a in aris)
    assert re.search(r"^full\s+384\s", out, flags=re.M) and re.search(r"^reduced\s+8\s", out, flags=re.M)
