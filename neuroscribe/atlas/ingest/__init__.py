"""Indexing result folders into the atlas: ``index_folder(engine, DIR)`` (one transaction per job;
re-indexing replaces the job's rows) and ``index_quietly`` for a
finished job (a failure is logged, never raised: the job's result stands without the atlas).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import Engine

from neuroscribe.atlas.ingest.describe import index_describe
from neuroscribe.atlas.ingest.experts import index_experts, sweep_counts
from neuroscribe.atlas.ingest.folder import ResultFolder, locate_folder, read_folder
from neuroscribe.atlas.ingest.rank import index_rank
from neuroscribe.atlas.ingest.writer import JobWriter

__all__ = ["index_folder", "index_quietly", "locate_folder", "read_folder", "ResultFolder"]

_log = logging.getLogger("neuroscribe.atlas")
_INDEXERS = {"experts": index_experts, "describe": index_describe, "rank": index_rank}


def _provenance(rf: ResultFolder) -> dict:
    prov = dict(rf.result.get("provenance") or {})
    prov.pop("environment", None)
    if rf.kind == "experts":
        prov["sweep"] = sweep_counts(rf.result)
    return prov


def index_folder(engine: Engine, path: str | Path) -> dict:
    """Index one result folder; returns what was written (counts, the job's key and kind)."""
    rf = read_folder(path)
    with engine.begin() as conn:
        w = JobWriter(conn, key=rf.key, kind=rf.kind, result_dir=str(rf.path),
                      created_at=(rf.result.get("provenance") or {}).get("created_at"),
                      parameters=rf.job, provenance=_provenance(rf), summary=rf.summary)
        counts = _INDEXERS[rf.kind](w, rf)
        w.record_models()
    from neuroscribe.atlas.search_index import refresh_search

    refresh_search(engine)
    return {"key": rf.key, "kind": rf.kind, "path": str(rf.path), **counts}


def index_quietly(url: str | None, path: str | Path, log=None) -> dict | None:
    """Index a finished job's folder into the atlas at ``url`` (default: the settings'); never raises."""
    try:
        from neuroscribe.atlas.store import default_url, open_store

        engine = open_store(url or default_url())
        try:
            report = index_folder(engine, path)
        finally:
            engine.dispose()
        (log or _log.info)(f"atlas: indexed {report['kind']} job {report['key']} ({path})")
        return report
    except Exception as e:  # the job succeeded; the atlas is an index of it, rebuilt with `neuroscribe index`
        _log.warning("atlas: could not index %s: %s: %s", path, type(e).__name__, e)
        return None
