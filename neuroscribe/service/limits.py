"""Bounds on what one request may make the service hold or do.

``BodyLimit``       pure ASGI middleware: a request whose body is over ``max_bytes`` is answered 413
                    before anything parses it -- at once from its ``Content-Length``, else (chunked
                    uploads) as soon as the bytes received pass the cap. The body is read here
                    and handed on whole, so the app never sees more than ``max_bytes``.
``limit_refusals``  per-job limits (``Settings``): concepts (``max_concepts``), sentences given or
                    generated (``max_sentences``; also the most items any list of a job holds).
``text_refusals``   every string of the job is valid Unicode text (no lone surrogates, which JSON
                    escapes allow but no file or tokenizer takes).

The default cap (8 MiB, ``NEUROSCRIBE_MAX_BODY_BYTES``) is sized from the packaged data: a describe
job of the 1,000 Amazon sentences is about 70 KB and one of the MEN word pairs (3,000) about 200 KB,
so 8 MiB is 100x the largest with room for a 50,000-sentence experts job (``max_sentences``) of
long sentences (measured in ``tests/integration/test_limits.py``).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from neuroscribe.service.policy import Refusal
from neuroscribe.settings import Settings

__all__ = ["BodyLimit", "limit_refusals", "text_refusals", "too_large"]


def too_large(size: int | None, max_bytes: int, setting: str = "NEUROSCRIBE_MAX_BODY_BYTES") -> dict:
    got = f"{size} bytes" if size is not None else f"more than {max_bytes} bytes"
    return {"detail": f"request body too large: {got}; this server accepts at most {max_bytes} bytes "
                      f"({setting})"}


class BodyLimit:
    """Answer 413 to any HTTP request whose body is over ``max_bytes`` (see the module docstring);
    ``paths``: another cap for a path, ``{path: (max_bytes, setting)}`` (dataset uploads)."""

    def __init__(self, app, *, max_bytes: int, paths: dict[str, tuple[int, str]] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.paths = dict(paths or {})

    async def _refuse(self, send, size: int | None, cap: tuple[int, str]) -> None:
        body = json.dumps(too_large(size, *cap)).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        cap = self.paths.get(scope["path"].rstrip("/"), (self.max_bytes, "NEUROSCRIBE_MAX_BODY_BYTES"))
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = None
                if size is None or size < 0 or size > cap[0]:
                    return await self._refuse(send, size, cap)
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > cap[0]:
                return await self._refuse(send, None, cap)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = [False]

        async def replay():
            if not replayed[0]:
                replayed[0] = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)


def limit_refusals(job: BaseModel, settings: Settings) -> list[Refusal]:
    """The job's size against the server's per-job limits."""
    out: list[Refusal] = []
    concepts = getattr(job, "concepts", None)
    if isinstance(concepts, tuple) and len(concepts) > settings.max_concepts:
        out.append(Refusal(("concepts",), len(concepts), f"{len(concepts)} concepts; this server takes at most "
                                                         f"{settings.max_concepts} per job (NEUROSCRIBE_MAX_CONCEPTS)",
                           "too_long"))
    for loc, value in _lists(job):
        if len(value) > settings.max_sentences and loc != ("concepts",):
            out.append(Refusal(loc, len(value), f"{len(value)} items; this server takes at most "
                                                f"{settings.max_sentences} per list (NEUROSCRIBE_MAX_SENTENCES)",
                               "too_long"))
    n_pos, n_neg = getattr(job, "n_pos", None), getattr(job, "n_neg", None)
    if isinstance(concepts, tuple) and getattr(job, "sentences", 0) is None and isinstance(n_pos, int) \
            and isinstance(n_neg, int):
        planned = len(concepts) * (n_pos + n_neg)
        if planned > settings.max_sentences:
            out.append(Refusal(("n_pos",), n_pos, f"{len(concepts)} concepts x ({n_pos} + {n_neg}) sentences = "
                                                  f"{planned} to generate; this server takes at most "
                                                  f"{settings.max_sentences} per job (NEUROSCRIBE_MAX_SENTENCES)",
                               "too_long"))
    return out


def _lists(obj: Any, loc: tuple = ()):
    """Every list (tuple) of the job with its location; lists of plain values are not looked into."""
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from _lists(getattr(obj, name), (*loc, name))
    elif isinstance(obj, (tuple, list)):
        yield loc, obj
        if obj and isinstance(obj[0], (BaseModel, tuple, list, dict)) and not isinstance(obj[0], BaseModel):
            for i, v in enumerate(obj):
                yield from _lists(v, (*loc, i))
    elif isinstance(obj, dict):
        if len(obj) > 0:
            yield loc, tuple(obj)


def text_refusals(data: Any) -> list[Refusal]:
    """Strings of the parsed JSON ``data`` that are not valid Unicode text (lone surrogates), by location.
    Linear: one C-speed encode of the whole; the walk only when that fails."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
        return []
    except UnicodeEncodeError:
        pass
    out: list[Refusal] = []

    def bad(s: str) -> bool:
        try:
            s.encode("utf-8")
            return False
        except UnicodeEncodeError:
            return True

    stack: list[tuple[tuple, Any]] = [((), data)]
    while stack and len(out) < 20:
        loc, v = stack.pop()
        if isinstance(v, str) and bad(v):
            out.append(Refusal(loc, v.encode("utf-8", "backslashreplace").decode("ascii", "replace"),
                               "not valid Unicode text (a lone surrogate, e.g. \\ud800, is not a character)",
                               "string_unicode"))
        elif isinstance(v, dict):
            for k, x in v.items():
                if isinstance(k, str) and bad(k):
                    out.append(Refusal(loc, k.encode("utf-8", "backslashreplace").decode("ascii", "replace"),
                                       "a key that is not valid Unicode text", "string_unicode"))
                stack.append(((*loc, k), x))
        elif isinstance(v, list):
            stack.extend(((*loc, i), x) for i, x in enumerate(v))
    return sorted(out, key=lambda r: [str(x) for x in r.loc])
