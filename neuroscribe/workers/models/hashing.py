"""Content hashes: of a model's weight files and of a list of sentences.

``weight_sha256(folder)``: sha256 over the bytes of the weight files (``*.safetensors``,
``*.bin``, ``*.gguf``, ``*.pt``) directly in ``folder``, concatenated in sorted file-name order.
With one weight file it equals ``sha256sum`` of that file (and the Hub's LFS object id).
Results are memoised in-process, and for weights of at least ``PERSIST_MIN_BYTES`` (64 MiB) also
in ``$NEUROSCRIBE_CACHE/weight_sha256.json`` (default ``~/.cache/neuroscribe``), keyed by each
file's name, resolved path, size and mtime, so a big checkpoint is read once; an unwritable cache
is silently skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

__all__ = ["WEIGHT_SUFFIXES", "weight_files", "weight_sha256", "dataset_sha256", "set_store"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
_CHUNK = 1 << 22
PERSIST_MIN_BYTES = 64 << 20  # smaller weights hash in well under a second: not worth a cache entry
_memo: dict[str, str] = {}


_store: list[Path | None] = [None]


def set_store(folder: Path | None) -> None:
    """Remember large weight files' hashes in ``folder/weight_sha256.json`` (None: in memory only).
    Set from the settings' cache directory (``service.runtime.configure``)."""
    _store[0] = None if folder is None else Path(folder)


def weight_files(folder: Path) -> list[Path]:
    """The weight files directly in ``folder``, sorted by file name."""
    return sorted((p for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)),
                  key=lambda p: p.name)


def _key(files: list[Path]) -> str:
    parts = []
    for f in files:
        real = f.resolve()
        st = real.stat()
        parts.append([f.name, str(real), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _read_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, key: str, digest: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(path)
        data[key] = digest
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".weight_sha256.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass


def weight_sha256(folder: Path, files: list[Path] | None = None) -> str:
    """sha256 over ``files`` (default: the weight files of ``folder``), cached by path/size/mtime."""
    files = weight_files(folder) if files is None else files
    key = _key(files)
    if key in _memo:
        return _memo[key]
    store = None if _store[0] is None else _store[0] / "weight_sha256.json"
    persist = store is not None and sum(f.stat().st_size for f in files) >= PERSIST_MIN_BYTES
    digest = _read_cache(store).get(key) if persist else None
    if digest is None:
        h = hashlib.sha256()
        for f in files:
            with open(f, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
        digest = h.hexdigest()
        if persist:
            _write_cache(store, key, digest)
    _memo[key] = digest
    return digest


def dataset_sha256(texts: Sequence[str]) -> str:
    """sha256 of ``texts`` in order; each text framed by its UTF-8 length (8 bytes, big-endian)."""
    h = hashlib.sha256()
    h.update(len(texts).to_bytes(8, "big"))
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()
