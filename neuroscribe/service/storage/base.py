"""The interface every artefact store implements (``local.LocalStore``, ``objectstore.ObjectStore``).

Keys are '/'-separated relative names (``keys.check_key``: a bad one is ``InvalidInput`` naming it,
before any I/O). ``write_bytes`` is atomic: a reader sees the old object, or none, or all of the new
one, never part of it. ``list(prefix)`` returns the sorted keys under the folder-like ``prefix``
('' for all; ``"jobs/a"`` lists ``"jobs/a/x"`` but not ``"jobs/ab"``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from neuroscribe.service.artefacts import write_bytes_atomic
from neuroscribe.service.storage.keys import check_key

__all__ = ["ArtefactStore"]


class ArtefactStore(ABC):
    url: str  # where it is, for messages and logs (never holds a secret)

    @property
    def folder(self) -> Path | None:
        """The local folder that *is* the store (``LocalStore``); None for a remote store."""
        return None

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; ``FileNotFoundError`` when there is none."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace the object, atomically."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object has this key (a folder-like prefix is not an object)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; nothing happens when there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """The sorted keys under ``prefix``."""

    def put_file(self, key: str, src: Path) -> None:
        """Upload the local file ``src`` as ``key`` (atomically, as ``write_bytes``)."""
        self.write_bytes(check_key(key), Path(src).read_bytes())

    def get_file(self, key: str, dest: Path) -> None:
        """Download ``key`` into the local file ``dest`` (created or replaced); ``FileNotFoundError``
        when there is no such object."""
        write_bytes_atomic(Path(dest), self.read_bytes(key))

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` (a key: never the whole store); how many there were."""
        keys = self.list(check_key(prefix, field="prefix"))
        for key in keys:
            self.delete(key)
        return len(keys)
