"""Python client of the HTTP API (``service.api``), synchronous, on httpx.

    from neuroscribe.service.client import Client
    from neuroscribe.jobs import ExpertsJob

    with Client("http://127.0.0.1:8000", api_key="...") as c:
        rec = c.submit(ExpertsJob(concepts=[{"name": "cat"}]), idempotency_key="run-1")
        c.wait(rec.id)                      # per-stage progress bars; raises JobFailed / JobTimeout
        result = c.result(rec.id)           # an ExpertsResult
        for path in c.artefacts(rec.id):
            c.download(rec.id, path, "out/")
        sha = c.upload_dataset(DatasetSpec(...))  # once; jobs then say dataset={"sha256": sha}

Connection: by default the client opens its own ``httpx.Client`` (``timeout`` seconds per
request), over ``transport`` when given (any ``httpx.BaseTransport``, e.g. ``httpx.MockTransport``).
Or pass ``http``, a ready sync client with httpx's interface, used as is (its own timeout) and not
closed by ``close()``. Tests run the real app in-process that way:
``Client("http://testserver", http=fastapi.testclient.TestClient(app))`` -- ``httpx.ASGITransport``
serves only async clients, and Starlette's ``TestClient`` is an ``httpx2.Client`` where httpx2 is
installed (its transport errors are mapped too). Requests go to absolute URLs under ``base_url``,
with the API key as ``Authorization: Bearer KEY``.

Exceptions (every one a ``neuroscribe.errors.NeuroscribeError``)::

    ClientError                 any error answer; .status_code (None without one), .detail
        AuthError               401: missing or wrong API key
        NotFound                404: unknown job or artefact
        InvalidJob              422: the job does not validate; .errors (pydantic's, loc without
                                "body"), .field (the first field, e.g. "tau"); also an
                                ``InvalidInput`` (a ValueError), like the CLI's own checks
        NotReady                409: result() of a job that has not succeeded yet; .record
        Conflict                409: an Idempotency-Key used for another job, or delete() of a
                                running job
        RateLimited             429: over the key's rate; .retry_after (seconds)
        QuotaExceeded           upload_dataset(): 403 over the key's dataset quota, 413 too large
        ServiceUnavailable      503, or the server cannot be reached / does not answer in time
        JobFailed               the job ended failed or cancelled (wait(), result()); .record
        JobTimeout              wait() ran past its timeout; .record (the last one seen)
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from neuroscribe.errors import InvalidInput, NeuroscribeError
from neuroscribe.jobs import DescribeResult, ExpertsResult, JobStatus, RankResult, parse_result
from neuroscribe.service.queue.base import JobRecord

try:  # Starlette's TestClient (and other callers) may hand us an httpx2 client
    import httpx2 as _httpx2

    _TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, _httpx2.TransportError)
except ImportError:  # pragma: no cover - depends on the environment
    _TRANSPORT_ERRORS = (httpx.TransportError,)

__all__ = ["Client", "ClientError", "AuthError", "NotFound", "InvalidJob", "NotReady", "ServiceUnavailable",
           "JobFailed", "JobTimeout", "Conflict", "RateLimited", "QuotaExceeded"]


class ClientError(NeuroscribeError):
    """The API answered with an error (``status_code``), or could not be reached (``None``)."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.detail = detail


class AuthError(ClientError):
    """401: the API key is missing or wrong."""


class NotFound(ClientError):
    """404: no such job, or no such artefact."""


