"""Server policy: what a job submitted to the service may make the workers load, run and call.

A job names models, generators, devices and URLs; on the service these are the server's choice,
not the job's. ``Settings`` lists what a job may name (README "What a job may ask for"):

``models``              subject models (``SubjectModelSpec.name``, sweep targets): packaged aliases,
                        Hugging Face ids and local folders, as shell-style patterns
                        (``EleutherAI/pythia-*``, ``/srv/models/*``); a path is normalised first,
                        and a name with a ``..`` segment, a backslash or a control character is refused
``remote_code_models``  the models (subject or generator) for which ``trust_remote_code`` may be true
``generators``          ``BACKEND:MODEL`` patterns (``llamacpp:smollm2``, ``vllm:meta-llama/*``, ``fake:*``)
``llm_endpoints``       base URLs (http/https) of OpenAI-compatible servers; ``generator.base_url`` must
                        be one of them, and ``llm_api_key`` is sent to no other URL
``devices``             what ``model.device`` may say (``auto``, ``cpu``, ``cuda:0``...)

``refusals(job, settings)`` lists every breach as a ``Refusal`` (the field's location in the job,
the rejected value, why); ``enforce`` raises the first as ``JobRefused`` (an ``InvalidInput``, so a
worker fails the job at once, never retries it). The API answers 422 with all of them; the
workers check again before a stage runs (``service.executor``) and where the generator and the
subject model are made (``service.runtime``). Pure and cheap: no file is read, nothing imported.

The embedded runs (``neuroscribe experts ...`` in one process) are the user's own machine and apply
no policy: local paths and URLs the user typed are theirs to use.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Iterator, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import GeneratorSpec, SubjectModelSpec
from neuroscribe.jobs.experts_suite import SweepTarget
from neuroscribe.settings import Settings

__all__ = ["Refusal", "JobRefused", "refusals", "enforce", "walk", "model_refusals", "generator_refusals",
           "endpoint_allowed", "normal_url", "redact_paths"]

_BAD_NAME = re.compile(r"(^|/)\.\.(/|$)|\\|[\x00-\x1f\x7f]")
_PATHLIKE = re.compile(r"^(/|\.|~)")
# an absolute (or ~) path: not inside a word, a number, a URL or a relative path
_ABS_PATH = re.compile(r"(?<![\w.:/~-])~?/[^\s'\"`,;()\[\]{}<>]*[^\s'\"`,;()\[\]{}<>.:]")


@dataclass(frozen=True)
class Refusal:
    """One thing a job may not ask for: ``loc`` (its place in the job, e.g. ``("generator", "base_url")``),
    the rejected ``value`` and ``msg``."""

    loc: tuple
    value: Any
    msg: str
    type: str = "not_allowed"

    @property
    def field(self) -> str:
        return ".".join(str(x) for x in self.loc)

    def as_error(self) -> dict:
        """As one of the API's 422 errors (``loc`` starts with ``body``)."""
        return {"loc": ["body", *self.loc], "msg": self.msg, "type": self.type, "input": _short(self.value)}


class JobRefused(InvalidInput):
    """A job asks for something this server does not allow (``refusal`` says what)."""

    def __init__(self, refusal: Refusal):
        self.refusal = refusal
        super().__init__(refusal.field, refusal.msg)


def _short(value: Any, n: int = 200) -> Any:
    if isinstance(value, str) and len(value) > n:
        return value[:n] + "..."
    return value


_TARGETS = (SubjectModelSpec, GeneratorSpec, SweepTarget)


def _may_hold(annotation: Any, seen: frozenset = frozenset()) -> bool:
    """Whether a field of this type can hold a model, a generator or a sweep target."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if issubclass(annotation, _TARGETS):
            return True
        if annotation in seen:
            return False
        return any(_may_hold(f.annotation, seen | {annotation}) for f in annotation.model_fields.values())
    return any(_may_hold(a, seen) for a in get_args(annotation))


@lru_cache(maxsize=None)
def _holds(cls: type) -> bool:
    return _may_hold(cls)


def walk(obj: Any, loc: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every pydantic model inside ``obj`` (``obj`` included) that is, or may hold, a subject model,
    a generator or a sweep target, with its location, depth first. Lists of anything else (the
    sentences, the texts) are not looked into: linear in the job's specs, not in its data."""
    if isinstance(obj, BaseModel):
        if not _holds(type(obj)):
            return
        yield loc, obj
        for name in type(obj).model_fields:
            value = getattr(obj, name)
            if isinstance(value, (BaseModel, tuple, list, dict)):
                yield from walk(value, (*loc, name))
    elif isinstance(obj, (tuple, list)):
        first = obj[0] if obj else None
        if not isinstance(first, (tuple, list, dict)) and not (isinstance(first, BaseModel) and _holds(type(first))):
            return  # plain values, or models that hold no spec (sentences, word pairs)
        for i, v in enumerate(obj):
            yield from walk(v, (*loc, i))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (BaseModel, tuple, list, dict)):
                yield from walk(v, (*loc, k))


def _normal_name(name: str) -> str:
    """A local path normalised (``~`` expanded, ``.`` segments gone); other names as given."""
    if _PATHLIKE.search(name):
        return os.path.normpath(os.path.expanduser(name))
    return name


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    name = _normal_name(name)
    return any(fnmatchcase(name, _normal_name(p)) for p in patterns)


