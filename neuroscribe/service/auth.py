"""API keys, per user, and per-key rate limits.

A keys file (``NEUROSCRIBE_API_KEYS_FILE``) is JSON::

    {"keys": [
      {"user": "alice", "sha256": "<hex SHA-256 of her key>"},
      {"user": "bob",   "key": "<the key itself>", "rate": 2, "burst": 5},
      {"user": "ops",   "sha256": "...", "admin": true}
    ]}

``sha256`` (preferred: the file then holds no secret; ``neuroscribe keys hash KEY`` prints it) or
``key``; ``admin`` sees, cancels and deletes every job and handles dead letters; a user sees,
cancels and deletes only their own jobs (another user's are 404, as if they did not exist).
``rate`` / ``burst``: this key's limit (requests per second, and at once), else the server's
``NEUROSCRIBE_RATE_LIMIT`` / ``NEUROSCRIBE_RATE_BURST`` (0: unlimited). Over the limit: 429 with
``Retry-After`` (seconds). ``NEUROSCRIBE_API_KEY`` alone is one admin key (user ``admin``).

``KeyAuth`` (pure ASGI middleware) takes the key from ``Authorization: Bearer KEY`` or
``X-API-Key: KEY``, and puts the caller (a ``Principal``) in ``request.state.principal``. Without
any key configured there is no middleware and every caller may do everything (``principal()``
returns None).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import threading
import time
from typing import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from neuroscribe.errors import InvalidInput

__all__ = ["Principal", "KeyRing", "KeyAuth", "RateLimiter", "principal", "submitter", "owner_filter", "visible",
           "require_admin", "hash_key"]

_USER = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_SHA = re.compile(r"[0-9a-f]{64}")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    user: str
    admin: bool = False
    rate: float | None = None  # requests per second (None: the server's default)
    burst: int | None = None


class KeyRing:
    """Key digests -> principals. ``lookup`` compares against every digest in constant time."""

    def __init__(self, entries: list[tuple[str, Principal]]):
        self.entries = [(bytes.fromhex(d), p) for d, p in entries]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def lookup(self, token: bytes) -> Principal | None:
        digest = hashlib.sha256(token).digest()
        found = None
        for d, p in self.entries:
            if hmac.compare_digest(d, digest) and found is None:
                found = p
        return found

    @classmethod
    def build(cls, api_key: str | None = None, keys_file: Path | None = None) -> "KeyRing":
        entries = [(hash_key(api_key), Principal("admin", admin=True))] if api_key else []
        if keys_file is not None:
            entries += cls._read(Path(keys_file))
        return cls(entries)

    @staticmethod
    def _read(path: Path) -> list[tuple[str, Principal]]:
        where = f"NEUROSCRIBE_API_KEYS_FILE ({path})"
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise InvalidInput("NEUROSCRIBE_API_KEYS_FILE", f"{path}: cannot be read ({e.strerror})") from None
        except ValueError as e:
            raise InvalidInput("NEUROSCRIBE_API_KEYS_FILE", f"{path}: not JSON ({e})") from None
        items = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise InvalidInput("NEUROSCRIBE_API_KEYS_FILE", f"{where}: expected {{\"keys\": [...]}}")
        out = []
        for i, item in enumerate(items):
            field = f"keys[{i}]"
            if not isinstance(item, dict):
                raise InvalidInput(field, f"{where}: {item!r} is not an object")
            user = item.get("user")
            if not isinstance(user, str) or not _USER.fullmatch(user):
                raise InvalidInput(f"{field}.user", f"{where}: {user!r} is not a user name "
                                                    "(1-64 letters, digits, '_', '.', '@', '-')")
            digest = item.get("sha256") or (hash_key(item["key"]) if isinstance(item.get("key"), str)
                                            and item["key"] else None)
            if not isinstance(digest, str) or not _SHA.fullmatch(digest):
                raise InvalidInput(f"{field}.sha256", f"{where}: user {user!r} needs \"sha256\" (64 hex digits) "
                                                      f"or a non-empty \"key\"")
            rate, burst = item.get("rate"), item.get("burst")
            if rate is not None and (not isinstance(rate, int | float) or rate < 0):
                raise InvalidInput(f"{field}.rate", f"{where}: {rate!r} is not a number >= 0")
            if burst is not None and (not isinstance(burst, int) or burst < 1):
                raise InvalidInput(f"{field}.burst", f"{where}: {burst!r} is not an integer >= 1")
            out.append((digest, Principal(user, admin=bool(item.get("admin", False)), rate=rate, burst=burst)))
        if len({d for d, _ in out}) != len(out):
            raise InvalidInput("NEUROSCRIBE_API_KEYS_FILE", f"{where}: a key appears twice")
        return out


class RateLimiter:
    """A token bucket per user: ``rate`` requests per second, ``burst`` at once (rate 0: unlimited)."""

    def __init__(self, rate: float = 0.0, burst: int = 20, clock=time.monotonic):
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, p: Principal) -> float:
        """0 when the request may go, else the seconds until it may."""
        rate = self.rate if p.rate is None else float(p.rate)
        burst = max(1, self.burst if p.burst is None else p.burst)
        if rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(p.user, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[p.user] = (tokens - 1.0, now)
                return 0.0
            self._buckets[p.user] = (tokens, now)
            return (1.0 - tokens) / rate


def _tokens(headers) -> list[bytes]:
    given = []
    for name, value in headers:
        name = name.lower()
        if name == b"x-api-key":
            given.append(value.strip())
        elif name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                given.append(token.strip())
    return given


class KeyAuth:
    """Pure ASGI middleware: every HTTP request but ``open_paths`` needs a known key (401), within
    its rate (429 with Retry-After)."""

    def __init__(self, app, *, ring: KeyRing, limiter: RateLimiter, open_paths: frozenset[str],
                 is_open: Callable[[str], bool] | None = None):
        self.app, self.ring, self.limiter, self.open_paths = app, ring, limiter, open_paths
        self.is_open = is_open  # e.g. the web UI's static pages (they hold no data)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.open_paths or (
                self.is_open is not None and scope["method"] == "GET" and self.is_open(scope["path"])):
            return await self.app(scope, receive, send)
        who = next((p for p in (self.ring.lookup(t) for t in _tokens(scope["headers"])) if p is not None), None)
        if who is None:
            response = JSONResponse({"detail": "missing or wrong API key (Authorization: Bearer KEY or X-API-Key: KEY)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        wait = self.limiter.acquire(who)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            response = JSONResponse({"detail": f"rate limit of user {who.user!r} exceeded; retry in {retry} s"},
                                    status_code=429, headers={"Retry-After": str(retry)})
            return await response(scope, receive, send)
        scope.setdefault("state", {})["principal"] = who
        return await self.app(scope, receive, send)


# ------------------------------------------------------------------ for the routes
def principal(request: Request) -> Principal | None:
    """The caller; None when the API has no keys (everyone may do everything)."""
    return getattr(request.state, "principal", None)


def submitter(request: Request) -> str | None:
    """The owner a new job gets (None without keys)."""
    p = principal(request)
    return None if p is None else p.user


def owner_filter(request: Request) -> str | None:
    """Whose jobs the caller's job list shows: their own, or everyone's (None) for an admin."""
    p = principal(request)
    return None if p is None or p.admin else p.user


def visible(request: Request, record):
    """``record`` when the caller may see it; a 404 otherwise (as for an unknown job)."""
    p = principal(request)
    if p is not None and not p.admin and record.owner != p.user:
        raise HTTPException(404, f"no job {record.id!r}")
    return record


def require_admin(request: Request) -> None:
    p = principal(request)
    if p is not None and not p.admin:
        raise HTTPException(403, f"user {p.user!r} is not an admin (dead letters are an admin's)")
