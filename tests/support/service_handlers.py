"""Stage handlers for the reliability tests: behaviour chosen by the job's first concept name.

    "noop"                   every stage returns at once
    "sleep S"                generate sleeps S seconds (the GIL released)
    "gil S"                  generate holds the GIL for S whole seconds (libc sleep through ctypes.PyDLL)
    "kill-worker-after-write"  generate writes its artefact, then, on the first attempt only, kills its
                             worker process (SIGKILL) before the hand-off
    "invalid"                generate raises InvalidInput (never retried)
    "shard N S"              activate splits into N shards (queue/shards.py); each shard sleeps S seconds
                             (progress every 0.1 s) and hands on its own token; the reduce hands on the
                             tokens of every shard (in shard order) and one of its own

Every call appends one JSON line to ``<artefacts root>/executions.log`` (stage, job, attempt, pid,
time, and the hand-off it received), so a test can count executions and commits. Hand-offs carry
a fresh token per execution: a stage committed twice would show two tokens downstream.
"""

import ctypes
import json
import os
import signal
import time
import uuid

from neuroscribe.errors import InvalidInput


def _log(ctx, **extra):
    shard = (ctx.shard or {}).get("id")
    line = json.dumps({"stage": ctx.stage, "job": ctx.job_id, "attempt": ctx.attempt, "pid": os.getpid(),
                       "t": time.time(), "got": ctx.handoff, "shard": shard, **extra}) + "\n"
    fd = os.open(ctx.artefacts.parent / "executions.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _command(ctx):
    name = ctx.job.concepts[0].name
    verb, _, arg = name.partition(" ")
    return verb, arg


def generate(ctx):
    _log(ctx)
    verb, arg = _command(ctx)
    if verb == "sleep":
        for i in range(int(float(arg) * 10)):
            time.sleep(0.1)
            ctx.progress(i + 1, int(float(arg) * 10))
    elif verb == "gil":
        ctypes.PyDLL(None).sleep(int(arg))  # a native call that keeps the GIL the whole time
    elif verb == "invalid":
        raise InvalidInput("concepts", "this job can never succeed")
    elif verb == "kill-worker-after-write":
        ctx.artefacts.mkdir(parents=True, exist_ok=True)
        part = ctx.artefacts / "artefact.txt.part"
        part.write_text(f"artefact of {ctx.job_id}\n")
        os.replace(part, ctx.artefacts / "artefact.txt")
        if ctx.attempt == 1:
            os.kill(os.getppid(), signal.SIGKILL)  # the worker dies between the write and the hand-off
            time.sleep(30)
    return {"handoff": {"tokens": [uuid.uuid4().hex]}}


def activate(ctx):
    verb, arg = _command(ctx)
    if verb == "shard":
        return _sharded(ctx, int(arg.split()[0]), float(arg.split()[1]))
    _log(ctx)
    return {"handoff": {"tokens": ctx.handoff["tokens"] + [uuid.uuid4().hex]}}


def _sharded(ctx, n: int, seconds: float):
    if ctx.shard is None:  # the split: recorded, no work
        _log(ctx)
        return {"handoff": ctx.handoff, "shards": [{"n": i} for i in range(n)]}
    if ctx.shard["id"] == "reduce":
        outs = ctx.shard["outputs"]
        _log(ctx, outputs=sorted(outs))
        tokens = [outs[k]["token"] for k in sorted(outs)]
        return {"handoff": {"tokens": ctx.handoff["tokens"] + tokens + [uuid.uuid4().hex]}}
    _log(ctx)
    for i in range(int(seconds * 10)):
        time.sleep(0.1)
        ctx.progress(i + 1, int(seconds * 10))
    return {"handoff": {"token": uuid.uuid4().hex}}


def analyse(ctx):
    _log(ctx)
    return {"result": {"tokens": ctx.handoff["tokens"] + [uuid.uuid4().hex]}}


HANDLERS = {"generate": generate, "activate": activate, "analyse": analyse}
