"""A toy job kind, declared the way a fourth method would be: its job and result models, its stages
and handlers, its embedded run, its CLI command and its page, all here, and one ``register`` call
(a built-in kind instead adds its package to ``service.registry.BUILTIN``). Importing this module
registers it; ``tests/integration/test_kinds.py`` shows the API, the queue, the worker, the CLI,
``report DIR`` and ``neuroscribe.run`` all pick it up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import click
from pydantic import Field

from neuroscribe.jobs.common import SCHEMA_VERSION, Frozen, JobBase
from neuroscribe.service import registry
from neuroscribe.service.kinds import JobKind


class ToyJob(JobBase):
    kind: Literal["toy"] = "toy"
    words: tuple[str, ...] = Field(..., min_length=1)


class ToyResult(Frozen):
    kind: Literal["toy"] = "toy"
    schema_version: Literal[1] = SCHEMA_VERSION
    n_letters: int
    shouted: tuple[str, ...]


def _count(ctx) -> dict:
    ctx.progress(1, 1, "counted")
    return {"handoff": {"n_letters": sum(len(w) for w in ctx.job.words)}}


def _shout(ctx) -> dict:
    result = ToyResult(n_letters=ctx.handoff["n_letters"], shouted=tuple(w.upper() for w in ctx.job.words))
    return {"result": result.model_dump(mode="json")}


HANDLERS = {"toy-count": _count, "toy-shout": _shout}


def run(job: ToyJob, out, *, force=False, progress=True, settings=None, log=print) -> ToyResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=force)
    result = ToyResult(n_letters=sum(len(w) for w in job.words), shouted=tuple(w.upper() for w in job.words))
    (out / "toy.json").write_text(result.model_dump_json(), encoding="utf-8")
    return result


def page(result_dir) -> Path:
    result = ToyResult.model_validate_json((Path(result_dir) / "toy.json").read_text(encoding="utf-8"))
    path = Path(result_dir) / "toy.html"
    path.write_text(f"<p>{' '.join(result.shouted)}</p>", encoding="utf-8")
    return path


def register_cli(cli: click.Group, submit: click.Group) -> None:
    @cli.command("toy")
    @click.argument("words", nargs=-1, required=True)
    @click.option("--out", required=True)
    def toy_cmd(words, out):
        """Shout the words."""
        click.echo(json.dumps(run(ToyJob(words=words), out).model_dump(mode="json")))

    @submit.command("toy")
    @click.argument("words", nargs=-1, required=True)
    def submit_toy_cmd(words):
        """Submit a toy job."""


KIND = JobKind(name="toy", job=ToyJob, result=ToyResult, stages=("toy-count", "toy-shout"),
               handlers="toy_kind:HANDLERS", run="toy_kind:run", result_file="toy.json", cli="toy_kind:register_cli",
               page="toy_kind:page")
registry.register(KIND, replace=True)
