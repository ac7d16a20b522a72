"""The atlas's commands: ``neuroscribe index DIR...`` (import result folders) and ``neuroscribe ui``
(the API, the web UI and every stage's worker in one process, on the local store, no Redis);
``index_after_run`` indexes an embedded job's folder when it finishes (NEUROSCRIBE_AUTO_INDEX)."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from neuroscribe.service.cli_common import user_errors
from neuroscribe.settings import Settings

__all__ = ["register", "index_after_run"]


def index_after_run(out: Path, settings: Settings, quiet: bool = False) -> None:
    """Index a finished embedded job's folder into the atlas (a failure is a warning, never an error)."""
    if not settings.auto_index:
        return
    from neuroscribe.atlas.ingest import index_quietly
    from neuroscribe.atlas.store import default_url

    url = default_url(settings)
    report = index_quietly(url, out)
    if report is not None and not quiet:
        click.echo(f"indexed into the atlas ({url}): open it with `neuroscribe ui`")


def _atlas_option(f):
    return click.option("--atlas", "atlas_url", default=None, metavar="URL",
                        help="The atlas database [default: $NEUROSCRIBE_ATLAS_URL, else atlas.sqlite beside the "
                             "artefacts folder].")(f)


def _start_workers(queue, settings: Settings) -> list:
    from neuroscribe.service import registry
    from neuroscribe.service.worker import Worker

    workers = []
    for stage in registry.stage_names():
        w = Worker(queue, stage, settings=settings, log=lambda m: None)
        threading.Thread(target=w.run, kwargs={"signals": False}, name=f"worker-{stage}", daemon=True).start()
        workers.append(w)
    return workers


def register(cli: click.Group) -> None:
    @cli.command("index")
    @click.argument("dirs", metavar="DIR...", nargs=-1, required=True, type=click.Path(path_type=Path))
    @_atlas_option
    @user_errors
    def index_cmd(dirs, atlas_url):
        """Index result folders (experts, describe or rank) into the neuron atlas. A folder indexed
        before replaces its earlier rows. A folder that is not a result stops with one line naming it."""
        from neuroscribe.atlas.ingest import index_folder, locate_folder
        from neuroscribe.atlas.store import default_url, open_store

        for d in dirs:  # every folder checked before anything is written (its result is read once, below)
            locate_folder(d)
        url = atlas_url or default_url(Settings.from_env())
        engine = open_store(url)
        for d in dirs:
            r = index_folder(engine, d)
            counts = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("key", "kind", "path"))
            click.echo(f"indexed {r['kind']} {r['path']} as {r['key']}: {counts}")
        click.echo(f"atlas: {engine.url.render_as_string(hide_password=True)}")

    @cli.command("ui")
    @_atlas_option
    @click.option("--artefacts", default=None, metavar="DIR", help="Where jobs write [default: $NEUROSCRIBE_ARTEFACTS].")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
    @click.option("--port", type=int, default=8000, show_default=True)
    @click.option("--no-workers", is_flag=True, help="Serve the atlas only (submitted jobs wait for workers).")
    @user_errors
    def ui_cmd(atlas_url, artefacts, host, port, no_workers):
        """The neuron atlas in your browser, in one process: the API and web UI at http://HOST:PORT/,
        jobs submitted from it run here (a worker thread per stage, an in-memory queue: no Redis),
        and every finished job is indexed into the local atlas."""
        from neuroscribe.atlas.store import default_url, open_store
        from neuroscribe.service.api import create_app, run_server
        from neuroscribe.service.auth import KeyRing
        from neuroscribe.service.queue import make_queue

        s = Settings.from_env(artefacts=artefacts, atlas_url=atlas_url, queue_url="memory://", host=host, port=port)
        s.artefacts.mkdir(parents=True, exist_ok=True)
        engine = open_store(default_url(s))
        from neuroscribe.atlas.search_index import warm_up

        warm_up()
        queue = make_queue("memory://")
        workers = [] if no_workers else _start_workers(queue, s)
        app = create_app(queue, artefacts_dir=s.artefacts, keys=KeyRing.build(s.api_key, s.api_keys_file),
                         settings=s, atlas=engine)
        click.echo(f"neuroscribe ui: http://{host}:{port}/  (atlas {engine.url.render_as_string(hide_password=True)}, "
                   f"{len(workers)} stage workers)")
        try:
            run_server(app, host=host, port=port, log_level="warning")
        finally:
            for w in workers:
                w.stop()
