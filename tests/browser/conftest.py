"""The web UI in a real browser: Chromium (the system's, /usr/lib/chromium/chromium) driven by
Playwright's sync API, against the service's own app on a real uvicorn at 127.0.0.1 (a free port, a
background thread), over a SQLite atlas holding the three real result folders of
``atlas_results.make_results`` (a tiny GPT-NeoX whose layer-0 unit 5 fires on "cat").

Two servers share one queue, artefacts folder and atlas: ``open`` (no key) and ``keyed`` (API key
``KEY``). A succeeded service job (``seeded``: a copy of the rank result folder, with a hostile HTML
file and a binary file beside it) sits in the queue and, under its job id, in the atlas.

One browser per test module, a fresh context per test; every test's pages are watched (``page``): a
request that leaves 127.0.0.1, a script error or a Content-Security-Policy violation fails the test.
No Chromium is a failure (CI installs it), never a skip.
"""

from __future__ import annotations

import pytest

from atlas_results import make_results
from atlas_ui import CHROMIUM, KEY, TIMEOUT_MS, Atlas, Watch, seed_succeeded_job, serve


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    """The three result folders indexed into a SQLite atlas, a seeded service job, and both servers."""
    from neuroscribe.atlas.ingest import index_folder
    from neuroscribe.atlas.queries import list_models
    from neuroscribe.atlas.store import open_store
    from neuroscribe.service.api import create_app
    from neuroscribe.service.queue import InMemoryQueue
    from neuroscribe.settings import Settings

    root = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as mp:  # session scope: the root conftest's per-test env is not set yet
        mp.setenv("NEUROSCRIBE_CACHE", str(root / "cache"))
        mp.setenv("NEUROSCRIBE_AUTO_INDEX", "0")
        results = make_results(root / "results")
    url = f"sqlite:///{root / 'atlas.sqlite'}"
    engine = open_store(url)
    for kind in ("describe", "experts", "rank"):
        index_folder(engine, results[kind])
    artefacts = root / "artefacts"
    artefacts.mkdir()
    queue = InMemoryQueue()
    seeded = seed_succeeded_job(queue, artefacts, results["rank"])
    index_folder(engine, artefacts / seeded / "result")  # a service job in the atlas: its key is the job id
    settings = Settings.build(artefacts=artefacts, cache_dir=root / "cache", atlas_url=url, queue_url="memory://",
                              auto_index=False)
    (model,) = [m["key"] for m in list_models(engine)]
    a = Atlas(engine=engine, url=url, queue=queue, artefacts=artefacts, results=results, model=model, seeded=seeded)
    for attr, key in (("open", None), ("keyed", KEY)):
        base, server, thread = serve(create_app(queue, artefacts_dir=artefacts, atlas=engine, settings=settings,
                                                 api_key=key))
        setattr(a, attr, base)
        a.servers.append((server, thread))
    yield a
    for server, _ in a.servers:
        server.should_exit = True
    for _, thread in a.servers:
        thread.join(15)
    engine.dispose()


@pytest.fixture(scope="module")  # not session: Playwright's sync API keeps an event loop running in
def browser():                   # this thread while it lives, and later tests call asyncio.run
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: the browser tests need it (apt-get install chromium; "
                    f"CI's .ci/run installs it)", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def watch():
    return Watch()


@pytest.fixture
def context(browser, watch):
    ctx = browser.new_context(accept_downloads=True)  # CSP enforced: no bypass_csp
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.on("page", watch.attach)  # popups included
    yield ctx
    ctx.close()
    assert not watch.outside(), f"requests left 127.0.0.1: {watch.outside()}"
    assert not watch.errors, "\n".join(watch.errors)
    assert not watch.dialogs, f"dialogs: {watch.dialogs}"


@pytest.fixture
def page(context, watch):
    p = context.new_page()
    watch.attach(p)  # before its first request, whenever the context's page event comes
    return p
