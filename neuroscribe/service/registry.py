"""The registry of job kinds: the one place that lists them.

``BUILTIN`` names the packages whose ``KIND`` (a ``service.kinds.JobKind``) is registered when the
registry is first read; ``register`` adds another (a plugin, or a test's toy kind). Everything that
depends on the kinds reads them here: the API (which jobs it accepts), the queue (each kind's
stages), the workers (``HANDLERS`` dispatches a stage to the job's kind), the CLI (each kind's
commands), ``neuroscribe report DIR`` and ``neuroscribe.run``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Annotated, Iterator, Union

from pydantic import Field, TypeAdapter

from neuroscribe.errors import InvalidInput
from neuroscribe.service.kinds import JobKind, load_object

__all__ = ["BUILTIN", "register", "unregister", "kinds", "get", "stages", "stage_names", "job_adapter", "job_union", "parse_job",
           "HANDLERS", "JobKind"]

# adding a job kind: its folder service/<kind>/ (declaring KIND) and one line here
BUILTIN = ("neuroscribe.service.experts", "neuroscribe.service.describe", "neuroscribe.service.rank")

_kinds: dict[str, JobKind] = {}
_adapter: list = [None, None]  # (the kinds it was built for, the TypeAdapter)


def _load_builtin() -> None:
    if not _kinds:
        for module in BUILTIN:
            kind = importlib.import_module(module).KIND
            _kinds.setdefault(kind.name, kind)


def register(kind: JobKind, *, replace: bool = False) -> JobKind:
    """Add ``kind``; registering a name twice is an error unless ``replace``."""
    _load_builtin()
    if kind.name in _kinds and not replace and _kinds[kind.name] is not kind:
        raise ValueError(f"job kind {kind.name!r} is already registered")
    _kinds[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _load_builtin()
    _kinds.pop(name, None)


def kinds() -> dict[str, JobKind]:
    """Every registered kind by name (built-ins first, in ``BUILTIN`` order)."""
    _load_builtin()
    return dict(_kinds)


def get(name: str) -> JobKind:
    k = kinds().get(name)
    if k is None:
        raise InvalidInput("kind", f"unknown job kind {name!r} (known: {', '.join(kinds())})")
    return k


def stages() -> dict[str, tuple[str, ...]]:
    """Each kind's stages, in order."""
    return {name: k.stages for name, k in kinds().items()}


def stage_names() -> list[str]:
    """Every stage any kind uses, sorted."""
    return sorted({s for k in kinds().values() for s in k.stages})


def job_adapter() -> TypeAdapter:
    """A ``TypeAdapter`` of the union of every registered kind's job (discriminated by ``kind``)."""
    current = tuple(kinds().values())
    if _adapter[0] != current:
        _adapter[0], _adapter[1] = current, TypeAdapter(job_union())
    return _adapter[1]


def job_union():
    """The union type itself (the API's request body)."""
    models = tuple(k.job for k in kinds().values())
    return models[0] if len(models) == 1 else Annotated[Union[models], Field(discriminator="kind")]


def parse_job(data: str | bytes | dict):
    """Validate a job of any registered kind; raises ``pydantic.ValidationError``."""
    a = job_adapter()
    return a.validate_json(data) if isinstance(data, (str, bytes)) else a.validate_python(data)


class _ByKind(Mapping):
    """stage -> handler that dispatches to the job's kind (``neuroscribe worker STAGE``'s default)."""

    def __getitem__(self, stage: str):
        if stage not in stage_names():
            raise KeyError(stage)

        def handler(ctx):
            kind = get(ctx.job.kind)
            table = load_object(kind.handlers)
            fn = table.get(stage)
            if fn is None:
                raise InvalidInput("kind", f"stage {stage!r} has no handler for {kind.name!r} jobs")
            return fn(ctx)

        handler.__name__ = f"{stage}_handler"
        return handler

    def __iter__(self) -> Iterator[str]:
        return iter(stage_names())

    def __len__(self) -> int:
        return len(stage_names())


HANDLERS = _ByKind()