class InvalidJob(ClientError, InvalidInput):
    """422: the job does not validate. ``errors``: pydantic's errors (``loc`` without "body");
    ``field``: the first one's dotted location (e.g. ``"tau"``, ``"concepts.0.name"``)."""

    def __init__(self, message: str, *, status_code: int | None = 422, detail: Any = None):
        raw = detail if isinstance(detail, list) else [{"loc": [], "msg": str(detail or message)}]
        self.errors = [dict(e, loc=_field_loc(e.get("loc") or [])) for e in raw if isinstance(e, dict)]
        self.fields = [".".join(str(p) for p in e["loc"]) or "job" for e in self.errors]
        summary = "; ".join(f"{f}: {e.get('msg', '')}" for f, e in zip(self.fields, self.errors)) or message
        InvalidInput.__init__(self, self.fields[0] if self.fields else "job", summary)
        self.args = (summary,)  # "tau: Input should be ...", not the field twice
        self.status_code, self.detail = status_code, detail


def _field_loc(loc: list) -> list:
    return list(loc[1:]) if loc[:1] == ["body"] else list(loc)


class NotReady(ClientError):
    """409: the job has no result yet. ``record``: its status at the time."""

    def __init__(self, message: str, *, record: JobRecord | None = None, **kw: Any):
        super().__init__(message, status_code=409, **kw)
        self.record = record


class Conflict(ClientError):
    """409 on submit (the Idempotency-Key was used for another job) or delete (the job runs)."""


class RateLimited(ClientError):
    """429: over the key's rate limit; ``retry_after``: seconds to wait (from ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class QuotaExceeded(ClientError):
    """An upload refused for its size: 403 over the key's dataset quota, 413 over one dataset's limit."""


class ServiceUnavailable(ClientError):
    """503 (the queue is down), or the server cannot be reached or does not answer in time."""


class JobFailed(ClientError):
    """The job ended ``failed`` or ``cancelled``; ``record`` holds its status and error."""

    def __init__(self, record: JobRecord):
        why = f": {record.error}" if record.error else ""
        super().__init__(f"job {record.id} {record.status.value}{why}")
        self.record = record


class JobTimeout(ClientError):
    """``wait()`` gave up before the job ended; ``record``: the last status seen (or None)."""

    def __init__(self, message: str, *, record: JobRecord | None = None):
        super().__init__(message)
        self.record = record


_BY_STATUS: dict[int, type[ClientError]] = {401: AuthError, 403: AuthError, 404: NotFound, 422: InvalidJob,
                                            502: ServiceUnavailable, 503: ServiceUnavailable,
                                            504: ServiceUnavailable}


def _error(response: httpx.Response) -> ClientError:
    """The exception for an error answer (``{"detail": ...}`` from the API, or anything else)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text[:500] or None
    code = response.status_code
    message = detail if isinstance(detail, str) else f"HTTP {code} from {response.request.url}"
    if code == 409:
        return NotReady(message, detail=detail)
    if code == 429:
        try:
            retry = float(response.headers.get("Retry-After", ""))
        except ValueError:
            retry = None
        return RateLimited(message, status_code=code, detail=detail, retry_after=retry)
    return _BY_STATUS.get(code, ClientError)(message, status_code=code, detail=detail)


