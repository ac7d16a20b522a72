"""Forgetting: ``collect`` applies the retention (``queue.Retention``, from ``Settings``) to the
queue and to the jobs' folders; ``remove_job`` deletes one finished job (``DELETE /v1/jobs/{id}``).

``collect``: the queue's ``gc`` (finished jobs older than ``job_ttl_s``, stale index entries, dead
letters older than ``dead_letter_ttl_s``; idempotency keys expire by themselves), then the folders
``ARTEFACTS/<id>/`` of the jobs it removed and of any job the queue no longer knows whose folder
was last written more than ``job_ttl_s`` ago; with an object store (``store``), the removed
jobs' objects too (``storage.sync.forget``). ``neuroscribe gc`` runs it once; ``neuroscribe
serve`` every ``gc_interval_s`` (``Collector``, a daemon thread).
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from neuroscribe.service.queue.base import JobNotFound, JobQueue, Retention
from neuroscribe.service.storage import sync

__all__ = ["collect", "remove_job", "Collected", "Collector", "retention_of"]

log = logging.getLogger(__name__)
_JOB_DIR = re.compile(r"[0-9a-f]{32}")


@dataclass
class Collected:
    jobs: list[str] = field(default_factory=list)
    index_entries: int = 0
    dead_letters: int = 0
    folders: int = 0

    def line(self) -> str:
        return (f"removed {len(self.jobs)} finished job(s), {self.folders} job folder(s), "
                f"{self.index_entries} stale index entr{'y' if self.index_entries == 1 else 'ies'}, "
                f"{self.dead_letters} dead letter(s)")


def _rmtree(folder: Path) -> bool:
    if not folder.is_dir() or folder.is_symlink():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def remove_job(queue: JobQueue, artefacts: Path, job_id: str) -> None:
    """Delete a finished job's records (``queue.delete``) and then its folder."""
    queue.delete(job_id)
    _rmtree(Path(artefacts) / job_id)


def collect(queue: JobQueue, artefacts: Path | None, now: float | None = None, *, store=None) -> Collected:
    now = time.time() if now is None else now
    report = queue.gc(now)
    out = Collected(jobs=list(report.jobs), index_entries=report.index_entries, dead_letters=report.dead_letters)
    for job_id in report.jobs if store is not None else ():
        try:
            sync.forget(store, job_id)
        except Exception as e:  # the records are gone already: logged, the objects stay
            log.warning("gc: could not delete job %s's objects from %s: %r", job_id, store.url, e)
    if artefacts is None or not Path(artefacts).is_dir():
        return out
    root = Path(artefacts)
    out.folders = sum(_rmtree(root / job_id) for job_id in report.jobs)
    cutoff = now - queue.retention.job_ttl_s
    for folder in root.iterdir():
        if not _JOB_DIR.fullmatch(folder.name) or not folder.is_dir() or folder.stat().st_mtime >= cutoff:
            continue
        try:
            queue.get(folder.name)
        except JobNotFound:  # an orphan: its job was forgotten (or never existed)
            out.folders += int(_rmtree(folder))
    return out


class Collector(threading.Thread):
    """Runs ``collect`` every ``interval_s`` until ``stop()``; errors are logged, never raised."""

    def __init__(self, queue: JobQueue, artefacts: Path | None, interval_s: float, *, store=None):
        super().__init__(name="neuroscribe-gc", daemon=True)
        self.queue, self.artefacts, self.interval_s, self.store = queue, artefacts, interval_s, store
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                done = collect(self.queue, self.artefacts, store=self.store)
                log.info("gc: %s", done.line())
            except Exception as e:  # Redis down, a folder that cannot be removed: next time
                log.warning("gc failed: %r", e)

    def stop(self) -> None:
        self._stop_event.set()


def retention_of(settings) -> Retention:
    """The queue's ``Retention`` from a ``Settings``."""
    return Retention(job_ttl_s=settings.job_ttl_s, idempotency_ttl_s=settings.idempotency_ttl_s,
                     dead_letter_ttl_s=settings.dead_letter_ttl_s)
