"""Results outside the records: a job's record carries a *summary* of its result (a few numbers,
``summarize``), and the result itself is served by ``GET /v1/jobs/{id}/result`` only.

A result whose JSON is larger than ``Settings.result_inline_bytes`` is not kept in the queue: the
worker that finishes the job writes it to ``ARTEFACTS/<id>/result.json`` (a temporary name, then
renamed, so a reader never sees half a file) and commits the job with the summary only; the API
streams that file. Smaller results stay in the queue (one key per job, deleted with the job).
"""

from __future__ import annotations

import json
from pathlib import Path

from neuroscribe.service import registry
from neuroscribe.service.artefacts import write_bytes_atomic
from neuroscribe.service.kinds import load_object

__all__ = ["RESULT_FILE", "summarize", "generic_summary", "offload", "result_path"]

RESULT_FILE = "result.json"
_MAX_KEYS = 40
_MAX_TEXT = 120


def _scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= _MAX_TEXT)


def generic_summary(result: dict) -> dict:
    """Top-level scalars, ``n_KEY`` for each list, and the scalars of nested objects one level down
    (``"verification.n_verified"``); at most 40 entries."""
    out: dict = {}
    for key, value in result.items():
        if _scalar(value):
            out[key] = value
        elif isinstance(value, list | tuple):
            out.setdefault(f"n_{key}" if not key.startswith("n_") else key, len(value))
        elif isinstance(value, dict):
            for sub, v in value.items():
                if _scalar(v) and not isinstance(v, str):
                    out[f"{key}.{sub}"] = v
    return dict(list(out.items())[:_MAX_KEYS])


def summarize(kind: str, result: dict | None) -> dict | None:
    """The summary a record shows: the kind's own (``JobKind.summary``) when it declares one, else
    ``generic_summary``; ``bytes`` is the size of the result's JSON."""
    if result is None:
        return None
    spec = getattr(registry.kinds().get(kind), "summary", None)
    out = load_object(spec)(result) if spec else generic_summary(result)
    return {**out, "bytes": len(json.dumps(result))}


def result_path(artefacts: Path, job_id: str) -> Path:
    return Path(artefacts) / job_id / RESULT_FILE


def offload(artefacts: Path, job_id: str, result: dict | None, inline_max: int) -> dict | None:
    """The result to keep in the queue: ``result`` itself when small, else None after writing it
    to ``result_path`` (atomically)."""
    if result is None:
        return None
    text = json.dumps(result)
    if len(text) <= inline_max:
        return result
    target = result_path(artefacts, job_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, text.encode("utf-8"))
    return None
