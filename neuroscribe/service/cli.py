"""The ``neuroscribe`` command line: the service's commands (``serve``, ``worker``, ``submit``,
``status``, ``wait``, ``result``), ``datasets upload|usage|delete`` (``service.cli_datasets``), ``report DIR``, the atlas's ``index DIR...`` and ``ui``, and each job kind's own commands, registered
from ``service.registry`` (``service/<kind>/cli.py``).

Bad input prints one line ``neuroscribe: error: --FLAG: PROBLEM`` and exits with code 2, before any
work and without touching DIR (``service.cli_common``).
"""

from __future__ import annotations

from pathlib import Path

import click

from neuroscribe.errors import InvalidInput
from neuroscribe.service import registry
from neuroscribe.service.cli_atlas import register as register_atlas
from neuroscribe.service.cli_common import user_errors
from neuroscribe.service.cli_datasets import register_datasets
from neuroscribe.service.cli_service import register as register_service
from neuroscribe.service.kinds import load_object

__all__ = ["main", "cli", "build_cli"]


@click.command("report")
@click.argument("result_dir", metavar="DIR", type=click.Path(path_type=Path))
@user_errors
def report_cmd(result_dir):
    """Rebuild the page of the result folder DIR, whatever its kind: for an experts result
    (experts.json) DIR/report.html with experts per concept and per layer, the concept-overlap
    heatmap and, when the result holds them, the stability curves, the human-alignment scatter, the
    sweep curves and the causal check; for a describe result (descriptions.json) DIR/descriptions.html;
    for a rank result (rankings.json) DIR/rankings.html. Every figure is saved beside a CSV of the
    numbers it plots. Replaces an earlier page."""
    folder = Path(result_dir)
    if not folder.is_dir():
        raise InvalidInput("DIR", f"{str(folder)!r} is not a folder")
    for kind in registry.kinds().values():
        if kind.page and (folder / kind.result_file).is_file():
            click.echo(f"report written to {load_object(kind.page)(folder)}")
            return
    files = ", ".join(k.result_file for k in registry.kinds().values() if k.page)
    raise InvalidInput("DIR", f"{str(folder)!r} holds no result file ({files})")


def build_cli() -> click.Group:
    """The ``neuroscribe`` group with the service's commands, ``report`` and every registered kind's."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.version_option(package_name="neuroscribe")
    def group():
        """neuroscribe: what do the neurons of a language model respond to?"""

    group.add_command(report_cmd)
    register_atlas(group)
    submit = register_service(group)
    register_datasets(group)
    for kind in registry.kinds().values():
        if kind.cli:
            load_object(kind.cli)(group, submit)
    return group


cli = build_cli()


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="neuroscribe")


if __name__ == "__main__":  # pragma: no cover
    main()
