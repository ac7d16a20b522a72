"""Where a describe job's stages keep their files in the job's folder, and how a stage reads an
earlier stage's JSON (``handlers.py``, ``activate.py``)."""

from __future__ import annotations

import json

__all__ = ["STAGE_DIR", "read_stage_json"]

STAGE_DIR = "stage"


def read_stage_json(ctx, name: str) -> dict:
    """``<job>/stage/NAME`` as JSON; a missing file is an earlier stage's that never arrived (retried)."""
    path = ctx.artefacts / STAGE_DIR / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuntimeError(f"an earlier stage's file is missing: {path}") from None
