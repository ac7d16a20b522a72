"""Structured logs of the API and the workers: one JSON object per line on stderr (stdlib logging
with ``python-json-logger``), with ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``,
``message`` and, when known, ``request_id``, ``job_id``, ``stage`` and ``attempt``.

``bind(job_id=..., stage=...)`` adds fields to every record logged in the current context (a
``contextvars`` variable: per request in the API, per job in a worker) until ``unbind(token)``.
``RequestLog`` is the API's ASGI middleware: a request id per request (the client's
``X-Request-ID`` when it is a short token, else a new one; echoed in the response), the job id of
``/v1/jobs/{id}/...`` routes, and one ``request`` line per request (method, path, status, ms).
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid

__all__ = ["configure", "bind", "unbind", "RequestLog", "CONTEXT_FIELDS"]

CONTEXT_FIELDS = ("request_id", "job_id", "stage", "attempt")
_context: contextvars.ContextVar[dict] = contextvars.ContextVar("neuroscribe_log_context", default={})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_JOB_PATH = re.compile(r"^/v1/jobs/([0-9a-f]{32})(?:/|$)")

log = logging.getLogger("neuroscribe.http")


def bind(**fields) -> contextvars.Token:
    """Add ``fields`` to the log records of this context; returns the token for ``unbind``."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def unbind(token: contextvars.Token) -> None:
    _context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "text":
        return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("%(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level", "name": "logger"},
                         timestamp=True)


def configure(fmt: str = "json", level: str = "INFO", stream=None) -> logging.Handler:
    """Send neuroscribe's (and uvicorn's) logs to ``stream`` (stderr) as JSON lines (``fmt``
    "json") or plain text ("text"); replaces a handler an earlier call installed."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_formatter(fmt))
    handler.addFilter(_ContextFilter())
    handler.set_name("neuroscribe")
    for name in ("neuroscribe", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "neuroscribe"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # RequestLog writes one line per request instead
    return handler


class RequestLog:
    """Pure ASGI middleware: see the module docstring."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        m = _JOB_PATH.match(scope["path"])
        token = bind(request_id=request_id, job_id=m.group(1) if m else None)
        status = [500]
        t0 = time.perf_counter()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info("request", extra={"method": scope["method"], "path": scope["path"], "status": status[0],
                                       "duration_ms": round(1000 * (time.perf_counter() - t0), 2)})
            unbind(token)
