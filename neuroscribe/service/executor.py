"""The executor: a long-lived child process of a worker that runs stage handlers.

The worker (``service.worker``) talks to Redis and keeps the lease alive; the executor runs the
job. Being a separate process, a handler whose native code holds the GIL for minutes cannot stop
the lease from being renewed, and a job that must stop (cancelled, lease lost, SIGTERM) is stopped
by killing the executor, which the worker then restarts. The executor loads its handlers (and,
through them, its models) once and serves many jobs.

Protocol: JSON messages over a pipe (``send_bytes``, never pickle):
    worker -> executor  {"type": "run", "job_id", "stage", "attempt", "job", "handoff"}
    executor -> worker  {"type": "progress", "done", "total", "message"}
                        {"type": "done", "handoff"} or {"type": "done", "result"}
                        {"type": "error", "reason", "retry"}  (retry false: dead-letter at once)

Handlers: ``MODULE:NAME`` names a dict ``{stage: handler}``; ``handler(ctx) -> dict`` returns
``{"handoff": ...}`` or, for the last stage, ``{"result": ...}``; it raises ``InvalidInput`` for a
job that can never succeed (not retried) and anything else for a failure worth retrying.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing as mp
import os
import signal
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import parse_job

__all__ = ["StageContext", "Executor", "load_handlers", "DEFAULT_HANDLERS"]

DEFAULT_HANDLERS = "neuroscribe.service.experts.handlers:HANDLERS"


@dataclass
class StageContext:
    """What a handler gets: the job (validated), the earlier stages' hand-off, its folders, a
    progress callback and ``state``, a dict kept across jobs (models loaded once per executor)."""

    job_id: str
    stage: str
    attempt: int
    job: object
    handoff: dict | None
    artefacts: Path  # this job's folder (shared between the stages' machines)
    cache_dir: Path
    state: dict = field(default_factory=dict)
    report: Callable[[int, int | None, str | None], None] = lambda done, total=None, message=None: None

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        self.report(done, total, message)


def load_handlers(spec: str) -> dict:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise InvalidInput("handlers", f"{spec!r} is not MODULE:NAME")
    try:
        handlers = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise InvalidInput("handlers", f"cannot load {spec!r}: {e}") from None
    if not isinstance(handlers, dict):
        raise InvalidInput("handlers", f"{spec!r} is not a dict of stage -> handler")
    return handlers


def _send(conn, msg: dict) -> None:
    conn.send_bytes(json.dumps(msg).encode())


def _recv(conn) -> dict:
    return json.loads(conn.recv_bytes().decode())


def _die_with_parent() -> None:
    """Linux: the kernel kills the executor when its worker dies (even by SIGKILL), so an orphan
    never goes on running a job nobody will commit."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipe closing stops it after the job
        pass


def _child_main(conn, handlers_spec: str, artefacts_root: str, cache_dir: str) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when the executor stops
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    handlers = load_handlers(handlers_spec)
    state: dict = {}
    while True:
        try:
            msg = _recv(conn)
        except (EOFError, OSError):
            return
        if msg.get("type") != "run":
            continue
        _send(conn, _run_one(msg, handlers, state, Path(artefacts_root), Path(cache_dir), conn))


def _run_one(msg: dict, handlers: dict, state: dict, root: Path, cache_dir: Path, conn) -> dict:
    stage = msg["stage"]
    handler = handlers.get(stage)
    if handler is None:
        return {"type": "error", "reason": f"this worker has no handler for stage {stage!r}", "retry": False}
    try:
        job = parse_job(msg["job"])
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "job"
        return {"type": "error", "reason": f"not a valid job: {loc}: {first['msg']}", "retry": False}
    job_id = msg["job_id"]
    if not (len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)):
        return {"type": "error", "reason": f"not a valid job id: {job_id!r}", "retry": False}
    ctx = StageContext(job_id=job_id, stage=stage, attempt=int(msg.get("attempt", 1)), job=job,
                       handoff=msg.get("handoff"), artefacts=root / job_id, cache_dir=cache_dir, state=state,
                       report=lambda d, t=None, m=None: _send(conn, {"type": "progress", "done": d, "total": t,
                                                                     "message": m}))
    try:
        out = handler(ctx)
        if not isinstance(out, dict) or not ({"handoff", "result"} & out.keys()):
            raise TypeError(f"handler for {stage!r} returned {type(out).__name__}, not a dict with handoff or result")
        json.dumps(out)  # JSON only on the wire
    except InvalidInput as e:
        return {"type": "error", "reason": str(e), "retry": False}
    except Exception as e:  # noqa: BLE001 - reported to the queue, which retries it
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        return {"type": "error", "reason": tb, "retry": True}
    return {"type": "done", **out}


class Executor:
    """The worker's handle on its executor process (started lazily, restarted after a kill)."""

    def __init__(self, handlers_spec: str, artefacts_root: Path, cache_dir: Path):
        load_handlers(handlers_spec)  # fail early, in the worker, on a bad spec
        self.spec = handlers_spec
        self.root = Path(artefacts_root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Path(cache_dir)
        self._proc = None
        self._conn = None

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child, self.spec, str(self.root), str(self.cache_dir)),
                                 daemon=True, name="neuroscribe-executor")
        self._proc.start()
        child.close()
        self._conn = parent

    def start(self, delivery) -> None:
        self._ensure()
        _send(self._conn, {"type": "run", "job_id": delivery.job_id, "stage": delivery.stage,
                           "attempt": delivery.attempt, "job": delivery.payload.get("job"),
                           "handoff": delivery.payload.get("handoff")})

    def poll(self, timeout: float) -> dict | None:
        """The next message from the executor within ``timeout`` s; ``{"type": "died"}`` if it died."""
        try:
            if self._conn.poll(timeout):
                return _recv(self._conn)
        except (EOFError, OSError):
            pass
        else:
            if self._proc.is_alive():
                return None
        code = self._proc.exitcode if self._proc is not None else None
        self._reset()
        return {"type": "died", "reason": f"the executor process died (exit code {code})"}

    def kill(self) -> None:
        """Stop the running job now (the next ``start`` launches a fresh executor)."""
        if self._proc is not None and self._proc.is_alive():
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.join(10)
        self._reset()

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def close(self) -> None:
        self.kill()
