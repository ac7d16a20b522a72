"""``LocalStore``: the artefact store as a folder of this machine (the default: the artefacts
folder itself, shared by the API and every worker; or ``file:///PATH``, e.g. a network mount).

Each key is the file ``ROOT/KEY``. A write goes to a hidden temporary file beside its target
(``.NAME.tmp-XXXX``) which ``os.replace`` renames over it: a reader opens the old file or the new
one, never a half-written one, and ``list`` never shows the temporary names. Paths are resolved
and must stay inside the root: a symbolic link pointing out of it is treated as absent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from neuroscribe.service.artefacts import current_umask
from neuroscribe.service.storage.base import ArtefactStore
from neuroscribe.service.storage.keys import check_key, check_prefix

__all__ = ["LocalStore"]


class LocalStore(ArtefactStore):
    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().absolute()
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    @property
    def folder(self) -> Path:
        return self.root

    def _path(self, key: str) -> Path:
        """``ROOT/KEY``, refused (``FileNotFoundError``) when a link makes it leave the root."""
        path = self.root / check_key(key)
        real_root = self.root.resolve()
        if not path.resolve().is_relative_to(real_root):
            raise FileNotFoundError(f"{key!r} leaves the store {self.url}")
        return path

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if path.is_symlink() or not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in {self.url}")
        return path.read_bytes()

    def _replace_with(self, key: str, fill) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it private; an artefact is an ordinary file
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_bytes(self, key: str, data: bytes) -> None:
        self._replace_with(key, lambda f: f.write(data))

    def put_file(self, key: str, src: Path) -> None:
        check_key(key)
        with open(src, "rb") as source:
            self._replace_with(key, lambda f: shutil.copyfileobj(source, f, 1 << 20))

    def exists(self, key: str) -> bool:
        try:
            path = self._path(key)
        except FileNotFoundError:
            return False
        return path.is_file() and not path.is_symlink()

    def delete(self, key: str) -> None:
        try:
            path = self._path(key)
        except FileNotFoundError:
            return
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        prefix = check_prefix(prefix)
        top = self.root / prefix if prefix else self.root
        if top.is_symlink() or not top.is_dir() or not top.resolve().is_relative_to(self.root.resolve()):
            return []
        out = []
        for folder, dirs, files in os.walk(top):  # links to folders are not followed
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            base = Path(folder).relative_to(self.root).as_posix()
            for name in files:
                path = Path(folder) / name
                if not name.startswith(".") and not path.is_symlink():
                    out.append(name if base == "." else f"{base}/{name}")
        return sorted(out)
