"""No-op stage handlers for ``bench/bench_queue.py``: every stage returns at once, so a benchmark
measures the queue and the worker machinery only (``--handlers bench.noop_handlers:HANDLERS``;
importable with the repository root on ``sys.path``)."""

from __future__ import annotations


def _handoff(ctx) -> dict:
    return {"handoff": {}}


def _result(ctx) -> dict:
    return {"result": {}}


HANDLERS = {"generate": _handoff, "activate": _handoff, "analyse": _result}