def _shown(patterns: tuple[str, ...]) -> str:
    """The allowed entries a client may be told of: names and ids, never the workers' folders."""
    named = [p for p in patterns if not _PATHLIKE.search(p)]
    folders = len(patterns) - len(named)
    text = ", ".join(named) or "none"
    return text + (f" and {folders} local folder(s)" if folders else "")


def normal_url(url: str) -> str:
    return url.strip().rstrip("/")


def endpoint_allowed(url: str | None, settings: Settings) -> bool:
    """Whether ``url`` is one of the server's LLM endpoints (http/https only)."""
    if not url or urlsplit(url.strip()).scheme.lower() not in ("http", "https"):
        return False
    return normal_url(url) in {normal_url(e) for e in settings.llm_endpoints}


def _name_refusal(loc: tuple, name: str, allowed: tuple[str, ...], what: str, var: str) -> Refusal | None:
    if _BAD_NAME.search(name):
        return Refusal(loc, name, f"{what} {name!r} is refused: no '..' segments, backslashes or control characters")
    if not _matches(name, allowed):
        return Refusal(loc, name, f"{what} {name!r} is not allowed on this server (allowed: {_shown(allowed)}; "
                                  f"the operator sets {var})")
    return None


def model_refusals(spec: SubjectModelSpec | SweepTarget, settings: Settings, loc: tuple = ()) -> list[Refusal]:
    """What ``spec`` (a subject model or a sweep target) asks for that the server does not allow."""
    out = []
    bad = _name_refusal((*loc, "name"), spec.name, settings.models, "model", "NEUROSCRIBE_MODELS")
    if bad:
        out.append(bad)
    if isinstance(spec, SubjectModelSpec):
        if spec.trust_remote_code and not _matches(spec.name, settings.remote_code_models):
            out.append(Refusal((*loc, "trust_remote_code"), True,
                               f"trust_remote_code is not allowed for model {spec.name!r} on this server "
                               f"(the operator lists such models in NEUROSCRIBE_REMOTE_CODE_MODELS)"))
        device = spec.device.strip().lower()
        if device not in {d.strip().lower() for d in settings.devices}:
            out.append(Refusal((*loc, "device"), spec.device,
                               f"device {spec.device!r} is not offered by this service's workers (devices: "
                               f"{', '.join(settings.devices) or 'none'}; the operator sets NEUROSCRIBE_DEVICES)"))
    return out


def generator_refusals(spec: GeneratorSpec, settings: Settings, loc: tuple = ()) -> list[Refusal]:
    """What ``spec`` asks for that the server does not allow."""
    out = []
    label = f"{spec.backend}:{spec.model}"
    if _BAD_NAME.search(spec.model):
        out.append(Refusal((*loc, "model"), spec.model, f"generator model {spec.model!r} is refused: no '..' "
                                                        f"segments, backslashes or control characters"))
    elif not any(fnmatchcase(spec.backend, p.partition(":")[0]) and
                 fnmatchcase(_normal_name(spec.model), _normal_name(p.partition(":")[2] or "*"))
                 for p in settings.generators):
        out.append(Refusal((*loc, "model"), spec.model,
                           f"generator {label!r} is not allowed on this server (allowed: {_shown(settings.generators)};"
                           f" the operator sets NEUROSCRIBE_GENERATORS)"))
    if spec.trust_remote_code and not _matches(spec.model, settings.remote_code_models):
        out.append(Refusal((*loc, "trust_remote_code"), True,
                           f"trust_remote_code is not allowed for generator model {spec.model!r} on this server "
                           f"(the operator lists such models in NEUROSCRIBE_REMOTE_CODE_MODELS)"))
    if spec.base_url is not None:
        scheme = urlsplit(spec.base_url.strip()).scheme.lower()
        if scheme not in ("http", "https"):
            out.append(Refusal((*loc, "base_url"), spec.base_url,
                               f"base_url {spec.base_url!r} is refused: only http and https URLs"))
        elif not endpoint_allowed(spec.base_url, settings):
            out.append(Refusal((*loc, "base_url"), spec.base_url,
                               f"base_url {spec.base_url!r} is not an LLM endpoint of this server (the operator "
                               f"lists them in NEUROSCRIBE_LLM_ENDPOINTS; "
                               f"{len(settings.llm_endpoints)} configured)"))
    return out


def refusals(job: BaseModel, settings: Settings) -> list[Refusal]:
    """Every model, generator, device and URL of ``job`` (any kind) the server does not allow."""
    out: list[Refusal] = []
    for loc, m in walk(job):
        if isinstance(m, (SubjectModelSpec, SweepTarget)):
            out += model_refusals(m, settings, loc)
        elif isinstance(m, GeneratorSpec):
            out += generator_refusals(m, settings, loc)
    return out


def enforce(job: BaseModel, settings: Settings) -> None:
    """Raise ``JobRefused`` for the first thing ``job`` may not ask for."""
    found = refusals(job, settings)
    if found:
        raise JobRefused(found[0])


def redact_paths(text: str) -> str:
    """``text`` with every absolute path replaced by ``<path>``: what a worker reports to clients
    (``Unrecognized model in /etc`` -> ``Unrecognized model in <path>``); URLs are kept."""
    return _ABS_PATH.sub("<path>", text)
