"""Opening the atlas: the engine, the schema check and the migrations.

``open_store(url)`` returns an ``Engine`` whose schema is at this version's head: an empty or older
database is migrated (Alembic, ``atlas/migrations``); a database at a revision this version does
not know -- a newer neuroscribe wrote it -- raises ``AtlasSchemaError`` and nothing is run against
it. ``default_url(settings)``: ``NEUROSCRIBE_ATLAS_URL``, else ``sqlite:///<data dir>/atlas.sqlite``
beside the artefacts folder.

SQLite: WAL, foreign keys on, ``synchronous=NORMAL`` (the store is rebuilt from result folders
if a crash loses the last transaction). PostgreSQL: ``postgresql+psycopg://``; a test gives each
run its own schema with ``?options=-csearch_path%3D<schema>``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from neuroscribe.errors import InvalidInput

__all__ = ["open_store", "default_url", "AtlasSchemaError", "MIGRATIONS", "head_revision", "current_revision"]

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "atlas_alembic_version"
_lock = threading.Lock()


class AtlasSchemaError(RuntimeError):
    """The database's schema is one this version of neuroscribe does not know."""


def default_url(settings=None) -> str:
    if settings is None:
        from neuroscribe.settings import Settings

        settings = Settings.from_env()
    if settings.atlas_url:
        return settings.atlas_url
    path = Path(settings.artefacts).parent / "atlas.sqlite"
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _check_and_migrate(engine: Engine) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    known = {r.revision for r in script.walk_revisions()}
    current = current_revision(engine)
    if current is not None and current not in known:
        raise AtlasSchemaError(
            f"the atlas database {engine.url.render_as_string(hide_password=True)} is at schema revision "
            f"{current!r}, which this neuroscribe does not know (its newest is {script.get_current_head()!r}): "
            "a newer neuroscribe wrote it. Nothing was run against it; upgrade neuroscribe, or set "
            "NEUROSCRIBE_ATLAS_URL to another database.")
    if current == script.get_current_head():
        return
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_store(url: str, *, migrate: bool = True) -> Engine:
    """An engine on ``url`` whose schema is this version's (see the module's docstring)."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidInput("NEUROSCRIBE_ATLAS_URL", f"not a database URL: {str(url)[:200]!r}")
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if migrate:
        with _lock:
            _check_and_migrate(engine)
    return engine
