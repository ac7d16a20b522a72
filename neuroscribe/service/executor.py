"""The executor: a long-lived child process of a worker that runs stage handlers.

The worker (``service.worker``) talks to Redis and keeps the lease alive; the executor runs the
job. Being a separate process, a handler whose native code holds the GIL for minutes cannot stop
the lease from being renewed, and a job that must stop (cancelled, lease lost, SIGTERM) is stopped
by killing the executor, which the worker then restarts. The executor loads its handlers (and,
through them, its models) once and serves many jobs.

Ready handshake: a fresh executor first imports its handlers, then says ``ready`` (or, when they
cannot be loaded, sends one ``error`` and exits). The worker starts the executor and waits for
``ready`` (``Executor.ensure_ready``) before it claims a delivery: at start, and again before the
next claim whenever the executor was killed or died. A delivery, which the queue counts towards
``max_attempts``, is therefore only taken by a worker that can run it at once.

Protocol: JSON messages over a pipe (``send_bytes``, never pickle):
    executor -> worker  {"type": "ready", "pid"}  once, when the handlers are loaded
                        {"type": "error", "reason", "retry": false, "field"}  instead, when they cannot
                        be loaded (then it exits; ``field`` is set for an ``InvalidInput``)
    worker -> executor  {"type": "run", "job_id", "stage", "attempt", "job", "handoff", "shard"}  (only after ready)
    executor -> worker  {"type": "progress", "done", "total", "message"}
                        {"type": "done", "handoff"} or {"type": "done", "result"}
                        or {"type": "done", "handoff", "shards"}  (split this stage: see queue/shards.py)
                        {"type": "error", "reason", "retry", "user"}  (retry false: dead-letter at once;
                        user true, the job's own fault (InvalidInput): failed at once, not dead-lettered)

Handlers: ``MODULE:NAME`` names a mapping ``{stage: handler}`` (default: ``service.registry.HANDLERS``,
which dispatches to the job's kind); ``handler(ctx) -> dict`` returns
``{"handoff": ...}`` or, for the last stage, ``{"result": ...}``; it raises ``InvalidInput`` for a
job that can never succeed (not retried) and anything else for a failure worth retrying.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Callable

from pydantic import ValidationError

from neuroscribe.errors import InvalidInput, NeuroscribeError
from neuroscribe.service import policy
from neuroscribe.service.dataset_store import resolve_dataset
from neuroscribe.service.kinds import load_object
from neuroscribe.service.limits import limit_refusals, text_refusals
from neuroscribe.service.registry import parse_job
from neuroscribe.service.results import offload
from neuroscribe.service.storage import open_store, sync
from neuroscribe.settings import Settings

__all__ = ["StageContext", "Executor", "ExecutorError", "load_handlers", "DEFAULT_HANDLERS"]

DEFAULT_HANDLERS = "neuroscribe.service.registry:HANDLERS"  # every registered kind's, by the job's kind


@dataclass
class StageContext:
    """What a handler gets: the job (validated), the earlier stages' hand-off, its folders, the
    worker's ``Settings``, a progress callback and ``state``, a dict kept across jobs (models loaded
    once per executor)."""

    job_id: str
    stage: str
    attempt: int
    job: object
    handoff: dict | None
    artefacts: Path  # this job's folder (shared between the stages' machines, or a local copy: service/storage/)
    settings: Settings = field(default_factory=Settings)  # the cache, device and keys of this worker
    state: dict = field(default_factory=dict)
    # None: the stage's delivery (a handler may split it: return {"handoff", "shards": [spec, ...]});
    # {"id", "index", "of", "spec"}: one shard of it; {"id": "reduce", "of", "outputs": {id: handoff}}: the merge
    shard: dict | None = None
    report: Callable[[int, int | None, str | None], None] = lambda done, total=None, message=None: None

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        self.report(done, total, message)


class ExecutorError(NeuroscribeError):
    """The executor process could not be made ready: its handlers failed to load (other than an
    ``InvalidInput``), it died while starting, or it did not say ``ready`` in time."""


def _check_spec(spec: str) -> tuple[str, str]:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise InvalidInput("handlers", f"{spec!r} is not MODULE:NAME")
    return module, name


def load_handlers(spec: str) -> dict:
    _check_spec(spec)
    try:
        handlers = load_object(spec)
    except (ImportError, AttributeError) as e:
        raise InvalidInput("handlers", f"cannot load {spec!r}: {e}") from None
    if not isinstance(handlers, Mapping):
        raise InvalidInput("handlers", f"{spec!r} is not a mapping of stage -> handler")
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


def _child_main(conn, handlers_spec: str, settings_json: str) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when the executor stops
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        settings = Settings.from_json(json.loads(settings_json))
        from neuroscribe.service import runtime

        runtime.configure(settings)
        handlers = load_handlers(handlers_spec)
        open_store(settings)  # a store it cannot open (no s3fs for s3://) is refused before ready
    except BaseException as e:  # noqa: BLE001 - reported to the worker, which gives up with it
        if isinstance(e, InvalidInput):
            reason = e.message
        else:
            reason = traceback.format_exception_only(type(e), e)[-1].strip()
        try:
            _send(conn, {"type": "error", "reason": reason, "retry": False, "field": getattr(e, "field", None)})
        except OSError:
            pass
        raise SystemExit(1) from None
    try:
        _send(conn, {"type": "ready", "pid": os.getpid()})
    except OSError:
        return
    state: dict = {}
    while True:
        try:
            msg = _recv(conn)
        except (EOFError, OSError):
            return
        if msg.get("type") != "run":
            continue
        _send(conn, _run_one(msg, handlers, state, settings, conn))


def _run_one(msg: dict, handlers: dict, state: dict, settings: Settings, conn) -> dict:
    stage = msg["stage"]
    handler = handlers.get(stage)
    if handler is None:
        return {"type": "error", "reason": f"this worker has no handler for stage {stage!r}", "retry": False}
    try:
        job = parse_job(msg["job"])  # any registered kind
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "job"
        return {"type": "error", "reason": f"not a valid job: {loc}: {first['msg']}", "retry": False, "user": True}
    job_id = msg["job_id"]
    if not (len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)):
        return {"type": "error", "reason": f"not a valid job id: {job_id!r}", "retry": False}
    try:  # a dataset named by hash: read once here, checked against its hash; the handler sees it inline
        job = resolve_dataset(job, settings)
    except InvalidInput as e:
        return {"type": "error", "reason": f"{e.field}: {e.message}", "retry": False, "user": True}
    except Exception as e:  # noqa: BLE001 - the store did not answer (a full disk, a network share): retried
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        return {"type": "error", "reason": policy.redact_paths(f"reading the dataset: {tb}"), "retry": True,
                "detail": tb}
    # the server's policy and limits again (the API checked them): a user error, never retried
    refused = text_refusals(msg["job"]) or limit_refusals(job, settings) or policy.refusals(job, settings)
    if refused:
        return {"type": "error", "reason": f"refused by this server: {refused[0].field}: {refused[0].msg}",
                "retry": False, "user": True}
    ctx = StageContext(job_id=job_id, stage=stage, attempt=int(msg.get("attempt", 1)), job=job,
                       handoff=msg.get("handoff"), artefacts=Path(settings.artefacts) / job_id, shard=msg.get("shard"),
                       settings=settings, state=state,
                       report=lambda d, t=None, m=None: _send(conn, {"type": "progress", "done": d, "total": t,
                                                                     "message": m}))
    try:
        sibling = stage if ctx.shard and ctx.shard.get("id") != "reduce" else None  # a shard: not its siblings'
        sync.pull(open_store(settings), job_id, ctx.artefacts, shard_of=sibling)  # the earlier stages' files
        out = handler(ctx)
        if not isinstance(out, dict) or not ({"handoff", "result"} & out.keys()):
            raise TypeError(f"handler for {stage!r} returned {type(out).__name__}, not a dict with handoff or result")
        json.dumps(out)  # JSON only on the wire
        _publish(ctx, out)
    except InvalidInput as e:  # the reason reaches the client: no path of this machine in it (detail: the log's)
        return {"type": "error", "reason": policy.redact_paths(str(e)), "retry": False, "user": True,
                "detail": str(e)}
    except Exception as e:  # noqa: BLE001 - reported to the queue, which retries it
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        return {"type": "error", "reason": policy.redact_paths(tb), "retry": True, "detail": tb}
    return {"type": "done", **out}


def _publish(ctx: StageContext, out: dict) -> None:
    """Publish the stage's files through the artefact store, before the worker is told ``done``
    (nothing to do when the artefacts folder is the store); a result too large for the queue goes
    with them as ``result.json`` (``results.offload``), for the API to serve."""
    store = open_store(ctx.settings)
    if sync.shares_folder(store, ctx.artefacts):
        return
    if out.get("result") is not None:
        offload(ctx.settings.artefacts, ctx.job_id, out["result"], ctx.settings.result_inline_bytes)
    sync.push(store, ctx.job_id, ctx.artefacts, sync.commit_name(ctx.stage, ctx.shard))


class Executor:
    """The worker's handle on its executor process. ``ensure_ready`` starts one (or a fresh one after a
    kill or a death) and waits for its ``ready``; ``start`` hands a job to a ready executor."""

    def __init__(self, handlers_spec: str, settings: Settings):
        _check_spec(handlers_spec)  # the handlers themselves are loaded (and checked) by the executor
        self.spec = handlers_spec
        self.settings = settings
        self.root = Path(settings.artefacts)
        self.root.mkdir(parents=True, exist_ok=True)
        self._proc = None
        self._conn = None
        self._ready = False

    @property
    def ready(self) -> bool:
        """Whether an executor process said ``ready`` and is still alive (a job can start at once)."""
        return self._ready and self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child, self.spec, json.dumps(self.settings.to_json())),
                                 daemon=True, name="neuroscribe-executor")
        self._proc.start()
        child.close()
        self._conn = parent
        self._ready = False

    def ensure_ready(self, timeout_s: float, *, abort: Callable[[], bool] = lambda: False,
                     step_s: float = 0.1) -> bool:
        """Make sure a ready executor is running: start one unless one is (a dead one is replaced) and
        wait up to ``timeout_s`` for its ``ready``. True once ready; False when ``abort()`` became true
        meanwhile (the half-started executor is killed). Raises ``InvalidInput`` when the handlers spec
        is wrong, ``ExecutorError`` when the executor failed to load its handlers, died while starting
        or was not ready in time (it is killed)."""
        if self.ready:
            return True
        if self._proc is None or not self._proc.is_alive():
            self._reset()
            self._spawn()
        deadline = time.monotonic() + timeout_s
        while True:
            if abort():
                self.kill()
                return False
            try:
                msg = _recv(self._conn) if self._conn.poll(step_s) else None
            except (EOFError, OSError):  # it died (the pipe closed) before saying ready
                msg = None
                self._proc.join(1)
            if msg is not None:
                kind = msg.get("type")
                if kind == "ready":
                    self._ready = True
                    return True
                self.kill()
                if kind == "error" and msg.get("field"):
                    raise InvalidInput(msg["field"], str(msg.get("reason")))
                if kind == "error":
                    raise ExecutorError(f"the executor could not start (handlers {self.spec!r}): {msg.get('reason')}")
                raise ExecutorError(f"the executor sent {kind!r} before it was ready")
            if not self._proc.is_alive():
                code = self._proc.exitcode
                self._reset()
                raise ExecutorError(f"the executor process died (exit code {code}) before it was ready "
                                    f"(handlers {self.spec!r})")
            if time.monotonic() >= deadline:
                self.kill()
                raise ExecutorError(f"the executor was not ready within {timeout_s:g} s (handlers {self.spec!r})")

    def start(self, delivery) -> None:
        """Hand the delivery's job to the executor, which must be ready (``ensure_ready``). An executor
        that died since is reported by the next ``poll`` (``died``)."""
        if self._conn is None:
            raise ExecutorError("no executor is running: call ensure_ready before start")
        self._ready = False  # busy with this job until it answers
        try:
            _send(self._conn, {"type": "run", "job_id": delivery.job_id, "stage": delivery.stage,
                               "attempt": delivery.attempt, "job": delivery.payload.get("job"),
                               "handoff": delivery.payload.get("handoff"), "shard": delivery.payload.get("shard")})
        except OSError:  # it died since it was ready: poll says so
            pass

    def poll(self, timeout: float) -> dict | None:
        """The next message from the executor within ``timeout`` s; ``{"type": "died"}`` if it died."""
        try:
            if self._conn.poll(timeout):
                msg = _recv(self._conn)
                if msg.get("type") in ("done", "error"):  # the job is over: it waits for the next one
                    self._ready = True
                return msg
        except (EOFError, OSError):
            pass
        else:
            if self._proc.is_alive():
                return None
        code = self._proc.exitcode if self._proc is not None else None
        self._reset()
        return {"type": "died", "reason": f"the executor process died (exit code {code})"}

    def kill(self) -> None:
        """Stop the running job now (the next ``ensure_ready`` starts a fresh executor)."""
        if self._proc is not None and self._proc.is_alive():
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.join(10)
        self._reset()

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn, self._ready = None, None, False

    def close(self) -> None:
        self.kill()
