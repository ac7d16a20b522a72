"""sha256 of model weight files, hashed once per process and cached by (path, size, mtime)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Sequence

__all__ = ["file_sha256", "weights_sha256", "weight_files"]

_CACHE: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _LOCK:
        _CACHE[key] = digest
    return digest


def weights_sha256(paths: Sequence[str | os.PathLike]) -> str | None:
    """One file: its sha256. Several (sharded checkpoints): sha256 of the sorted lines
    ``"<file name> <sha256>\\n"``. None when there are no files."""
    paths = [Path(p) for p in paths]
    if not paths:
        return None
    if len(paths) == 1:
        return file_sha256(paths[0])
    lines = sorted(f"{p.name} {file_sha256(p)}\n" for p in paths)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The files transformers would load weights from: safetensors if any, else PyTorch .bin files."""
    folder = Path(folder)
    found = sorted(folder.glob("*.safetensors"))
    if not found:
        found = sorted(p for p in folder.glob("*.bin") if p.name.startswith(("pytorch_model", "model")))
    return found