class Client:
    """See the module docstring. ``timeout``: seconds per HTTP request of the client's own
    ``httpx.Client`` (not the length of ``wait``, which has its own)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None,
                 http: httpx.Client | None = None):
        if http is not None and transport is not None:
            raise ValueError("give either transport or http, not both")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own = http is None
        self._http = http if http is not None else httpx.Client(transport=transport, timeout=timeout)

    # ---------------------------------------------------------------- plumbing
    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def _request(self, method: str, path: str, *, headers: dict | None = None, **kw: Any) -> httpx.Response:
        try:
            r = self._http.request(method, self.base_url + path, headers={**self._headers, **(headers or {})}, **kw)
        except _TRANSPORT_ERRORS as e:  # refused, reset, DNS, timed out...
            raise ServiceUnavailable(f"cannot reach {self.base_url}: {type(e).__name__}: {e}") from e
        if r.status_code >= 400:
            raise _error(r)
        return r

    @staticmethod
    def _job_path(job_id: str) -> str:
        return "/v1/jobs/" + quote(str(job_id), safe="")

    # ---------------------------------------------------------------- jobs
    def submit(self, job: BaseModel | dict, *, idempotency_key: str | None = None) -> JobRecord:
        """Queue ``job`` (a ``jobs.py`` model or its JSON dict); with an ``idempotency_key`` used
        before, the earlier job is returned and nothing new is queued."""
        body = job.model_dump(mode="json") if isinstance(job, BaseModel) else job
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        try:
            r = self._request("POST", "/v1/jobs", json=body, headers=headers)
        except NotReady as e:  # 409 here: the key belongs to another job
            raise Conflict(e.message, status_code=409, detail=e.detail) from None
        return JobRecord.model_validate(r.json())

    def delete(self, job_id: str) -> None:
        """Forget a finished job (records, result, files); ``Conflict`` while it runs."""
        try:
            self._request("DELETE", self._job_path(job_id))
        except NotReady as e:
            raise Conflict(e.message, status_code=409, detail=e.detail) from None

    def dead_letters(self, stage: str | None = None) -> list[dict]:
        """Dead letters (id, stage, job_id, reason, at), oldest first; an admin's key."""
        params = {"stage": stage} if stage is not None else None
        return list(self._request("GET", "/v1/dead-letters", params=params).json())

    def requeue(self, stage: str, entry_id: str) -> JobRecord:
        """Put a dead letter back into its stage; returns its job's record."""
        path = f"/v1/dead-letters/{quote(stage, safe='')}/{quote(entry_id, safe='')}/requeue"
        return JobRecord.model_validate(self._request("POST", path).json())

    def status(self, job_id: str) -> JobRecord:
        """The job's record: status, stage, progress per stage, error."""
        return JobRecord.model_validate(self._request("GET", self._job_path(job_id)).json())

    def list(self, limit: int = 100) -> list[JobRecord]:
        """The most recent jobs first."""
        return [JobRecord.model_validate(d) for d in self._request("GET", "/v1/jobs", params={"limit": limit}).json()]

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel the job; returns its record (a running job is ``cancel_requested`` until it stops)."""
        return JobRecord.model_validate(self._request("POST", self._job_path(job_id) + "/cancel").json())

    def wait(self, job_id: str, *, timeout: float | None = None, poll_s: float = 1.0,
             progress: bool = True) -> JobRecord:
        """Poll until the job is final and return its record when it succeeded. Raises
        ``JobFailed`` (failed / cancelled) or ``JobTimeout`` (after ``timeout`` s; None: no limit).
        A 503 or an unreachable server while waiting is retried at the next poll, not raised.
        ``progress``: a tqdm bar per stage on stderr."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bars = _StageBars(job_id) if progress else None
        rec: JobRecord | None = None
        try:
            while True:
                try:
                    rec = self.status(job_id)
                except ServiceUnavailable as e:
                    if bars is not None:
                        bars.note(f"service unavailable, retrying: {e.message}")
                else:
                    if bars is not None:
                        bars.update(rec)
                    if rec.status.is_final:
                        break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    state = f"{rec.status.value}, stage {rec.stage}" if rec is not None else "status unknown"
                    raise JobTimeout(f"job {job_id} not finished after {timeout:g} s ({state})", record=rec)
                time.sleep(poll_s if left is None else max(0.0, min(poll_s, left)))
        finally:
            if bars is not None:
                bars.close()
        if rec.status != JobStatus.succeeded:
            raise JobFailed(rec)
        return rec

    def result(self, job_id: str) -> ExpertsResult | DescribeResult | RankResult:
        """The typed result (``jobs.parse_result``). ``NotReady`` while the job is queued or
        running; ``JobFailed`` when it ended without one."""
        try:
            r = self._request("GET", self._job_path(job_id) + "/result")
        except NotReady as e:
            rec = self.status(job_id)
            if rec.status.is_final and rec.status != JobStatus.succeeded:
                raise JobFailed(rec) from None
            e.record = rec
            raise
        return parse_result(r.content)

    def upload_dataset(self, dataset: BaseModel | dict, *, kind: str | None = None) -> str:
        """Store ``dataset`` (a describe ``DatasetSpec``, a rank ``AttributeDataSpec``, or its JSON with
        ``kind``) once; returns the sha256 a job then names: ``"dataset": {"sha256": sha}``."""
        if isinstance(dataset, BaseModel):
            kind = kind or {"DatasetSpec": "describe", "AttributeDataSpec": "rank"}.get(type(dataset).__name__)
            dataset = dataset.model_dump(mode="json")
        if kind not in ("describe", "rank"):
            raise InvalidInput("kind", f"{kind!r} is not a dataset kind (describe, rank)")
        body = json.dumps({"kind": kind, "dataset": dataset}, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            r = self._request("POST", "/v1/datasets", content=body, headers={"Content-Type": "application/json"})
        except ClientError as e:
            if e.status_code in (403, 413):
                raise QuotaExceeded(e.message, status_code=e.status_code, detail=e.detail) from None
            raise
        return r.json()["sha256"]

    def dataset_usage(self) -> dict:
        """This key's datasets (sha256, kind, rows, bytes, name), the bytes in use and the quota."""
        return self._request("GET", "/v1/datasets/usage").json()

    def delete_dataset(self, sha256: str) -> None:
        """Forget a dataset this key uploaded; ``NotFound`` when it holds none by that hash."""
        self._request("DELETE", "/v1/datasets/sha256:" + quote(sha256.removeprefix("sha256:"), safe=""))

    # ---------------------------------------------------------------- artefacts
    def artefacts(self, job_id: str) -> list[str]:
        """Relative paths of the job's files."""
        return list(self._request("GET", self._job_path(job_id) + "/artefacts").json())

    def download(self, job_id: str, path: str, dest: str | os.PathLike) -> Path:
        """Save artefact ``path`` to ``dest`` (a file, or an existing folder: ``dest/<name>``);
        written under a temporary name and renamed. Returns the file written."""
        rel = PurePosixPath(path)
        if not path or rel.is_absolute() or any(p in ("..", ".") for p in path.split("/")):
            raise InvalidInput("path", f"{path!r} is not a relative path inside the job's folder")
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / rel.name
        url = self._job_path(job_id) + "/artefacts/" + quote(path, safe="/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                try:
                    with self._http.stream("GET", self.base_url + url, headers=self._headers) as r:
                        if r.status_code >= 400:
                            r.read()
                            raise _error(r)
                        for chunk in r.iter_bytes():
                            f.write(chunk)
                except _TRANSPORT_ERRORS as e:
                    raise ServiceUnavailable(f"cannot reach {self.base_url}: {type(e).__name__}: {e}") from e
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest


class _StageBars:
    """One tqdm bar per stage, opened when the job enters it."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.bars: dict[str, Any] = {}
        self.current: str | None = None

    def _bar(self, stage: str):
        from tqdm.auto import tqdm

        if stage not in self.bars:
            if self.current in self.bars:
                self.bars[self.current].refresh()
            self.bars[stage] = tqdm(desc=f"{self.job_id[:8]} {stage}", total=None, unit="step", leave=True)
        self.current = stage
        return self.bars[stage]

    def update(self, rec: JobRecord) -> None:
        for stage, p in rec.progress.items():
            bar = self._bar(stage)
            if p.total is not None and bar.total != p.total:
                bar.total = p.total
            bar.n = p.done
            if p.message:
                bar.set_postfix_str(p.message, refresh=False)
            bar.refresh()
        if rec.stage is not None:
            bar = self._bar(rec.stage)
            bar.set_description_str(f"{self.job_id[:8]} {rec.stage} ({rec.status.value})", refresh=True)

    def note(self, message: str) -> None:
        if self.current in self.bars:
            self.bars[self.current].set_postfix_str(message)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
