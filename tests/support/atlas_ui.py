"""Helpers of the browser tests (tests/browser/conftest.py): the servers on real uvicorns, the seeded
service job, and ``Watch``, which records what a test's pages did."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = Path("/usr/lib/chromium/chromium")
KEY = "s3cret"
# a hostile file among a job's artefacts: opened with the key, nothing of it may run
EVIL_HTML = ('<!doctype html><html><head><title>evil</title></head><body><p id="evil">hostile page</p>'
             '<img src="data:," onerror="document.body.dataset.ran = \'img\'; alert(\'img\')">'
             '<script>document.body.dataset.ran = "script"; alert(sessionStorage.getItem("neuroscribe.apiKey"))</script>'
             '</body></html>')
BINARY = bytes(range(256)) * 4
TIMEOUT_MS = 30_000  # every expect / action: generous, for a slow shared machine


@dataclass
class Atlas:
    """What the servers serve: the atlas (``engine``, ``url``), the queue, the result folders."""

    engine: object
    url: str
    queue: object
    artefacts: Path
    results: dict
    model: str  # the tiny model's key in the atlas (its URL slug)
    seeded: str  # the succeeded service job's id
    open: str = ""  # base URL of the server without a key
    keyed: str = ""  # base URL of the server with KEY
    servers: list = field(default_factory=list)

    def get(self, path: str, base: str | None = None, key: str | None = None):
        """(status, JSON) of a GET on a server, straight over HTTP (not the browser)."""
        req = urllib.request.Request((base or self.open) + path, headers={"X-API-Key": key} if key else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def serve(app) -> tuple[str, object, threading.Thread]:
    """``app`` on a real uvicorn at 127.0.0.1:<free port>, in a daemon thread; its base URL once it answers."""
    import uvicorn

    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def seed_succeeded_job(queue, artefacts: Path, rank_dir: Path) -> str:
    """A rank job that went through the queue's stages by hand (no worker): succeeded, with the real
    rank result folder as its files, plus ``evil.html`` and ``table.bin``."""
    from neuroscribe.service import registry

    job = json.loads((rank_dir / "job.json").read_text())
    rec, _ = queue.submit_new(job)
    for stage in registry.kinds()["rank"].stages:
        d = queue.claim(stage, "browser-tests", block_s=5)
        assert d is not None and d.job_id == rec.id, f"could not claim the seeded job at stage {stage}"
        last = stage == registry.kinds()["rank"].stages[-1]
        assert queue.complete(d, handoff=None if last else {}, result={"kind": "rank"} if last else None)
    folder = artefacts / rec.id / "result"
    shutil.copytree(rank_dir, folder)
    (folder / "evil.html").write_text(EVIL_HTML)
    (folder / "table.bin").write_bytes(BINARY)
    assert queue.get(rec.id).status.value == "succeeded"
    return rec.id


@dataclass
class Watch:
    """What a test's pages did: every request (URL, headers), script errors, dialogs (each dismissed),
    and what the Content-Security-Policy blocked: on the UI's own pages (``errors``: nothing may be)
    and in files opened from blob URLs (``blocked``: a file's own inline script and styles are)."""

    requests: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    blocked: list = field(default_factory=list)
    dialogs: list = field(default_factory=list)
    pages: list = field(default_factory=list)

    def attach(self, page) -> None:
        if any(p is page for p in self.pages):
            return
        self.pages.append(page)
        page.on("request", lambda r: self.requests.append(r))
        page.on("pageerror", lambda e: self.errors.append(f"page error on {page.url}: {e}"))
        page.on("console", lambda m: self._console(page, m))
        page.on("dialog", lambda d: (self.dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))

    def _console(self, page, m) -> None:
        if "Content Security Policy" in m.text or "Refused to" in m.text:
            if page.url.startswith("blob:"):
                self.blocked.append((page.url, m.text))
            else:
                self.errors.append(f"CSP on {page.url}: {m.text}")

    def outside(self) -> list[str]:
        """Requests that left 127.0.0.1 (blob:, data: and about: stay in the browser)."""
        out = []
        for r in self.requests:
            u = urlsplit(r.url)
            if u.scheme in ("blob", "data", "about"):
                continue
            if u.scheme not in ("http", "https") or u.hostname != "127.0.0.1":
                out.append(r.url)
        return out
