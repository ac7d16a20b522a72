"""Writing one job's rows in one transaction: the job replaces its earlier rows, neurons and models
are found or created, and the large tables go in bulk (executemany on SQLite, ``COPY`` on
PostgreSQL).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Iterable, Sequence

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.engine import Connection

from neuroscribe.atlas import schema as t
from neuroscribe.atlas.keys import model_key

__all__ = ["JobWriter", "bulk_insert", "now_iso"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _copy_value(value):
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return value


def bulk_insert(conn: Connection, table, rows: Sequence[dict], *, chunk: int = 50_000) -> int:
    """Insert ``rows`` (dicts with the same keys) into ``table``; returns how many."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        cols = list(rows[0])
        json_cols = {c for c in cols if isinstance(table.c[c].type, t.JSON)}
        raw = conn.connection.driver_connection
        names = ", ".join(f'"{c}"' for c in cols)
        with raw.cursor() as cur, cur.copy(f'COPY {table.name} ({names}) FROM STDIN') as copy:
            for r in rows:
                copy.write_row([json.dumps(r[c]) if c in json_cols and r[c] is not None else _copy_value(r[c])
                                for c in cols])
        return len(rows)
    for i in range(0, len(rows), chunk):
        conn.execute(insert(table), list(rows[i:i + chunk]))
    return len(rows)


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
        self._models: dict[tuple, int] = {}

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

    def neurons(self, model: int, site: str, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """(layer, unit) -> neuron id for ``keys`` of one model and site, creating the missing ones."""
        wanted = set(keys)
        if not wanted:
            return {}
        n = t.neurons.c
        layers = sorted({layer for layer, _ in wanted})
        q = select(n.layer, n.unit, n.id).where(n.model == model, n.site == site, n.layer.in_(layers))
        have = {(r.layer, r.unit): r.id for r in self.conn.execute(q)}
        missing = [{"model": model, "site": site, "layer": int(layer), "unit": int(unit)}
                   for layer, unit in sorted(wanted - set(have))]
        if missing:
            bulk_insert(self.conn, t.neurons, missing)
            have = {(r.layer, r.unit): r.id for r in self.conn.execute(q)}
        return {k: have[k] for k in wanted}

    def rows(self, table, rows: list[dict]) -> int:
        for r in rows:
            r["job"] = self.job_id
        return bulk_insert(self.conn, table, rows)

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

