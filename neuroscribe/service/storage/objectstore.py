"""``ObjectStore``: the artefact store in an S3-compatible object store, through ``fsspec`` and
``s3fs`` (the ``objectstore`` extra).

``s3://BUCKET[/PREFIX]``: key K is the object ``PREFIX/K`` of ``BUCKET``. ``endpoint_url`` names an
S3-compatible server (MinIO, Ceph, moto, ...); None is AWS. Credentials and the region are
botocore's own (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance
role, ...): neuroscribe never reads or logs them. An object appears whole or not at all (a PUT, or a
multipart upload, is only visible once complete), so ``write_bytes`` needs no temporary name.
Listings are never cached: ``list`` and ``exists`` ask the server every time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from neuroscribe.errors import InvalidInput
from neuroscribe.service.storage.base import ArtefactStore
from neuroscribe.service.storage.keys import check_key, check_prefix

__all__ = ["ObjectStore", "parse_s3_url"]


def parse_s3_url(url: str, *, field: str = "artefacts_url") -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://BUCKET[/PREFIX]``; ``InvalidInput(field)`` otherwise."""
    scheme, sep, rest = str(url).partition("://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if scheme != "s3" or not sep or not bucket or "?" in rest or "#" in rest:
        raise InvalidInput(field, f"{url!r} is not s3://BUCKET[/PREFIX]")
    if prefix:
        check_key(prefix, field=field)
    return bucket, prefix


class ObjectStore(ArtefactStore):
    def __init__(self, url: str, *, endpoint_url: str | None = None, fs=None):
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url
        if fs is None:
            try:
                import fsspec
                import s3fs  # noqa: F401 - fsspec's "s3" protocol
            except ImportError:
                raise InvalidInput("artefacts_url", f"{url!r} needs s3fs: pip install 'neuroscribe[objectstore]'") from None
            fs = fsspec.filesystem("s3", endpoint_url=endpoint_url, skip_instance_cache=True,
                                   use_listings_cache=False)
        self.fs = fs
        self._base = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r}, endpoint_url={self.endpoint_url!r})"

    def _path(self, key: str) -> str:
        return f"{self._base}/{check_key(key)}"

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._path(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), bytes(data))

    def put_file(self, key: str, src: Path) -> None:
        self.fs.put_file(str(src), self._path(key))

    def get_file(self, key: str, dest: Path) -> None:
        path = self._path(key)  # a missing object: s3fs raises FileNotFoundError
        dest = Path(dest)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
        os.close(fd)
        try:
            self.fs.get_file(path, tmp)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return bool(self.fs.isfile(self._path(key)))

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    def list(self, prefix: str = "") -> list[str]:
        prefix = check_prefix(prefix)
        top = f"{self._base}/{prefix}" if prefix else self._base
        try:
            found = self.fs.find(top)
        except FileNotFoundError:
            return []
        cut = len(self._base) + 1
        keys = (p[cut:] for p in found if p.startswith(self._base + "/"))
        return sorted(k for k in keys if not prefix or k.startswith(prefix + "/"))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(check_key(prefix, field="prefix"))
        if keys:
            self.fs.rm([self._path(k) for k in keys])  # batched: up to 1,000 keys a request
        return len(keys)
