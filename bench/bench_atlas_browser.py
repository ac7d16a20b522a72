"""Benchmark: the atlas's pages in Chromium against the describe job's single-file page (issue
"neuron atlas", Performance: target 10x faster to show).

A describe result folder (``--describe``, default the MiniLM run ``runs/describe-amazon``) is
indexed into a fresh SQLite store, served by the service's app under uvicorn on 127.0.0.1, and
opened in headless Chromium (Playwright; the system's Chromium, ``--chromium``; nothing is
downloaded), each page ``--repeats`` times in a fresh browser context (cold cache):

* the folder's ``descriptions.html`` (file://), the one page that shows every unit today;
* the atlas's neuron list of the first layer (``/models/<model>/<layer>``) and one neuron page
  (``/neurons/<model>/<layer>/<unit>``); ``--store URL`` serves that store instead (e.g. the one
  ``bench_atlas.py --keep`` leaves: Llama-3.1-8B size).

Per page, the median over the repeats of: first contentful paint (the browser's own ``paint``
entry) and content shown (the page's data in the DOM: the list's table, the neuron's exemplars;
for ``descriptions.html`` its load event, as it is all one file), from navigation start; and
the ratio descriptions.html / atlas page. Always exits 0.

    .venv/bin/python bench/bench_atlas_browser.py [--describe DIR] [--store URL] [--repeats 5]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/lib/chromium/chromium"
PAINT = """() => { const p = performance.getEntriesByName('first-contentful-paint')[0];
  return p ? p.startTime : null; }"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(engine) -> tuple[str, object]:
    import uvicorn

    from neuroscribe.service.api import create_app
    from neuroscribe.service.queue import InMemoryQueue

    app = create_app(InMemoryQueue(), artefacts_dir=tempfile.mkdtemp(), atlas=engine)
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def measure(browser, url: str, selector: str | None, repeats: int) -> tuple[float, float]:
    """Medians (ms) of first contentful paint and of content shown (``selector`` visible; None:
    the load event), each in a fresh context."""
    fcp, shown = [], []
    for _ in range(repeats):
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(url, wait_until="load" if selector is None else "commit", timeout=120_000)
        if selector is None:
            shown.append(page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd"))
        else:
            page.wait_for_selector(selector, state="visible", timeout=120_000)
            shown.append(page.evaluate("() => performance.now()"))
        page.wait_for_function(f"({PAINT})() !== null", timeout=120_000)
        fcp.append(page.evaluate(PAINT))
        ctx.close()
    return statistics.median(fcp), statistics.median(shown)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--describe", type=Path, default=ROOT / "runs" / "describe-amazon")
    ap.add_argument("--store", default=None, help="serve this atlas URL instead of indexing --describe")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chromium", default=CHROMIUM)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from neuroscribe.atlas import queries
    from neuroscribe.atlas.ingest import index_folder
    from neuroscribe.atlas.store import open_store

    html = args.describe / "descriptions.html"
    tmp = Path(tempfile.mkdtemp(prefix="atlas-browser-"))
    if args.store:
        engine = open_store(args.store)
    else:
        engine = open_store(f"sqlite:///{tmp / 'atlas.sqlite'}")
        t0 = time.perf_counter()
        index_folder(engine, args.describe)
        print(f"indexed {args.describe} in {time.perf_counter() - t0:.1f} s")
    m = queries.list_models(engine)[0]
    model, layer = m["key"], m["layers"][0]["layer"]
    unit = queries.list_neurons(engine, model=model, layer=layer, sort="max_activation", order="desc",
                                limit=1)["items"][0]["unit"]
    base, server = serve(engine)
    pages = []
    if html.is_file():
        pages.append((f"descriptions.html ({html.stat().st_size / 1e6:.1f} MB, one file)", html.as_uri(), None))
    else:
        print(f"(no {html}: the single-file page is left out)")
    pages += [(f"atlas neuron list (layer {layer})", f"{base}/models/{model}/{layer}", "#neurons-table .neuron-row"),
              (f"atlas neuron page ({layer}/{unit})", f"{base}/neurons/{model}/{layer}/{unit}", ".exemplar .tok")]
    print(f"Chromium headless ({args.chromium}), {args.repeats} cold loads each, medians; store: "
          f"{engine.url.render_as_string(hide_password=True)}, model {model} ({m['n_neurons']:,} neurons)")
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        try:
            for name, url, selector in pages:
                results[name] = measure(browser, url, selector, args.repeats)
                fcp, shown = results[name]
                print(f"  {name:<48} first contentful paint {fcp:8.0f} ms   content shown {shown:8.0f} ms")
        finally:
            browser.close()
    server.should_exit = True
    if html.is_file():
        ref = results[pages[0][0]]
        for name, _, _ in pages[1:]:
            fcp, shown = results[name]
            print(f"  {name}: {ref[0] / fcp:.1f}x faster to first paint, {ref[1] / shown:.1f}x faster to its content "
                  f"than descriptions.html (target 10x)")
    engine.dispose()


if __name__ == "__main__":
    main()
