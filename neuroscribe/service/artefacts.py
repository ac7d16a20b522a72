"""Result folders: written under a temporary name and renamed into place, so a failed or
interrupted job never leaves a half-written DIR behind.

``--force`` replaces only an empty folder or an earlier neuroscribe result (one holding
``job.json``): never an arbitrary folder such as a source tree.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from neuroscribe.errors import InvalidInput

__all__ = ["atomic_output_dir", "current_umask", "write_json", "write_text", "write_bytes_atomic", "csv_text", "check_output_dir", "RESULT_MARKER", "summary_tail"]

RESULT_MARKER = "job.json"  # every result folder holds it; --force replaces only such folders


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor or ".")


def check_output_dir(out: str | Path, *, force: bool) -> Path:
    """The absolute output path, after failing early (before any work) when it cannot be written."""
    out = Path(out).resolve()
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise InvalidInput("out", f"{out} is the current folder or above it; name a new folder")
    if out.exists() and not out.is_dir():
        raise InvalidInput("out", f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InvalidInput("out", f"{out} exists and is not empty (pass --force to replace an earlier result)")
        if not (out / RESULT_MARKER).is_file():
            raise InvalidInput("out", f"{out} is not an earlier neuroscribe result (no {RESULT_MARKER}); not replacing it")
    base = _existing_ancestor(out)
    if not base.is_dir():
        raise InvalidInput("out", f"cannot create {out}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InvalidInput("out", f"cannot create {out}: {base} is not writable")
    return out


def current_umask() -> int:
    """The process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output_dir(out: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it becomes ``out`` (replacing an earlier
    result only when ``force``); on any error it is removed and ``out`` is left as it was."""
    out = check_output_dir(out, force=force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise InvalidInput("out", f"cannot create {out}: {e.strerror or e}") from None
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; a result folder is an ordinary folder
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except OSError:
            if old is not None:
                os.rename(old, out)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file beside it and a rename: a reader
    sees the old file or the new one, never part of it, whoever else writes the same path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def csv_text(header, rows) -> str:
    """A CSV document (header + rows) as text, "\n" line ends."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def summary_tail(warnings, timings: dict | None, out: Path | None, page: str) -> list[str]:
    """The last lines of a summary: warnings, stage times, where the result was written."""
    lines = [f"  warning: {w}" for w in warnings]
    if timings:
        lines.append("  time: " + ", ".join(f"{k.removesuffix('_s')} {s:.0f} s" for k, s in timings.items()))
    if out is not None:
        lines.append(f"  written to {out} ({page})")
    return lines
