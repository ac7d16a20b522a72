"""``neuroscribe worker STAGE``: a long-lived process serving one stage's queue.

Loop: make sure the executor process (``service.executor``) is up and ready, then claim one
delivery (``XREADGROUP COUNT 1``; expired leases of dead workers first), hand it to the executor,
and while it runs renew the lease every third of ``lease_s`` and forward its progress. Then commit
(``complete``: hand-off to the next stage or the final result, atomically), ``fail`` (retried with
backoff, or dead-lettered when the job can never succeed) or, when the renewal says the job was
cancelled or the lease was lost, kill the executor and publish nothing.

Ready before claim: a delivery counts towards the job's ``max_attempts`` whether or not it ran, so
the worker never claims one it could not start at once. Before its first claim, and again before
the next claim after the executor was killed (cancel, lost lease, grace) or died, it starts a fresh
executor and waits for its ``ready`` message (sent once the handlers are imported), holding no
delivery meanwhile. An executor that cannot load its handlers, dies while starting or is not ready
within ``ready_timeout_s`` makes ``run`` raise (``InvalidInput`` for a bad handlers spec, else
``executor.ExecutorError``; the CLI exits non-zero with the reason) with nothing claimed; a SIGTERM
while waiting stops the worker at once. An executor that dies while idle is replaced before the
next claim; one that dies in the short window between that check and the job's start fails the
delivery (retried), as a death mid-job does.

Records stay small: the last stage's result is summarized (``service.results``) and, when larger
than ``settings.result_inline_bytes``, written to ``ARTEFACTS/<id>/result.json`` instead of the
queue. Logs are structured (``service.logs``: each line of a job carries job_id, stage, attempt);
``metrics`` (``service.metrics.WorkerMetrics``) counts deliveries, outcomes and durations;
``heartbeat`` (a file) is touched at least every quarter lease while the worker is alive and
serving (the compose healthcheck reads its age).

Redis outages: every queue call is retried with backoff until Redis answers again (the worker
never exits for it); a lease that ran out meanwhile makes the commit a no-op and the job runs
again elsewhere. SIGTERM / SIGINT: finish the current job within ``grace_s``, else kill it and
release the delivery (claimable at once); then leave the consumer group and exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Callable

from neuroscribe.service import logs
from neuroscribe.service.executor import DEFAULT_HANDLERS, Executor
from neuroscribe.service.queue.base import Delivery, JobQueue
from neuroscribe.service.results import offload, summarize
from neuroscribe.settings import Settings

_logger = logging.getLogger("neuroscribe.worker")

__all__ = ["Worker", "consumer_name"]


def consumer_name(stage: str) -> str:
    return f"{stage}-{socket.gethostname()}-{os.getpid()}"


def _transient() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        import redis

        errors += [redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError]
    except ImportError:  # pragma: no cover - the memory queue needs no redis
        pass
    return tuple(errors)


class Worker:
    def __init__(self, queue: JobQueue, stage: str, *, settings: Settings,
                 handlers: str = DEFAULT_HANDLERS, consumer: str | None = None, poll_s: float = 1.0,
                 grace_s: float = 30.0, ready_timeout_s: float = 300.0, log: Callable[[str], None] | None = None,
                 metrics=None, heartbeat: Path | None = None):
        self.queue = queue
        self.settings = settings
        self.metrics = metrics  # a service.metrics.WorkerMetrics, or None
        self.heartbeat = Path(heartbeat) if heartbeat is not None else None
        self.stage = stage
        self.consumer = consumer or consumer_name(stage)
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.ready_timeout_s = ready_timeout_s  # for the executor to import its handlers and say ready
        self.log = log or _logger.info
        self.executor = Executor(handlers, settings)  # the executor gets the settings as JSON
        self._stop_at: float | None = None
        self._transient = _transient()
        self.jobs_done = 0

    # ---------------------------------------------------------------- signals
    def stop(self, *_args) -> None:
        if self._stop_at is None:
            self._stop_at = time.monotonic() + self.grace_s
            self.log(f"worker {self.consumer}: stopping (current job has {self.grace_s:g} s to finish)")

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def _retrying(self, fn, *args, **kw):
        """``fn(*args, **kw)``, retried with backoff while the queue backend is unreachable."""
        delay = 0.1
        while True:
            try:
                return fn(*args, **kw)
            except self._transient as e:
                self.log(f"worker {self.consumer}: queue unreachable ({type(e).__name__}); retrying in {delay:.1f} s")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # ---------------------------------------------------------------- loop
    def run(self, *, max_jobs: int | None = None, signals: bool = True) -> int:
        """Serve until stopped (``stop``, or SIGTERM / SIGINT when ``signals``: the main thread only)."""
        if signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        prune = getattr(self.queue, "prune_consumers", None)
        if prune is not None:
            self._retrying(prune, self.stage, keep=self.consumer)
        self.log(f"worker {self.consumer}: serving stage {self.stage!r}")
        self._beat()
        try:
            while not self.stopping and (max_jobs is None or self.jobs_done < max_jobs):
                self._beat()
                if not self._executor_ready():  # stopping while the executor started
                    break
                # block at most a quarter lease, so that expired leases are looked for often enough
                d = self._retrying(self.queue.claim, self.stage, self.consumer,
                                   block_s=min(self.poll_s, self.queue.lease_s / 4))
                if d is not None:
                    self._serve(d)
                    self.jobs_done += 1
        finally:
            self.executor.close()
            leave = getattr(self.queue, "leave", None)
            if leave is not None:
                try:
                    leave(self.stage, self.consumer)
                except self._transient:
                    pass
        self.log(f"worker {self.consumer}: exited after {self.jobs_done} job(s)")
        return 0

    def _executor_ready(self) -> bool:
        """Start the executor unless a ready one is running, and wait for its ``ready`` (no delivery is
        held meanwhile). False when the worker is told to stop meanwhile."""
        if self.executor.ready:
            return True
        t0 = time.monotonic()
        self.log(f"worker {self.consumer}: starting the executor (handlers {self.executor.spec})")
        if not self.executor.ensure_ready(self.ready_timeout_s, abort=lambda: self.stopping):
            return False
        self.log(f"worker {self.consumer}: executor ready (pid {self.executor.pid}, "
                 f"{time.monotonic() - t0:.1f} s); claiming")
        return True

    def _beat(self) -> None:
        if self.heartbeat is not None:
            try:
                self.heartbeat.touch()
            except OSError as e:
                _logger.warning("heartbeat %s: %s", self.heartbeat, e)

    def _serve(self, d: Delivery) -> None:
        token = logs.bind(job_id=d.job_id, stage=d.stage, attempt=d.attempt)
        t0 = time.monotonic()
        outcome = "died"
        try:
            outcome = self._run(d)
        finally:
            if self.metrics is not None:
                self.metrics.observe(d.stage, d.attempt, outcome, time.monotonic() - t0)
            logs.unbind(token)

    def _finish(self, d: Delivery, msg: dict) -> bool:
        """Commit the executor's ``done``: the result summarized, and kept out of the queue when large."""
        result = msg.get("result")
        if msg.get("shards") is not None:  # the handler split its stage (queue/shards.py)
            return self._retrying(self.queue.complete, d, handoff=msg.get("handoff"), shards=msg["shards"])
        if result is None:
            return self._retrying(self.queue.complete, d, handoff=msg.get("handoff"))
        kind = d.payload["job"]["kind"]
        inline = offload(self.settings.artefacts, d.job_id, result, self.settings.result_inline_bytes)
        ok = self._retrying(self.queue.complete, d, handoff=msg.get("handoff"), result=inline,
                            summary=summarize(kind, result))
        folder = self.settings.artefacts / d.job_id
        if ok and self.settings.auto_index and (folder / "result" / "job.json").is_file():
            from neuroscribe.atlas.ingest import index_quietly  # the job stands whether or not this works
            from neuroscribe.atlas.store import default_url

            index_quietly(default_url(self.settings), folder / "result", log=self.log)
        return ok

    def _run(self, d: Delivery) -> str:
        q = self.queue
        self.log(f"worker {self.consumer}: job {d.job_id} stage {d.stage} attempt {d.attempt}")
        self.executor.start(d)
        every = q.lease_s / 3
        next_renew = time.monotonic() + every
        while True:
            msg = self.executor.poll(timeout=min(0.1, every))
            now = time.monotonic()
            if msg is None or msg.get("type") == "progress":  # the job is still running
                if self._stop_at is not None and now >= self._stop_at:
                    self.executor.kill()
                    self._retrying(q.release, d)
                    self.log(f"worker {self.consumer}: released job {d.job_id} unfinished")
                    return "released"
                if now >= next_renew:  # renewed on time whatever the executor says meanwhile
                    next_renew = now + every
                    self._beat()
                    if not self._retrying(q.renew, d):
                        self.executor.kill()
                        self._retrying(q.complete, d)  # acknowledges a cancelled job; a no-op for a lost lease
                        self.log(f"worker {self.consumer}: job {d.job_id} cancelled or its lease was lost; stopped")
                        return "cancelled"
                if msg is None:
                    continue
            kind = msg.get("type")
            if kind == "progress":
                self._retrying(q.progress, d, msg.get("done", 0), msg.get("total"), msg.get("message"))
            elif kind == "done":
                ok = self._finish(d, msg)
                self.log(f"worker {self.consumer}: job {d.job_id} stage {d.stage} "
                         + ("committed" if ok else "not committed (cancelled or lease lost)"))
                return "committed" if ok else "not_committed"
            elif kind == "error":
                retry = bool(msg.get("retry"))
                self._retrying(q.fail, d, msg.get("reason", "unknown error"), retry=retry,
                               user_error=bool(msg.get("user")))
                self.log(f"worker {self.consumer}: job {d.job_id} failed: {msg.get('reason')}")
                return "failed" if retry else "invalid"
            elif kind == "died":
                self._retrying(q.fail, d, msg["reason"], retry=True)
                self.log(f"worker {self.consumer}: job {d.job_id}: {msg['reason']}")
                return "died"
