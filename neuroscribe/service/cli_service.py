"""The service's commands: ``neuroscribe serve``, ``neuroscribe worker STAGE``, and the client side
(``submit experts``, ``status``, ``wait``, ``result``). Registered on the ``neuroscribe`` group by
``service.cli``.

Settings (option, else environment variable, else default):
    --queue      NEUROSCRIBE_QUEUE      redis://127.0.0.1:6379/0   (memory:// for one process)
    --artefacts  NEUROSCRIBE_ARTEFACTS  ~/.local/share/neuroscribe/artefacts
    --url        NEUROSCRIBE_URL        http://127.0.0.1:8000       (client commands)
    --api-key    NEUROSCRIBE_API_KEY    none
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from neuroscribe.service.queue.base import STAGES

__all__ = ["register", "submit_and_print", "submit_options"]

DEFAULT_QUEUE = "redis://127.0.0.1:6379/0"
STAGE_NAMES = sorted({s for stages in STAGES.values() for s in stages})


def default_artefacts() -> Path:
    return Path(os.environ.get("NEUROSCRIBE_ARTEFACTS") or Path.home() / ".local" / "share" / "neuroscribe" / "artefacts")


def _queue_option(f):
    return click.option("--queue", "queue_url", envvar="NEUROSCRIBE_QUEUE", default=DEFAULT_QUEUE, show_default=True,
                        help="Queue URL: redis://HOST:PORT/DB[?prefix=NAME] or memory://.")(f)


def _artefacts_option(f):
    return click.option("--artefacts", type=click.Path(path_type=Path), envvar="NEUROSCRIBE_ARTEFACTS", default=None,
                        help="Root folder of the jobs' files, shared by the API and every worker "
                             "[default: ~/.local/share/neuroscribe/artefacts].")(f)


def _lease_options(f):
    f = click.option("--lease", "lease_s", type=click.FloatRange(min=0.05), default=30.0, show_default=True,
                     help="Seconds a job stays leased without a renewal (renewed every third of it).")(f)
    return click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
                        help="Deliveries of a stage before the job is dead-lettered.")(f)


def _client_options(f):
    f = click.option("--url", envvar="NEUROSCRIBE_URL", default="http://127.0.0.1:8000", show_default=True,
                     help="Base URL of the neuroscribe API.")(f)
    return click.option("--api-key", envvar="NEUROSCRIBE_API_KEY", default=None,
                        help="API key, when the server requires one [default: $NEUROSCRIBE_API_KEY].")(f)


def _client(url: str, api_key: str | None):
    from neuroscribe.service.client import Client

    return Client(url, api_key=api_key)


def _echo_record(rec) -> None:
    click.echo(rec.model_dump_json(indent=2))


def submit_and_print(job, url: str, api_key: str | None, idempotency_key: str | None, wait_: bool) -> None:
    """Submit ``job``, print its id and, with ``wait_``, wait and print the final record."""
    with _client(url, api_key) as c:
        rec = c.submit(job, idempotency_key=idempotency_key)
        click.echo(rec.id)
        if wait_:
            _echo_record(c.wait(rec.id))


def submit_options(f):
    """The options every ``submit KIND`` command shares (client, idempotency key, --wait)."""
    f = click.option("--wait", "wait_", is_flag=True, help="Wait for the job, showing per-stage progress.")(f)
    f = click.option("--idempotency-key", default=None,
                     help="Submitting again with the same key returns the same job.")(f)
    return _client_options(f)


def register(cli: click.Group, user_errors, experts_job_options, build_experts_job) -> None:
    @cli.command("serve")
    @_queue_option
    @_artefacts_option
    @click.option("--host", envvar="NEUROSCRIBE_HOST", default="127.0.0.1", show_default=True,
                  help="Address to bind (127.0.0.1 unless you mean to expose the API).")
    @click.option("--port", envvar="NEUROSCRIBE_PORT", type=int, default=8000, show_default=True)
    @user_errors
    def serve_cmd(queue_url, artefacts, host, port):
        """Serve the HTTP API (FastAPI + uvicorn): submit jobs, follow them, fetch results and
        artefacts. With NEUROSCRIBE_API_KEY set, every route but /healthz requires the key."""
        from neuroscribe.service.api import create_app, run_server
        from neuroscribe.service.queue import make_queue

        root = artefacts or default_artefacts()
        root.mkdir(parents=True, exist_ok=True)
        app = create_app(make_queue(queue_url), artefacts_dir=root, api_key=os.environ.get("NEUROSCRIBE_API_KEY"))
        run_server(app, host=host, port=port)

    @cli.group("submit")
    def submit_group():
        """Submit a job to a running service (see `neuroscribe serve`)."""

    @submit_group.command("experts")
    @experts_job_options
    @submit_options
    @user_errors
    def submit_experts_cmd(url, api_key, idempotency_key, wait_, **options):
        """Submit an experts job: the same options as `neuroscribe experts`, run by the service's
        workers. Prints the job id (and, with --wait, waits for the result)."""
        submit_and_print(build_experts_job(**options), url, api_key, idempotency_key, wait_)

    @cli.command("status")
    @click.argument("job_id")
    @_client_options
    @user_errors
    def status_cmd(job_id, url, api_key):
        """Print a job's status (JSON): stage, attempts, per-stage progress, error."""
        with _client(url, api_key) as c:
            _echo_record(c.status(job_id))

    @cli.command("wait")
    @click.argument("job_id")
    @_client_options
    @click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
    @user_errors
    def wait_cmd(job_id, url, api_key, timeout):
        """Wait for a job to finish, with per-stage progress bars; exit 1 if it failed or was cancelled."""
        with _client(url, api_key) as c:
            _echo_record(c.wait(job_id, timeout=timeout))

    @cli.command("result")
    @click.argument("job_id")
    @_client_options
    @click.option("--out", type=click.Path(path_type=Path), required=True, metavar="DIR",
                  help="Folder to download the job's result folder into.")
    @user_errors
    def result_cmd(job_id, url, api_key, out):
        """Download a finished job's result folder (experts.json, report.html, ...) into DIR."""
        with _client(url, api_key) as c:
            c.result(job_id)  # NotReady / JobFailed before anything is written
            files = [p for p in c.artefacts(job_id) if p.startswith("result/")]
            for path in files:
                dest = Path(out) / path.removeprefix("result/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                c.download(job_id, path, dest)
        click.echo(f"{len(files)} files written to {out}")

    @cli.command("worker")
    @click.argument("stage", type=click.Choice(STAGE_NAMES))
    @_queue_option
    @_artefacts_option
    @_lease_options
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                  help="Generation and responses cache [default: $NEUROSCRIBE_CACHE or ~/.cache/neuroscribe].")
    @click.option("--handlers", default=None, metavar="MODULE:NAME",
                  help="Stage handlers to serve (a dict stage -> function) [default: the experts job's].")
    @click.option("--consumer", default=None, help="Consumer name in the stage's group [default: STAGE-HOST-PID].")
    @click.option("--grace", "grace_s", type=float, default=30.0, show_default=True,
                  help="On SIGTERM, seconds the current job may take to finish before it is released.")
    @click.option("--max-jobs", type=int, default=None, help="Exit after this many jobs (default: serve forever).")
    @user_errors
    def worker_cmd(stage, queue_url, artefacts, lease_s, max_attempts, cache_dir, handlers, consumer, grace_s,
                   max_jobs):
        """Serve one stage's queue: generate (LLM writes sentences), activate (model responses) or
        analyse (experts, analyses, result folder). Several workers of a stage share its queue; a
        crashed worker's job is taken over by another after one lease."""
        from neuroscribe.service.executor import DEFAULT_HANDLERS
        from neuroscribe.service.queue import make_queue
        from neuroscribe.service.experts.embedded import default_cache_dir
        from neuroscribe.service.worker import Worker

        q = make_queue(queue_url, lease_s=lease_s, max_attempts=max_attempts)
        w = Worker(q, stage, artefacts=artefacts or default_artefacts(), cache_dir=cache_dir or default_cache_dir(),
                   handlers=handlers or DEFAULT_HANDLERS, consumer=consumer, grace_s=grace_s,
                   log=lambda m: click.echo(m, err=True))
        raise SystemExit(w.run(max_jobs=max_jobs))
