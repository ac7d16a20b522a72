"""What every command of the ``neuroscribe`` command line shares: turning user errors into one
line and exit code 2, field descriptions as help texts, ``--layers`` lists, ``--quiet``.

Bad input prints ``neuroscribe: error: --FLAG: VALUE is not accepted: PROBLEM`` (the flag the user
typed, the rejected value, the reason; just ``--FLAG: PROBLEM`` when the reason already shows the
value) and exits with code 2, before any work and without touching DIR.

How an error finds its flag (``flag_for``): the error names a field, ``InvalidInput.field`` or a
pydantic error's ``loc`` joined with ``.`` (a model validator's message ``FIELD: ...`` names its
own; ``FILE`` or ``FILE:LINE`` of a file an option gave names that option). The command's table
(``user_errors(fields=...)``) maps job fields to click parameter names (``top_k_percent`` ->
``top_percent``, i.e. ``--top-percent``); a key ``PREFIX.*`` covers every field below PREFIX,
list indices count as ``*`` (``concepts.0.name`` -> ``concepts.*``; a trailing one is dropped,
``stability.taus.2`` -> ``stability.taus``), and a tuple of parameter names picks the first the
user set. A field that is itself the name of a parameter needs no entry (``n_pos`` ->
``--n-pos``). A field without an option keeps its name. The rejected value is the option's value
in the click context (what the user typed, or the default).
The HTTP API is not concerned: it reports pydantic's field paths.
"""

from __future__ import annotations

import functools
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping, Union

import click
from pydantic import ValidationError

from neuroscribe.errors import InvalidInput, NeuroscribeError

__all__ = ["run_options", "apply_options", "doc", "fail", "validation_message", "validation_field", "user_errors", "as_field", "flag_for",
           "error_line", "parse_layers", "silence_libraries", "dataset_ref", "local_job", "MODEL_FIELDS"]

FieldTable = Mapping[str, Union[str, tuple[str, ...]]]

# SubjectModelSpec's fields under the job's ``model``, for commands whose options are --model, --revision...
MODEL_FIELDS: dict[str, str | tuple[str, ...]] = {
    "model": "model", "model.name": "model", "model.revision": "revision", "model.site": "site",
    "model.pooling": "pooling", "model.layers": "layers", "model.batch_size": "batch_size",
    "model.max_length": "max_length", "model.device": "device", "model.trust_remote_code": "trust_remote_code",
}

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*")


def doc(model, name: str) -> str:
    """The contract's field description, so ``--help`` and the JSON schema say the same thing."""
    return model.model_fields[name].description or ""


def fail(message: str, code: int = 2):
    click.echo(f"neuroscribe: error: {message}", err=True)
    sys.exit(code)


def validation_field(err: ValidationError) -> tuple[str, str]:
    """(dotted field, message) of the first error, ``(and N more)`` appended. A check across fields
    (empty ``loc``) whose message starts with ``FIELD: `` names that field; otherwise ``job``."""
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if not loc:
        head, sep, rest = msg.partition(": ")
        if sep and _FIELD.fullmatch(head):
            loc, msg = head, rest
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return loc or "job", msg + more


def validation_message(err: ValidationError) -> str:
    field, msg = validation_field(err)
    return f"{field}: {msg}"


@contextmanager
def as_field(prefix: str):
    """A spec built on its own (outside the job) reports its errors under the job's field ``prefix``:
    a ``ValidationError`` at ``loc`` becomes ``InvalidInput("PREFIX.loc")``, a plain ``ValueError``
    (e.g. an unparsable ``GeneratorSpec`` string) ``InvalidInput("PREFIX")``."""
    try:
        yield
    except ValidationError as e:
        field, msg = validation_field(e)
        raise InvalidInput(prefix if field == "job" else f"{prefix}.{field}", msg) from None
    except InvalidInput:
        raise
    except ValueError as e:
        raise InvalidInput(prefix, str(e)) from None


def flag_for(field: str, command: click.Command, fields: FieldTable = {}, params: Mapping | None = None):
    """The click parameter of ``command`` that ``field`` comes from, or None (see the module doc)."""
    by_name = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for p in by_name.values():  # FILE or FILE:LINE of a file an option gave
        if _names_file(field, (params or {}).get(p.name)):
            return p
    if not _FIELD.fullmatch(field):  # a path...: not a field of the job
        return None
    segs = ["*" if s.isdigit() else s for s in field.split(".")]
    while len(segs) > 1 and segs[-1] == "*":  # an item of a list field: the field's option
        segs.pop()
    keys = [".".join(segs)] + [".".join(segs[:i]) + ".*" for i in range(len(segs) - 1, 0, -1)]
    for key in keys:
        target = fields.get(key)
        if target is None and key == keys[0]:
            target = key.replace("-", "_") if key.replace("-", "_") in by_name else None
        if target is None:
            continue
        names = (target,) if isinstance(target, str) else tuple(target)
        given = [n for n in names if n in by_name and _shown(params.get(n) if params else None) is not None]
        name = given[0] if given else next((n for n in names if n in by_name), None)
        if name is not None:
            return by_name[name]
    return None


def _names_file(field: str, value) -> bool:
    return isinstance(value, Path) and (field == str(value) or field.startswith(f"{value}:"))


def _flag(param: click.Option) -> str:
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def _one(v) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, (str, Path)):
        return repr(str(v))
    return str(v)


