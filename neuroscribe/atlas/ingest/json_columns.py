"""JSON text of many rows at once, identical to ``json.dumps`` of each row (what SQLAlchemy's JSON
type stores), without a Python call per row where the rows are uniform.

``json.dumps`` of a whole (n, k) matrix is one C call; its text is split back into the n rows'.
Rows that are not uniform (missing entries, non-finite floats, other lengths) take the per-row
path, so the text is always exactly ``json.dumps(row)``.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

__all__ = ["matrix_rows", "finite_or_none", "rows_text", "keyed_rows"]


def finite_or_none(x):
    return None if x is None or not np.isfinite(x) else float(x)


def matrix_rows(matrix) -> list[str]:
    """``[json.dumps(row) for row in matrix]`` for a 2-D numeric array or a list of equal-length
    lists of numbers (numpy floats go as Python floats, ints as ints)."""
    data = matrix.tolist() if isinstance(matrix, np.ndarray) else matrix
    n = len(data)
    if n == 0:
        return []
    if not data[0]:
        return [json.dumps(r) for r in data]
    parts = json.dumps(data)[2:-2].split("], [")
    if len(parts) != n:  # a row with nested lists would split wrong; never for numbers
        return [json.dumps(r) for r in data]
    return ["[" + p + "]" for p in parts]


def rows_text(values: np.ndarray, keep: np.ndarray | None = None, *, floats: bool = False) -> list[str]:
    """Per row of ``values`` (n, k), the JSON text of its entries where ``keep`` (all when None);
    with ``floats``, non-finite entries are ``null`` (as ``finite_or_none``)."""
    n = values.shape[0]
    if floats:
        values = values.astype(np.float64)
        bad = ~np.isfinite(values)
    else:
        bad = np.zeros(values.shape, bool)
    odd = bad.any(1) if keep is None else (bad & keep).any(1) | ~keep.all(1)
    out = matrix_rows(values) if not odd.all() else [""] * n
    for i in np.flatnonzero(odd):
        row = values[i] if keep is None else values[i][keep[i]]
        out[i] = json.dumps([finite_or_none(x) for x in row.tolist()] if floats else row.tolist())
    return out


def keyed_rows(keys: Sequence, rows: Sequence) -> list[str]:
    """``[json.dumps({str(k): v for k, v in zip(keys, row) if v is not None}) for row in rows]``."""
    keys = [str(k) for k in keys]
    k = len(keys)
    if k == 0:
        return ["{}"] * len(rows)
    uniform = [i for i, r in enumerate(rows) if isinstance(r, list) and len(r) == k and None not in r]
    out: list = [None] * len(rows)
    if uniform:
        template = "{" + ", ".join(json.dumps(key).replace("%", "%%") + ": %s" for key in keys) + "}"
        texts = matrix_rows([rows[i] for i in uniform])
        for i, text in zip(uniform, texts):
            parts = text[1:-1].split(", ")
            if len(parts) == k:  # numbers (a string holding ", " takes the per-row path)
                out[i] = template % tuple(parts)
    for i, r in enumerate(rows):
        if out[i] is None:
            out[i] = json.dumps({key: v for key, v in zip(keys, r or ()) if v is not None})
    return out
