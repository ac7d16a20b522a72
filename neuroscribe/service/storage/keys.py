"""Keys of the artefact store: '/'-separated relative names, checked before any store touches them.

A key is refused (``InvalidInput`` naming the field and the key) when it is empty, starts with
'/', holds a backslash, a NUL or another control character, has an empty segment ('a//b', a
trailing '/') or a segment starting with '.' ('.', '..', and hidden names, which the stores keep
for their temporary files), or is longer than 1,024 characters (S3's limit).
"""

from __future__ import annotations

from neuroscribe.errors import InvalidInput

__all__ = ["check_key", "check_prefix", "MAX_KEY"]

MAX_KEY = 1024


def check_key(key, *, field: str = "key") -> str:
    """``key`` itself when it is a valid key; ``InvalidInput(field, ...)`` naming it otherwise."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(field, f"{key!r} is not a key (a non-empty '/'-separated relative name)")
    if len(key) > MAX_KEY:
        raise InvalidInput(field, f"{key[:60]!r}... is longer than {MAX_KEY} characters")
    if key.startswith("/"):
        raise InvalidInput(field, f"{key!r} starts with '/': keys are relative")
    if "\\" in key:
        raise InvalidInput(field, f"{key!r} holds a backslash: keys are '/'-separated")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidInput(field, f"{key!r} holds a control character")
    for seg in key.split("/"):
        if not seg:
            raise InvalidInput(field, f"{key!r} has an empty segment")
        if seg.startswith("."):
            raise InvalidInput(field, f"{key!r} has the segment {seg!r}: no '.', '..' or hidden names")
    return key


def check_prefix(prefix, *, field: str = "prefix") -> str:
    """A ``list`` prefix: '' (everything) or a key (a trailing '/' is dropped)."""
    if prefix == "":
        return ""
    if isinstance(prefix, str) and prefix.endswith("/") and len(prefix) > 1:
        prefix = prefix[:-1]
    return check_key(prefix, field=field)
