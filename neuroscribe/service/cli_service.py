"""The service's commands: ``neuroscribe serve``, ``neuroscribe worker STAGE``, and the client side
(the ``submit`` group, ``status``, ``wait``, ``result``). Registered on the ``neuroscribe`` group by
``service.cli``; each job kind adds its ``submit KIND`` command.

Settings (``neuroscribe.settings.Settings``: option, else environment variable, else default):
    --queue      NEUROSCRIBE_QUEUE      redis://127.0.0.1:6379/0   (memory:// for one process)
    --artefacts  NEUROSCRIBE_ARTEFACTS  ~/.local/share/neuroscribe/artefacts
    --cache-dir  NEUROSCRIBE_CACHE      ~/.cache/neuroscribe
    --url        NEUROSCRIBE_URL        http://127.0.0.1:8000       (client commands)
    --api-key    NEUROSCRIBE_API_KEY    none
and the operations settings of ``neuroscribe.settings`` (retention, keys file, rate limits, logs).

``serve`` refuses to start without any key when NEUROSCRIBE_REQUIRE_AUTH is set (docker-compose.yml
sets it) unless NEUROSCRIBE_LOCAL_TRIAL says it is a local trial. The operations commands (``gc``,
``delete``, ``dead-letters``, ``keys``) are in ``service.cli_ops``.
"""

from __future__ import annotations

from pathlib import Path

import click

from neuroscribe.errors import InvalidInput
from neuroscribe.service import registry
from neuroscribe.service.cli_common import user_errors
from neuroscribe.settings import DEFAULT_QUEUE, DEFAULT_URL, Settings

__all__ = ["register", "submit_and_print", "submit_options", "client_options", "open_client"]


def _queue_option(f):
    return click.option("--queue", "queue_url", default=None,
                        help=f"Queue URL: redis://HOST:PORT/DB[?prefix=NAME] or memory:// "
                             f"[default: $NEUROSCRIBE_QUEUE or {DEFAULT_QUEUE}].")(f)


def _artefacts_option(f):
    return click.option("--artefacts", type=click.Path(path_type=Path), default=None,
                        help="Root folder of the jobs' files, shared by the API and every worker "
                             "[default: $NEUROSCRIBE_ARTEFACTS or ~/.local/share/neuroscribe/artefacts].")(f)


def _lease_options(f):
    f = click.option("--lease", "lease_s", type=click.FloatRange(min=0.05), default=30.0, show_default=True,
                     help="Seconds a job stays leased without a renewal (renewed every third of it).")(f)
    return click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
                        help="Deliveries of a stage before the job is dead-lettered.")(f)


def _client_options(f):
    f = click.option("--url", default=None,
                     help=f"Base URL of the neuroscribe API [default: $NEUROSCRIBE_URL or {DEFAULT_URL}].")(f)
    return click.option("--api-key", default=None,
                        help="API key, when the server requires one [default: $NEUROSCRIBE_API_KEY].")(f)


def _client(url: str | None, api_key: str | None):
    from neuroscribe.service.client import Client

    s = Settings.from_env(url=url, api_key=api_key)
    return Client(s.url, api_key=s.api_key)


client_options, open_client = _client_options, _client  # for the commands of other modules (cli_datasets)


def _echo_record(rec) -> None:
    """The record: status, stage, progress, error and the result's summary (never the result)."""
    click.echo(rec.model_dump_json(indent=2, exclude_none=True))


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