def _shown(value) -> str | None:
    """The value as the error line shows it (strings quoted); None for an unset option or a switch."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (tuple, list)):
        return ", ".join(_one(v) for v in value) if value else None
    return _one(value)


def _in_message(value, message: str) -> bool:
    """Whether ``message`` shows ``value`` already: a text quoted (``'stars'``), a path as written.
    A number never counts (the 0 of "greater than 0" is not the rejected value)."""
    if isinstance(value, (tuple, list)):
        value = value[0] if len(value) == 1 else None
    if isinstance(value, Path) and str(value).strip():
        return re.search(rf"(?<![\w.]){re.escape(str(value))}(?![\w])", message) is not None
    if isinstance(value, str) and value.strip():
        return repr(value) in message or f'"{value}"' in message
    return False


def error_line(field: str, message: str, fields: FieldTable = {}, ctx: click.Context | None = None) -> str:
    """``--FLAG: VALUE is not accepted: MESSAGE`` for a field with an option of ``ctx``'s command
    (``--FLAG: MESSAGE`` when MESSAGE shows the value already), ``FIELD: MESSAGE`` otherwise."""
    for name in dict.fromkeys((field, field.rpartition(".")[2])):  # "layers: layers: ..." -> once
        message = message.removeprefix(f"{name}: ")
    param = flag_for(field, ctx.command, fields, ctx.params) if ctx is not None else None
    if param is None:
        return f"{field}: {message}"
    flag = _flag(param)
    value = ctx.params.get(param.name)
    if _names_file(field, value):  # the file (and line) stay in the line
        message = f"{field}: {message}"
    shown = _shown(value)
    if shown is None or _in_message(value, message):
        return f"{flag}: {message}"
    return f"{flag}: {shown} is not accepted: {message}"


def user_errors(fn=None, *, fields: FieldTable = {}):
    """Turn user errors into one line on stderr and exit code 2 (``NeuroscribeError``: exit 1),
    naming the flag of the command that the error's field comes from (``fields``: the command's
    table of job fields whose option has another name). ``@user_errors`` or ``@user_errors(fields=...)``."""
    if fn is None:
        return functools.partial(user_errors, fields=fields)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InvalidInput as e:
            fail(error_line(e.field, e.message, fields, click.get_current_context(silent=True)))
        except ValidationError as e:
            fail(error_line(*validation_field(e), fields, click.get_current_context(silent=True)))
        except NeuroscribeError as e:
            fail(str(e), code=1)

    return wrapper


def parse_layers(values: tuple[str, ...]) -> tuple[int, ...] | None:
    """``--layers 0,2-4 --layers 7`` -> (0, 2, 3, 4, 7)."""
    if not values:
        return None
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                lo, hi = (int(x) for x in part.split("-", 1)) if "-" in part[1:] else (int(part), int(part))
            except ValueError:
                raise InvalidInput("layers", f"{value!r} is not a list of layer numbers like 0,2-4") from None
            if hi < lo:  # outside the try: InvalidInput is a ValueError too
                raise InvalidInput("layers", f"{part!r} is a reversed range (write {hi}-{lo})")
            out.extend(range(lo, hi + 1))
    if not out:
        raise InvalidInput("layers", f"{' '.join(values)!r} names no layer (expected e.g. 0,2-4)")
    if any(x < 0 for x in out):
        raise InvalidInput("layers", "layer numbers must be >= 0")
    return tuple(sorted(set(out)))


def dataset_ref(value, **shaping):
    """``--dataset sha256:HEX`` (and no such file): a dataset uploaded before (``neuroscribe datasets
    upload``), as the job's ``DatasetRef``; None for a file. The options that shape a file's dataset
    (``shaping``: parameter name -> set or not) are refused beside it: the upload fixed them."""
    from neuroscribe.jobs.common import DatasetRef

    text = str(value)
    if not text.startswith("sha256:") or Path(text).exists():
        return None
    with as_field("dataset"):
        ref = DatasetRef(sha256=text)
    for name, given in shaping.items():
        if given:
            raise InvalidInput(name, f"is fixed when a dataset is uploaded, and --dataset {text[:19]}... names an "
                                     "uploaded one: give it to `neuroscribe datasets upload` with the file instead")
    return ref


def local_job(job, command: str):
    """``job`` for a run on this machine: a dataset uploaded to a server (``--dataset sha256:...``) is
    refused naming the flag (only ``neuroscribe submit COMMAND`` can use it)."""
    from neuroscribe.jobs.common import DatasetRef

    if isinstance(getattr(job, "dataset", None), DatasetRef):
        raise InvalidInput("dataset", f"sha256:{job.dataset.sha256} names a dataset uploaded to a server; "
                                      f"`neuroscribe {command}` runs here: give the file, or `neuroscribe submit "
                                      f"{command} --dataset sha256:...`")
    return job


def silence_libraries() -> None:
    """--quiet: no progress bars or load reports from transformers / huggingface_hub either."""
    import huggingface_hub.utils
    from transformers.utils import logging as hf_logging

    huggingface_hub.utils.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def run_options(seed_help: str) -> list:
    """The options every job kind's command ends with: how the subject model runs, the seed, and
    whether model repositories may run their own code."""
    from neuroscribe.jobs import SubjectModelSpec

    return [
        click.option("--batch-size", type=int, default=32, show_default=True, help=doc(SubjectModelSpec, "batch_size")),
        click.option("--max-length", type=int, default=128, show_default=True,
                     help=doc(SubjectModelSpec, "max_length")),
        click.option("--device", default="auto", show_default=True, help=doc(SubjectModelSpec, "device")),
        click.option("--seed", type=int, default=0, show_default=True, help=seed_help),
        click.option("--trust-remote-code", is_flag=True,
                     help="Allow model repositories to run their own code (off by default)."),
    ]


def apply_options(options: list):
    """A decorator adding ``options`` (click.option decorators) in their listed order."""

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate
