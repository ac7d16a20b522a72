"""``neuroscribe datasets upload|usage|delete``: datasets stored on a server once, which jobs then
name by hash (``neuroscribe submit describe|rank --dataset sha256:HEX``; ``service.api_data``).
Registered by ``service.cli``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from neuroscribe.errors import InvalidInput
from neuroscribe.service.cli_common import user_errors
from neuroscribe.service.cli_service import client_options, open_client

__all__ = ["register_datasets"]

_RANK_ONLY = {"word_col": "--word-col", "continuations": "--continuation", "label_texts": "--label-text"}


def _upload_fields() -> dict:
    from neuroscribe.service.describe.cli import DESCRIBE_FIELDS
    from neuroscribe.service.rank.cli import RANK_FIELDS

    return {**DESCRIBE_FIELDS, **RANK_FIELDS}  # "dataset.*" has no option here: such a field keeps its name


def _load(file: Path, kind: str, options: dict):
    """The dataset of ``file`` as a job of ``kind`` would carry it (the same loaders and checks)."""
    if kind == "describe":
        from neuroscribe.service.describe.cli import load_describe_dataset

        for name, flag in _RANK_ONLY.items():
            if options[name]:
                raise InvalidInput(name, f"{flag} shapes rank datasets; this upload is --kind describe")
        return load_describe_dataset(file, text_col=options["text_col"], label_col=options["label_col"],
                                     label_names=options["label_names"], label_word_match=options["label_word_match"])
    from neuroscribe.service.rank.cli import load_rank_dataset

    if not options["label_word_match"]:
        raise InvalidInput("label_word_match", "--no-label-word-match shapes describe datasets; this upload is "
                                               "--kind rank")
    return load_rank_dataset(file, text_col=options["text_col"], label_col=options["label_col"],
                             word_col=options["word_col"], continuations=options["continuations"],
                             label_texts=options["label_texts"], label_names=options["label_names"])


def register_datasets(cli: click.Group) -> None:
    """Add the ``datasets`` group to ``cli``."""

    @cli.group("datasets")
    def datasets_group():
        """Datasets stored on the server once, which describe and rank jobs then name by hash."""

    @datasets_group.command("upload")
    @click.argument("file", type=click.Path(path_type=Path), metavar="FILE")
    @click.option("--kind", type=click.Choice(["describe", "rank"]), default="describe", show_default=True,
                  help="The jobs that will use it: a describe dataset (labels optional) or a rank one (labels "
                       "required, optionally a target word per row).")
    @click.option("--text-col", default=None, help="Column (tsv/csv) or key (jsonl) of the text [default: text].")
    @click.option("--label-col", default=None, help="Column or key of the label.")
    @click.option("--label-name", "label_names", multiple=True, metavar="LABEL=NAME",
                  help="A name for a label, e.g. 1=positive (repeatable).")
    @click.option("--label-word-match/--no-label-word-match", default=True, show_default=True,
                  help="Describe datasets: a descriptor holding a label's name as a whole word also gives its "
                       "sentence that name.")
    @click.option("--word-col", default=None, help="Rank datasets: column of the target word's index (token level).")
    @click.option("--continuation", "continuations", multiple=True, metavar="LABEL=TEXT",
                  help="Rank datasets, decoders: a label-bearing continuation per label (repeatable).")
    @click.option("--label-text", "label_texts", multiple=True, metavar="LABEL=TEXT",
                  help="Rank datasets, sentence encoders: a description per label (repeatable).")
    @client_options
    @user_errors(fields=_upload_fields())
    def upload_cmd(file, kind, url, api_key, **options):
        """Upload the dataset in FILE (the formats of `neuroscribe describe|rank --dataset`), checked
        here and by the server as a job's dataset is, and print its hash, sha256:HEX; then
        `neuroscribe submit describe|rank --dataset sha256:HEX ...` sends jobs that carry only the
        hash. Uploading the same dataset again stores nothing new."""
        data = _load(file, kind, options)
        with open_client(url, api_key) as c:
            sha = c.upload_dataset(data, kind=kind)
        click.echo(f"sha256:{sha}")

    @datasets_group.command("usage")
    @client_options
    @user_errors
    def usage_cmd(url, api_key):
        """This key's datasets on the server (JSON): hash, kind, rows, bytes; the bytes in use and the quota."""
        with open_client(url, api_key) as c:
            click.echo(json.dumps(c.dataset_usage(), indent=2))

    @datasets_group.command("delete")
    @click.argument("sha256", metavar="sha256:HEX")
    @client_options
    @user_errors
    def delete_cmd(sha256, url, api_key):
        """Forget a dataset this key uploaded (jobs queued with it fail at their next stage)."""
        from pydantic import ValidationError

        from neuroscribe.jobs.common import DatasetRef

        try:
            ref = DatasetRef(sha256=sha256)
        except ValidationError as e:
            raise InvalidInput("sha256:HEX", e.errors()[0]["msg"].removeprefix("Value error, ")) from None
        with open_client(url, api_key) as c:
            c.delete_dataset(ref.sha256)
        click.echo(f"deleted sha256:{ref.sha256}")
