"""What a job kind is: declared once, in its own folder (``service/<kind>/__init__.py``), and read
by the API, the queue, the workers, the CLI, ``neuroscribe report DIR`` and ``neuroscribe.run``
through ``service.registry``.

Heavy parts are named by import strings (``"module:name"``) and loaded only when used, so that
declaring a kind imports nothing but its job and result models.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["JobKind", "load_object"]


@dataclass(frozen=True)
class JobKind:
    """A job kind.

    name         the job's ``kind`` tag
    job, result  its pydantic job and result models (``kind: Literal[name]`` on both)
    stages       the service's stages, in order
    handlers     ``"module:NAME"`` of a dict stage -> handler(ctx) (see ``service.executor``)
    run          ``"module:function"``: ``run(job, out, *, settings, force, progress, log) -> result``,
                 the embedded run (one process, no server)
    cli          ``"module:function"``: ``register(cli, submit)`` adds its commands; None: none
    result_file  the file of a result folder that holds the result (JSON), e.g. ``experts.json``
    page         ``"module:function"``: ``page(result_dir) -> Path`` rebuilds the folder's page
    summary      ``"module:function"``: ``summary(result_json) -> dict``, the few numbers a job's record
                 shows (``service.results``); None: the generic one
    """

    name: str
    job: type
    result: type
    stages: tuple[str, ...]
    handlers: str
    run: str
    result_file: str
    cli: str | None = None
    page: str | None = None
    summary: str | None = None

    def __post_init__(self):
        if not self.stages:
            raise ValueError(f"job kind {self.name!r} has no stages")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError(f"job kind {self.name!r} repeats a stage")


def load_object(spec: str):
    """The object an import string ``"module:name"`` names."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)
