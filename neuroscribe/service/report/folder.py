"""A finished result folder, for ``neuroscribe report DIR``: reading its result, and writing its
page and figure folder again in place.

* ``read_result``: the result model of ``DIR/NAME.json``, or a one-line ``InvalidInput("DIR", ...)``.
* ``replace_page``: run a page writer in ``DIR``; the old figure folder is moved aside first and
  deleted once the page is written (put back if the writer fails), so no stale figure remains.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from neuroscribe.errors import InvalidInput

__all__ = ["read_result", "replace_page", "result_folder"]

M = TypeVar("M", bound=BaseModel)


def result_folder(result_dir: str | Path) -> Path:
    """``result_dir`` as a ``Path``; ``InvalidInput("DIR", ...)`` when it is not a directory."""
    d = Path(result_dir)
    if not d.is_dir():
        raise InvalidInput("DIR", f"{d} is not a directory")
    return d


def read_result(result_dir: str | Path, filename: str, model: type[M], kind: str) -> M:
    """``model`` validated from ``result_dir/filename``; ``InvalidInput("DIR", ...)`` when ``result_dir``
    is not a directory, has no such file or the file is not a valid ``kind`` result."""
    d = result_folder(result_dir)
    path = d / filename
    if not path.is_file():
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise InvalidInput("DIR", f"{d} has no {filename} (not {article} {kind} result folder)")
    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "document"
        raise InvalidInput("DIR", f"{path} is not a valid {kind} result ({loc}: {first['msg']})") from None


def replace_page(result_dir: str | Path, fig_dir: str, write: Callable[[], Path]) -> Path:
    """Write a result folder's page again: ``write()`` writes the page and its figures into
    ``result_dir/fig_dir`` and returns the page's path, which is returned. The old ``fig_dir`` is
    moved aside before and deleted after; if ``write`` fails, the new one is removed and the old one
    put back."""
    root = Path(result_dir)
    final = root / fig_dir
    old = None
    if final.exists():
        try:
            old = Path(tempfile.mkdtemp(prefix=f".{fig_dir}.old-", dir=root))
        except OSError as e:
            raise InvalidInput("DIR", f"cannot write the page into {root}: {e.strerror or e}") from None
        final.rename(old / fig_dir)
    try:
        page = write()
    except BaseException:
        if old is not None:
            shutil.rmtree(final, ignore_errors=True)
            (old / fig_dir).rename(final)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return page
