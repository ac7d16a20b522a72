"""Operations commands (registered by ``service.cli_service.register``):

    neuroscribe gc                        apply the retention once, on the queue and the artefacts folder
    neuroscribe delete JOB_ID             forget a finished job (records, result, files), through the API
    neuroscribe dead-letters list         dead letters of every stage (or --stage), through the API (admin)
    neuroscribe dead-letters requeue STAGE ENTRY_ID   put one back into its stage (admin)
    neuroscribe keys hash KEY             the SHA-256 to put in a keys file instead of the key
"""

from __future__ import annotations

import click

from neuroscribe.service.cli_common import user_errors
from neuroscribe.settings import Settings

__all__ = ["register_ops"]


def register_ops(cli: click.Group, *, client, client_options, queue_option, artefacts_option) -> None:
    @cli.command("gc")
    @queue_option
    @artefacts_option
    @user_errors
    def gc_cmd(queue_url, artefacts):
        """Forget what the retention says to forget: finished jobs older than NEUROSCRIBE_JOB_TTL (their
        records, results and folders), stale job-index entries, dead letters older than
        NEUROSCRIBE_DEAD_LETTER_TTL, orphan job folders. `neuroscribe serve` also runs it every
        NEUROSCRIBE_GC_INTERVAL seconds."""
        from neuroscribe.service.queue import make_queue
        from neuroscribe.service.retention import collect, retention_of

        from neuroscribe.service.storage import open_store

        s = Settings.from_env(queue_url=queue_url, artefacts=artefacts)
        store = open_store(s) if s.artefacts_url else None  # an object store: the removed jobs' objects too
        click.echo(collect(make_queue(s.queue_url, retention=retention_of(s)), s.artefacts, store=store).line())

    @cli.command("delete")
    @click.argument("job_id")
    @client_options
    @user_errors
    def delete_cmd(job_id, url, api_key):
        """Forget a finished job: its record, result, idempotency key and files (cancel a running one
        first)."""
        with client(url, api_key) as c:
            c.delete(job_id)
        click.echo(f"deleted {job_id}")

    @cli.group("dead-letters")
    def dead_letters_group():
        """Jobs that failed every attempt (or can never run): list them, put them back (admin key)."""

    @dead_letters_group.command("list")
    @click.option("--stage", default=None, help="Only this stage's (default: every stage).")
    @client_options
    @user_errors
    def dead_list_cmd(stage, url, api_key):
        """One line per dead letter: STAGE ENTRY_ID JOB_ID REASON (oldest first)."""
        with client(url, api_key) as c:
            letters = c.dead_letters(stage=stage)
        for d in letters:
            click.echo(f"{d['stage']}\t{d['id']}\t{d['job_id'] or '-'}\t{d['reason']}")
        click.echo(f"{len(letters)} dead letter(s)", err=True)

    @dead_letters_group.command("requeue")
    @click.argument("stage")
    @click.argument("entry_id")
    @client_options
    @user_errors
    def dead_requeue_cmd(stage, entry_id, url, api_key):
        """Put dead letter ENTRY_ID of STAGE back into its stage (attempts reset); prints the job id."""
        with client(url, api_key) as c:
            rec = c.requeue(stage, entry_id)
        click.echo(rec.id)

    @cli.group("keys")
    def keys_group():
        """API keys (see NEUROSCRIBE_API_KEYS_FILE)."""

    @keys_group.command("hash")
    @click.argument("key")
    def keys_hash_cmd(key):
        """Print the SHA-256 of KEY, for the "sha256" field of a keys file."""
        from neuroscribe.service.auth import hash_key

        click.echo(hash_key(key))
