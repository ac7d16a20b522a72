"""Writing one job's rows in one transaction: the job replaces its earlier rows, neurons and models
are found or created, and the large tables go in bulk.

Bulk writes bypass SQLAlchemy's per-row statement machinery (at 460k units it was most of an
import): ``write_columns`` takes the rows column-wise, database-ready (JSON columns as JSON text),
and sends them with the DBAPI's ``executemany`` on SQLite and a binary ``COPY`` on PostgreSQL
(bytea as raw bytes, not hex text). What is stored is what SQLAlchemy's own insert stores: a JSON
column's ``None`` is the JSON text ``null`` on SQLite (SQLAlchemy's default) and SQL NULL on
PostgreSQL (as the text ``COPY`` before). ``bulk_insert`` keeps the row-dict form for small tables.
"""

from __future__ import annotations

import json
import queue
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import JSON, Boolean, Float, Integer, LargeBinary, and_, delete, insert, select
from sqlalchemy.engine import Connection

from neuroscribe.atlas import schema as t
from neuroscribe.atlas.keys import model_key

__all__ = ["JobWriter", "bulk_insert", "write_columns", "now_iso", "SQLITE_BULK_PRAGMAS", "PG_BULK_SETTINGS"]

# the importer's connection only, for the import's duration (restored after): a page cache that
# holds the indexes being filled (256 MiB; the default 2 MiB spills them to the WAL again and again)
SQLITE_BULK_PRAGMAS = {"cache_size": -262_144}
# this transaction only: values too large for a row (an exemplar set's float16 token values and
# JSON, ~2 KiB) compressed with lz4 rather than pglz (several times faster; read back the same)
PG_BULK_SETTINGS = {"default_toast_compression": "lz4"}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _pg_type(column) -> str:
    ty = column.type
    if isinstance(ty, JSON):
        return "text"  # json's binary input is its text
    if isinstance(ty, Boolean):
        return "bool"
    if isinstance(ty, Integer):
        return "int4"
    if isinstance(ty, Float):
        return "float8"
    if isinstance(ty, LargeBinary):
        return "bytea"
    return "text"


def write_columns(conn: Connection, table, columns: dict[str, Sequence]) -> int:
    """Insert rows given column-wise (equal lengths): plain Python values, JSON columns as JSON text
    or None. Returns how many rows."""
    names = list(columns)
    cols = [columns[c] for c in names]
    n = len(cols[0]) if cols else 0
    if n == 0:
        return 0
    if any(len(c) != n for c in cols):
        raise ValueError(f"{table.name}: columns of unequal lengths")
    raw = conn.connection.driver_connection
    quoted = ", ".join(f'"{c}"' for c in names)
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({quoted}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([_pg_type(table.c[c]) for c in names])
            write = copy.write_row
            for row in zip(*cols):
                write(row)
        return n
    cols = [["null" if v is None else v for v in col] if isinstance(table.c[c].type, JSON) else col
            for c, col in zip(names, cols)]
    cur = raw.cursor()
    try:
        cur.executemany(f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join('?' * len(names))})", zip(*cols))
    finally:
        cur.close()
    return n


def dict_columns(table, rows: Sequence[dict]) -> dict[str, list]:
    """Rows given as dicts (the same keys) as ``write_columns`` takes them (JSON columns as text)."""
    columns = {}
    for c in rows[0]:
        values = [r[c] for r in rows]
        if isinstance(table.c[c].type, JSON):
            values = [None if v is None else json.dumps(v) for v in values]
        columns[c] = values
    return columns


def bulk_insert(conn: Connection, table, rows: Sequence[dict], *, chunk: int = 50_000) -> int:
    """Insert ``rows`` (dicts with the same keys) into ``table``; returns how many."""
    return sum(write_columns(conn, table, dict_columns(table, rows[i:i + chunk])) for i in range(0, len(rows), chunk))


