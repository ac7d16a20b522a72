"""The door of ``POST /v1/jobs``: the body becomes a job, or a 4xx that names the field.

``submitted_job`` is the submit route's dependency. It reads the body (already capped by
``limits.BodyLimit``) on the event loop, then does everything else in a worker thread, so no job,
however large, holds up other requests (``/healthz`` included):

1. parse the JSON (400 when the bytes are not UTF-8 text, 422 ``json_invalid`` when not JSON);
2. text: every string valid Unicode (422 ``string_unicode``: lone surrogates);
3. the job's schema (422, pydantic's errors; linear validators);
4. per-job limits (``limits.limit_refusals``), the server's policy (``policy.refusals``: models,
   generators, remote code, endpoints, devices) and what the subject's config says
   (``subject_check``: missing local path, layers, units) -- 422 with every refusal, each
   ``{"loc": ["body", FIELD...], "msg": "... the rejected value ...", "type": ...}``.

``install(app)`` fixes the kinds the app accepts (those registered when it is made) and writes the
request body into the OpenAPI schema (the route takes no typed body, so that FastAPI does not
validate it on the event loop): the union of those kinds, ``kind`` required.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from neuroscribe.service import registry
from neuroscribe.service.limits import limit_refusals, text_refusals
from neuroscribe.service.auth import principal
from neuroscribe.service.policy import JobRefused, refusals
from neuroscribe.service.subject_check import subject_refusals
from neuroscribe.settings import Settings

__all__ = ["submitted_job", "admit", "json_body", "install", "SUBMIT_RESPONSES"]

SUBMIT_RESPONSES: dict = {
    400: {"description": "The body cannot be read (not UTF-8 text)."},
    409: {"description": "The Idempotency-Key was used before for another body."},
    413: {"description": "The body is larger than the server accepts (NEUROSCRIBE_MAX_BODY_BYTES)."},
}


def _invalid(errors: list[dict]) -> RequestValidationError:
    return RequestValidationError(errors)


def json_body(raw: bytes, missing: str):
    """A request body's JSON, every string valid Unicode: 400 when the bytes are not UTF-8 text, 422
    (``missing``, ``json_invalid``, ``string_unicode``) otherwise, each naming where."""
    if not raw.strip():
        raise _invalid([{"loc": ("body",), "msg": missing, "type": "missing"}])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HTTPException(400, f"the body cannot be read: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise _invalid([{"loc": ("body", getattr(e, "pos", 0)), "msg": f"JSON decode error: {e}",
                         "type": "json_invalid"}]) from None
    bad_text = text_refusals(data)
    if bad_text:
        raise _invalid([r.as_error() for r in bad_text])
    return data


def admit(raw: bytes, settings: Settings, adapter: TypeAdapter | None = None, *, datasets=None, caller=None):
    """The job ``raw`` holds, validated against the schema (``adapter``: of the kinds the app accepts;
    default: those registered now), the limits and the policy; raises
    ``HTTPException(400)`` or ``RequestValidationError`` (422). Linear in the body's size.
    A dataset named by hash must be one ``caller`` (an ``auth.Principal``, None without keys) may use
    in ``datasets`` (``dataset_store.DatasetStore``); the checks run on the job with it inline, and
    the job returned (the one queued) keeps the reference."""
    data = json_body(raw, "a job (JSON) is required")
    try:
        job = (adapter or registry.job_adapter()).validate_python(data)
    except ValidationError as e:
        raise _invalid([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from None
    checked = job
    if datasets is not None:
        try:
            checked = datasets.resolve_for(job, getattr(caller, "user", None), admin=getattr(caller, "admin", False))
        except JobRefused as e:
            raise _invalid([e.refusal.as_error()]) from None
        except ValidationError as e:  # the job and the stored dataset do not go together
            raise _invalid([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from None
    found = limit_refusals(checked, settings)
    if not found:
        refused = refusals(checked, settings)
        skip = {r.loc[:-1] for r in refused}
        found = refused + subject_refusals(checked, settings, skip=skip)
    if found:
        raise _invalid([r.as_error() for r in found])
    return job


async def submitted_job(request: Request):
    """The submit route's job: the body read here, checked off the event loop (``admit``)."""
    raw = await request.body()
    state = request.app.state
    return await run_in_threadpool(admit, raw, state.settings, getattr(state, "job_adapter", None),
                                   datasets=getattr(state, "datasets", None), caller=principal(request))


# --------------------------------------------------------------------------- OpenAPI


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite_refs(v, renames) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            out["$ref"] = f"#/components/schemas/{renames.get(name, name)}"
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def _job_schema(adapter: TypeAdapter, components: dict) -> dict:
    """The request body's schema; its definitions merged into ``components`` (renamed ``NAME-Job``
    where a response model of the same name has another schema)."""
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    renames = {n: f"{n}-Job" for n, d in defs.items() if n in components and components[n] != d}
    for name, d in defs.items():
        components[renames.get(name, name)] = _rewrite_refs(d, renames)
    return _rewrite_refs(schema, renames)


def install(app: FastAPI, path: str = "/v1/jobs") -> None:
    """Accept the kinds registered now; declare the submit route's body in ``app``'s OpenAPI schema
    (wraps ``app.openapi``)."""
    adapter = app.state.job_adapter = TypeAdapter(registry.job_union())
    base = app.openapi
    done: list[bool] = [False]

    def openapi() -> dict:
        schema = base()
        if not done[0]:
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            post = schema.get("paths", {}).get(path, {}).get("post")
            if post is not None:
                post["requestBody"] = {"required": True, "description": "The job: one of the registered kinds "
                                                                        "(`neuroscribe.jobs`).",
                                       "content": {"application/json": {"schema": _job_schema(adapter, components)}}}
            done[0] = True
        return schema

    app.openapi = openapi
