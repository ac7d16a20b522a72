"""Artefacts behind one interface: a folder of this machine or an S3-compatible object store.

``open_store(settings)`` picks the store from ``Settings.artefacts_url``:

    unset              the artefacts folder itself (``LocalStore(settings.artefacts)``): the API and
                       every worker share it, as before; ``sync.pull``/``push`` do nothing
    file:///PATH       a folder used as a store (e.g. a network mount), each machine working in a
                       local copy under ``settings.artefacts``
    s3://BUCKET[/PFX]  an S3-compatible object store (``ObjectStore``, fsspec + s3fs), at
                       ``settings.s3_endpoint_url`` when set (else AWS); botocore reads the credentials

Any other URL is ``InvalidInput("artefacts_url", ...)`` (``Settings`` already refuses it at startup).
How stages publish their files through a store and read the earlier stages': ``sync``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from neuroscribe.errors import InvalidInput
from neuroscribe.service.storage.base import ArtefactStore
from neuroscribe.service.storage.keys import check_key
from neuroscribe.service.storage.local import LocalStore
from neuroscribe.service.storage.objectstore import ObjectStore

__all__ = ["ArtefactStore", "LocalStore", "ObjectStore", "open_store", "check_key"]


def open_store(settings) -> ArtefactStore:
    """The artefact store ``settings`` name (one instance per URL and endpoint in a process)."""
    return _open(settings.artefacts_url or None, settings.s3_endpoint_url or None, Path(settings.artefacts))


@lru_cache(maxsize=16)
def _open(url: str | None, endpoint: str | None, artefacts: Path) -> ArtefactStore:
    if url is None:
        return LocalStore(artefacts)
    scheme, sep, rest = url.partition("://")
    if sep and scheme == "file" and rest.startswith("/") and rest.strip("/"):
        return LocalStore(Path(rest))
    if sep and scheme == "s3":
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise InvalidInput("s3_endpoint_url", f"{endpoint!r} is not an http:// or https:// URL")
        return ObjectStore(url, endpoint_url=endpoint)
    raise InvalidInput("artefacts_url", f"{url!r} is not s3://BUCKET[/PREFIX] or file:///PATH")