def register(cli: click.Group) -> click.Group:
    """Add the service's commands to ``cli``; returns the ``submit`` group the job kinds add to."""

    @cli.command("serve")
    @_queue_option
    @_artefacts_option
    @click.option("--host", default=None,
                  help="Address to bind (127.0.0.1 unless you mean to expose the API) [default: $NEUROSCRIBE_HOST "
                       "or 127.0.0.1].")
    @click.option("--port", type=int, default=None, help="Port [default: $NEUROSCRIBE_PORT or 8000].")
    @user_errors
    def serve_cmd(queue_url, artefacts, host, port):
        """Serve the HTTP API (FastAPI + uvicorn): submit jobs, follow them, fetch results and
        artefacts. With NEUROSCRIBE_API_KEY set, every route but /healthz requires the key."""
        from neuroscribe.service.api import create_app, run_server
        from neuroscribe.service.auth import KeyRing, RateLimiter
        from neuroscribe.service.logs import configure
        from neuroscribe.service.queue import make_queue
        from neuroscribe.service.retention import Collector, retention_of

        s = Settings.from_env(queue_url=queue_url, artefacts=artefacts, host=host, port=port)
        configure(s.log_format, s.log_level)
        keys = KeyRing.build(s.api_key, s.api_keys_file)
        if not keys and s.require_auth and not s.local_trial:
            raise InvalidInput("NEUROSCRIBE_API_KEY", "no API key is set and NEUROSCRIBE_REQUIRE_AUTH=1: set "
                                                      "NEUROSCRIBE_API_KEY or NEUROSCRIBE_API_KEYS_FILE, or "
                                                      "NEUROSCRIBE_LOCAL_TRIAL=1 for a trial on this machine only")
        s.artefacts.mkdir(parents=True, exist_ok=True)
        queue = make_queue(s.queue_url, retention=retention_of(s))
        from neuroscribe.atlas.search_index import warm_up
        from neuroscribe.atlas.store import default_url, open_store

        warm_up()
        app = create_app(queue, artefacts_dir=s.artefacts, keys=keys,
                         rate_limiter=RateLimiter(s.rate_limit, s.rate_burst), settings=s,
                         atlas=open_store(default_url(s)))
        if s.gc_interval_s > 0:
            Collector(queue, s.artefacts, s.gc_interval_s, store=app.state.artefact_store).start()
        run_server(app, host=s.host, port=s.port, log_config=None)

    @cli.group("submit")
    def submit_group():
        """Submit a job to a running service (see `neuroscribe serve`)."""

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
    @click.argument("stage", type=click.Choice(registry.stage_names()))
    @_queue_option
    @_artefacts_option
    @_lease_options
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                  help="Generation and responses cache [default: $NEUROSCRIBE_CACHE or ~/.cache/neuroscribe].")
    @click.option("--handlers", default=None, metavar="MODULE:NAME",
                  help="Stage handlers to serve (a mapping stage -> function) [default: every registered job "
                       "kind's, by the job's kind].")
    @click.option("--consumer", default=None, help="Consumer name in the stage's group [default: STAGE-HOST-PID].")
    @click.option("--grace", "grace_s", type=float, default=30.0, show_default=True,
                  help="On SIGTERM, seconds the current job may take to finish before it is released.")
    @click.option("--max-jobs", type=int, default=None, help="Exit after this many jobs (default: serve forever).")
    @click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
                  help="Serve the worker's Prometheus metrics on this port (default: none).")
    @click.option("--heartbeat", type=click.Path(path_type=Path), default=None,
                  help="A file touched at least every quarter lease while the worker serves (for healthchecks).")
    @user_errors
    def worker_cmd(stage, queue_url, artefacts, lease_s, max_attempts, cache_dir, handlers, consumer, grace_s,
                   max_jobs, metrics_port, heartbeat):
        """Serve one stage's queue: generate (LLM writes sentences), activate (model responses) or
        analyse (experts, analyses, result folder). Several workers of a stage share its queue; a
        crashed worker's job is taken over by another after one lease."""
        from neuroscribe.service.executor import DEFAULT_HANDLERS
        from neuroscribe.service.logs import configure
        from neuroscribe.service.metrics import WorkerMetrics
        from neuroscribe.service.queue import make_queue
        from neuroscribe.service.retention import retention_of
        from neuroscribe.service.worker import Worker

        s = Settings.from_env(queue_url=queue_url, artefacts=artefacts, cache_dir=cache_dir)
        configure(s.log_format, s.log_level)
        q = make_queue(s.queue_url, lease_s=lease_s, max_attempts=max_attempts, retention=retention_of(s),
                       max_shards_in_flight=max(1, s.shards_in_flight))
        metrics = WorkerMetrics()
        if metrics_port is not None:
            metrics.serve(metrics_port)
        w = Worker(q, stage, settings=s, handlers=handlers or DEFAULT_HANDLERS, consumer=consumer, grace_s=grace_s,
                   metrics=metrics, heartbeat=heartbeat)
        raise SystemExit(w.run(max_jobs=max_jobs))

    from neuroscribe.service.cli_ops import register_ops

    register_ops(cli, client=_client, client_options=_client_options, queue_option=_queue_option,
                 artefacts_option=_artefacts_option)
    return submit_group
