"""Benchmark: the neuron atlas at the size of Llama-3.1-8B's MLP (issue "neuron atlas", Performance).

1. **Import**: a synthetic describe result folder (``bench/atlas_synth.py``: 458,752 units = 32 x
   14,336, 20 exemplars + 3 quantile samples of ~30 tokens each, 200,000 sentences, 0-3 descriptors
   per unit from 2,000 names, 2,000 explanations), built once with a seeded numpy generator and
   cached under ``--folder``; ``atlas.ingest.index_folder`` into a fresh SQLite file and a fresh
   PostgreSQL schema. Prints the total (target: under 60 s each), where it went (reading the
   folder, writing each table with its rows/s, the search documents' MiniLM embeddings, the rest:
   building the rows and the commit) and the import's peak memory. ``--baseline REV`` imports the
   same folder with the importer of git revision REV too (``git show``; nothing is checked out),
   side by side.
2. **Serving** from that store, the server's time per call: the neuron page (``neuron_view``) of
   ``--requests`` random neurons (target p95 < 50 ms), the neurons table of one layer sorted by
   max activation and filtered by a descriptor (``list_neurons``; target p95 < 100 ms), search
   (``search_docs`` + ``with_neurons``; target p95 < 200 ms); ``--http`` the same routes through
   the service's app (FastAPI TestClient: routing, validation and JSON included).

``--units N`` runs smaller (the sentences scale with it); the full-size import time is then an
extrapolation (linear in units, the embeddings not scaled), labelled as such. The store is
dropped at the end (``--keep`` keeps the SQLite file and the PostgreSQL schema). Always exits 0.

    .venv/bin/python bench/bench_atlas.py [--units 458752] [--folder DIR] [--pg URL|none] [--http]
        [--requests 200] [--baseline HEAD] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMA = "bench_atlas"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


class Phases:
    """Seconds and rows per phase of ``index_folder``, by wrapping the functions it calls."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        self._undo = []

    def wrap(self, module, name: str, label=None, count=None):
        fn = getattr(module, name)

        def timed(*a, **kw):
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            key = label(*a) if label else name
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0
            if count:
                self.rows[key] = self.rows.get(key, 0) + count(out)
            return out

        setattr(module, name, timed)
        self._undo.append((module, name, fn))

    def undo(self):
        for module, name, fn in reversed(self._undo):
            setattr(module, name, fn)
        self._undo.clear()


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 50 ms)."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            with open("/proc/self/statm") as f:
                self.peak = max(self.peak, int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
            self._stop.wait(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def old_ingest(rev: str):
    """The ``atlas.ingest`` package of git revision ``rev``, importable as ``bench_old_ingest``."""
    out = Path(tempfile.mkdtemp(prefix="atlas-ingest-")) / "bench_old_ingest"
    out.mkdir()
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:neuroscribe/atlas/ingest"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            src = subprocess.run(["git", "show", f"{rev}:neuroscribe/atlas/ingest/{name}"], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout
            (out / name).write_text(src.replace("neuroscribe.atlas.ingest.", "bench_old_ingest."))
    sys.path.insert(0, str(out.parent))
    import bench_old_ingest

    return bench_old_ingest


def fresh_store(kind: str, where: str):
    from neuroscribe.atlas.store import open_store

    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(where + suffix).unlink(missing_ok=True)
        return open_store(f"sqlite:///{where}")
    import psycopg

    with psycopg.connect(where.split("?")[0].replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        c.execute(f"CREATE SCHEMA {SCHEMA}")
    return open_store(f"{where.split('?')[0]}?options=-csearch_path%3D{SCHEMA}")


def drop_store(kind: str, where: str, engine) -> None:
    engine.dispose()
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(where + suffix).unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(where.split("?")[0].replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def timed_import(engine, folder: Path, ingest) -> dict:
    """``ingest.index_folder(engine, folder)`` with its phases timed."""
    import neuroscribe.atlas.search_index as search_index

    ph = Phases()
    ph.wrap(ingest, "read_folder", label=lambda *a: "read the folder (json)")
    ph.wrap(search_index, "refresh_search", label=lambda *a: "search: MiniLM embeddings")
    writer = getattr(ingest, "writer", None)
    if writer is not None and hasattr(writer, "write_columns"):
        ph.wrap(writer, "write_columns", label=lambda conn, table, cols: f"write {table.name}",
                count=lambda n: n)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        try:
            report = ingest.index_folder(engine, folder)
        finally:
            ph.undo()
        total = time.perf_counter() - t0
    return {"total": total, "report": report, "seconds": ph.seconds, "rows": ph.rows, "peak_rss": mem.peak}


def print_import(name: str, r: dict, scale: float, base: dict | None) -> None:
    tot = r["total"]
    sec = dict(r["seconds"])
    read = sec.pop("read the folder (json)", 0.0)
    embed = sec.pop("search: MiniLM embeddings", 0.0)
    rows_total = sum(r["rows"].values())
    rows = f"{rows_total:,} rows, {rows_total / tot:,.0f} rows/s overall; " if rows_total else ""
    print(f"\n[{name}] import: {tot:7.1f} s   ({rows}peak RSS {r['peak_rss'] / 2**30:.1f} GiB)"
          + (f"   baseline {base['total']:.1f} s: {base['total'] / tot:.1f}x faster" if base else ""))
    print(f"    {'read the folder (json)':<40} {read:7.1f} s")
    print(f"    {'build and write the rows, commit':<40} {tot - read - embed:7.1f} s")
    for k, s in sorted(sec.items(), key=lambda kv: -kv[1]):
        n = r["rows"].get(k, 0)
        print(f"      {k:<38} {s:7.1f} s  {n:>10,} rows {n / max(s, 1e-9):>11,.0f} rows/s")
    print(f"    {'search documents: MiniLM embeddings':<40} {embed:7.1f} s")
    print(f"    {'without the embeddings':<40} {tot - embed:7.1f} s"
          + (f"   (baseline {base['total'] - base['seconds'].get('search: MiniLM embeddings', 0.0):.1f} s)"
             if base else ""))
    if sec:
        print("    (write times: the writer thread's, beside the build: they overlap it and include waits for the GIL)")
    if scale != 1.0:
        est = (tot - embed) * scale + embed
        print(f"    EXTRAPOLATED to 458,752 units (linear in units, embeddings unscaled): ~{est:.0f} s "
              f"(target < 60 s) -- an estimate, not a measurement")
    else:
        print(f"    target < 60 s: {'met' if tot < 60 else 'NOT met'} ({tot / 60:.2f}x the target)")


def serve(engine, n: int, http: bool, seed: int = 0) -> dict:
    from neuroscribe.atlas import queries
    from neuroscribe.atlas.neuron_view import neuron_view
    from neuroscribe.atlas.search_index import search_docs
    from neuroscribe.atlas.search_results import with_neurons

    rng = random.Random(seed)
    m = queries.list_models(engine)[0]
    model, layers = m["key"], [x["layer"] for x in m["layers"]]
    upl = max(x["n_neurons"] for x in m["layers"])
    import atlas_synth

    words = atlas_synth.WORDS
    cases = {
        "neuron page": lambda: neuron_view(engine, model, rng.choice(layers), rng.randrange(upl)),
        "neurons: layer, sort max_activation": lambda: queries.list_neurons(
            engine, model=model, layer=rng.choice(layers), sort="max_activation", order="desc", limit=50),
        "neurons: descriptor filter": lambda: queries.list_neurons(
            engine, model=model, descriptor=rng.choice(words), limit=50),
        "search + neurons": lambda: with_neurons(engine, search_docs(engine, rng.choice(words) + " "
                                                                     + rng.choice(words), limit=20)),
    }
    targets = {"neuron page": 50, "neurons: layer, sort max_activation": 100, "neurons: descriptor filter": 100,
               "search + neurons": 200}
    out = {}
    search_docs(engine, "warm up")  # the embeddings matrix and the MiniLM query embedder, once per process
    for name, call in cases.items():
        times = []
        k = n if name == "neuron page" else max(20, n // 4)
        for _ in range(k):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = (times, targets[name])
    if http:
        from fastapi.testclient import TestClient

        from neuroscribe.service.api import create_app
        from neuroscribe.service.queue import InMemoryQueue

        client = TestClient(create_app(InMemoryQueue(), artefacts_dir=tempfile.mkdtemp(), atlas=engine))
        routes = {
            "HTTP neuron page": lambda: f"/v1/atlas/neurons/{model}/{rng.choice(layers)}/{rng.randrange(upl)}",
            "HTTP neurons: layer, sort": lambda: f"/v1/atlas/neurons?model={model}&layer={rng.choice(layers)}"
                                                 "&sort=max_activation&order=desc&limit=50",
            "HTTP neurons: descriptor": lambda: f"/v1/atlas/neurons?model={model}&descriptor={rng.choice(words)}",
            "HTTP search": lambda: f"/v1/atlas/search?q={rng.choice(words)}+{rng.choice(words)}",
        }
        for (name, path), target in zip(routes.items(), targets.values()):
            times = []
            for _ in range(n if "page" in name else max(20, n // 4)):
                url = path()
                t0 = time.perf_counter()
                r = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, (url, r.status_code, r.text[:200])
            out[name] = (times, target)
    return out


def print_serving(name: str, s: dict) -> None:
    print(f"\n[{name}] serving (ms per call, server side)")
    for k, (times, target) in s.items():
        p95 = pct(times, 0.95)
        print(f"    {k:<38} n={len(times):<4} p50 {pct(times, 0.5):8.1f}  p95 {p95:8.1f}  max {max(times):8.1f}   "
              f"target p95 < {target} ms: {'met' if p95 < target else 'NOT met'} ({p95 / target:.1f}x the target)")


def main() -> None:
    import atlas_synth

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=atlas_synth.FULL_UNITS)
    ap.add_argument("--folder", type=Path, default=None, help="where the synthetic folder is built once (cached)")
    ap.add_argument("--pg", default=PG, help="PostgreSQL URL (a schema bench_atlas is made and dropped); 'none'")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--http", action="store_true", help="time the routes through the service's app too")
    ap.add_argument("--baseline", default=None, help="a git revision whose importer runs side by side")
    ap.add_argument("--no-serve", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the stores (SQLite file, PostgreSQL schema)")
    args = ap.parse_args()
    root = args.folder or Path(tempfile.gettempdir()) / "neuroscribe-bench-atlas"
    root.mkdir(parents=True, exist_ok=True)
    folder = atlas_synth.build(root, args.units)
    layers, upl, n_sent = atlas_synth.shape(args.units)
    units = layers * upl
    scale = atlas_synth.FULL_UNITS / units
    print(f"neuron atlas bench: {units:,} units ({layers} x {upl:,}), {n_sent:,} sentences; folder {folder} "
          f"({sum(p.stat().st_size for p in folder.iterdir()) / 1e6:,.0f} MB); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    import neuroscribe.atlas.ingest as ingest
    from neuroscribe.atlas.search_index import query_embedder

    t0 = time.perf_counter()
    query_embedder()
    print(f"(MiniLM loaded once beforehand, {time.perf_counter() - t0:.1f} s, not in the import times)")
    old = old_ingest(args.baseline) if args.baseline else None
    stores = ([] if args.no_sqlite else [("sqlite", str(root / "bench-atlas.sqlite"))]) + \
        ([] if args.pg == "none" else [("postgresql", args.pg)])
    for kind, where in stores:
        base = None
        if old is not None:
            engine = fresh_store(kind, where)
            base = timed_import(engine, folder, old)
            print_import(f"{kind}, baseline {args.baseline}", base, scale, None)
            drop_store(kind, where, engine)
        engine = fresh_store(kind, where)
        try:
            r = timed_import(engine, folder, ingest)
            print_import(f"{kind}, this tree", r, scale, base)
            print(f"    counts: {r['report']}")
            if not args.no_serve:
                print_serving(kind, serve(engine, args.requests, args.http))
        finally:
            if args.keep:
                engine.dispose()
                print(f"    kept: {where}" + (f" (schema {SCHEMA})" if kind != "sqlite" else ""))
            else:
                drop_store(kind, where, engine)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; max RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


if __name__ == "__main__":
    main()