class JobWriter:
    """The rows of one indexed job; ``neuron_ids`` maps (model key, site, layer, unit) to ids."""

    def __init__(self, conn: Connection, *, key: str, kind: str, result_dir: str, created_at: str | None,
                 parameters: dict | None, provenance: dict | None, summary: str | None):
        self.conn = conn
        old = conn.execute(select(t.jobs.c.id).where(t.jobs.c.key == key)).scalar()
        if old is not None:  # re-indexing: every row this job wrote before goes (children first)
            for table in t.JOB_TABLES:
                conn.execute(delete(table).where(table.c.job == old))
            conn.execute(delete(t.jobs).where(t.jobs.c.id == old))
        self.job_id = conn.execute(insert(t.jobs).values(
            key=key, kind=kind, result_dir=result_dir, created_at=created_at, indexed_at=now_iso(),
            parameters=parameters, provenance=provenance, summary=summary)).inserted_primary_key[0]
        self._provenance = provenance
        self._models: dict[tuple, int] = {}
        self._queue: queue.Queue | None = None
        self._written: set[str] = set()
        self._failed: list[BaseException] = []

    @contextmanager
    def bulk(self):
        """SQLite: ``SQLITE_BULK_PRAGMAS`` on this connection while the block runs, then as before.
        PostgreSQL: ``PG_BULK_SETTINGS`` for this transaction (``SET LOCAL``), and at the end the
        tables written in bulk are analyzed (in the transaction: a query right after the commit
        is planned with their new sizes, not the empty tables' -- one that took minutes without)."""
        if self.conn.dialect.name == "postgresql":
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cur:
                for k, v in PG_BULK_SETTINGS.items():  # only where the server offers it (lz4: 14+, built with it)
                    cur.execute("SELECT 1 FROM pg_settings WHERE name = %s AND %s = ANY(enumvals)", (k, v))
                    if cur.fetchone() is not None:
                        cur.execute(f"SET LOCAL {k} = {v}")
            yield
            names = sorted(self._written)  # this job's bulk tables so far (its neurons too)
            if names:
                with raw.cursor() as cur:
                    cur.execute("ANALYZE " + ", ".join(names))
            return
        if self.conn.dialect.name != "sqlite":
            yield
            return
        raw = self.conn.connection.driver_connection
        before = {k: raw.execute(f"PRAGMA {k}").fetchone()[0] for k in SQLITE_BULK_PRAGMAS}
        for k, v in SQLITE_BULK_PRAGMAS.items():
            raw.execute(f"PRAGMA {k}={int(v)}")
        try:
            yield
            # as on PostgreSQL: without statistics SQLite's planner may join a layer's neurons to a
            # whole table's statistics first (10 s for a page of MiniLM's 9,216 units; 10 ms with them);
            # analysis_limit keeps it to a sample of each index (well under a second at 458,752 units)
            raw.execute("PRAGMA analysis_limit=1000")
            for name in sorted(self._written):
                raw.execute(f"ANALYZE {name}")
        finally:
            for k, v in before.items():
                raw.execute(f"PRAGMA {k}={int(v)}")

    @contextmanager
    def pipelined(self, depth: int = 2):
        """Inside, ``columns`` hands its rows to one writer thread (in order: ids as written at once)
        and returns; the next chunk is built while one is written (SQLite's steps and PostgreSQL's
        server run outside the GIL). The block's end waits for them; a write's error is raised
        there, or at the next ``columns``. Nothing else may use the connection inside."""
        q: queue.Queue = queue.Queue(maxsize=depth)

        def run():
            while (item := q.get()) is not None:
                if not self._failed:
                    try:
                        write_columns(self.conn, *item)
                    except BaseException as e:  # raised in the importer's thread
                        self._failed.append(e)

        thread = threading.Thread(target=run, name="atlas-writer", daemon=True)
        thread.start()
        self._queue = q
        try:
            yield
        finally:
            self._queue = None
            q.put(None)
            thread.join()
        if self._failed:
            raise self._failed[0]

    def model(self, model_id: str, revision: str | None, weight_sha256: str, model_type: str | None = None) -> int:
        """The model's row id (created on first sight)."""
        ident = (model_id, revision, weight_sha256)
        if ident in self._models:
            return self._models[ident]
        m = t.models.c
        found = self.conn.execute(select(m.id, m.model_type).where(
            and_(m.model_id == model_id, m.weight_sha256 == weight_sha256,
                 m.revision.is_(None) if revision is None else m.revision == revision))).first()
        if found is not None:
            mid = found.id
            if model_type and not found.model_type:
                self.conn.execute(t.models.update().where(m.id == mid).values(model_type=model_type))
        else:
            random_init = "(random init" in model_id
            key = model_key(model_id, revision, weight_sha256, random_init)
            if self.conn.execute(select(m.id).where(m.key == key)).first() is not None:
                key = f"{key}~{weight_sha256[:8]}"  # same name, other weights: the weight hash tells them apart
            mid = self.conn.execute(insert(t.models).values(
                key=key, model_id=model_id, revision=revision, weight_sha256=weight_sha256, model_type=model_type,
                random_init=random_init)).inserted_primary_key[0]
        self._models[ident] = mid
        return mid

    def record_models(self) -> None:
        """Keep the keys of the models this job wrote about on the job (``provenance.atlas_models``,
        first seen first; the jobs list shows them as ``models``)."""
        ids = list(dict.fromkeys(self._models.values()))
        if not ids:
            return
        m = t.models.c
        key_of = dict(self.conn.execute(select(m.id, m.key).where(m.id.in_(ids))).all())
        prov = {**(self._provenance or {}), "atlas_models": [key_of[i] for i in ids]}
        self.conn.execute(t.jobs.update().where(t.jobs.c.id == self.job_id).values(provenance=prov))

    def _existing(self, model: int, site: str, layers: list[int]) -> np.ndarray:
        n = t.neurons.c
        q = select(n.layer, n.unit, n.id).where(n.model == model, n.site == site, n.layer.in_(layers))
        got = [tuple(r) for r in self.conn.execute(q)]
        return np.array(got, dtype=np.int64).reshape(len(got), 3)

    def neuron_ids(self, model: int, site: str, layers, units) -> np.ndarray:
        """Neuron ids (int64) of the (layer, unit) pairs ``layers``, ``units`` (arrays) of one model
        and site, in their order; the missing neurons are created."""
        layers, units = np.asarray(layers, np.int64).ravel(), np.asarray(units, np.int64).ravel()
        if layers.size == 0:
            return np.zeros(0, np.int64)
        wanted_layers = np.unique(layers).tolist()
        have = self._existing(model, site, wanted_layers)
        span = int(max(units.max(), have[:, 1].max() if len(have) else 0)) + 1
        key = layers * span + units
        have_key = have[:, 0] * span + have[:, 1]
        missing = np.setdiff1d(key, have_key)  # sorted: by layer, then unit
        if missing.size:
            k = int(missing.size)
            write_columns(self.conn, t.neurons, {"model": [model] * k, "site": [site] * k,
                                                 "layer": (missing // span).tolist(), "unit": (missing % span).tolist()})
            self._written.add(t.neurons.name)
            have = self._existing(model, site, wanted_layers)
            have_key = have[:, 0] * span + have[:, 1]
        order = np.argsort(have_key)
        pos = np.searchsorted(have_key, key, sorter=order)
        return have[order[pos], 2]

    def neurons(self, model: int, site: str, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """(layer, unit) -> neuron id for ``keys`` of one model and site, creating the missing ones."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        arr = np.array(wanted, dtype=np.int64)
        ids = self.neuron_ids(model, site, arr[:, 0], arr[:, 1])
        return dict(zip(wanted, ids.tolist()))

    def rows(self, table, rows: list[dict]) -> int:
        """This job's rows of ``table`` as dicts (``columns``: written, and analyzed, like the rest)."""
        return self.columns(table, dict_columns(table, rows)) if rows else 0

    def columns(self, table, columns: dict[str, Sequence]) -> int:
        """This job's rows of ``table`` column-wise (``write_columns``)."""
        n = len(next(iter(columns.values()))) if columns else 0
        if not n:
            return 0
        if self._failed:
            raise self._failed[0]
        columns = {**columns, "job": [self.job_id] * n}
        self._written.add(table.name)
        if self._queue is None:
            return write_columns(self.conn, table, columns)
        self._queue.put((table, columns))
        return n

    def search_texts(self, kind: str, texts: Iterable[str]) -> None:
        """Register searchable texts (embedded later, ``atlas.search_index``)."""
        d = t.search_docs.c
        texts = {x.strip()[:2000] for x in texts if x and x.strip()}
        if not texts:
            return
        have = set()
        listed = sorted(texts)
        for i in range(0, len(listed), 500):
            part = listed[i:i + 500]
            have |= {r.text for r in self.conn.execute(select(d.text).where(d.kind == kind, d.text.in_(part)))}
        new = [{"kind": kind, "text": x, "embedding": None} for x in listed if x not in have]
        bulk_insert(self.conn, t.search_docs, new)
