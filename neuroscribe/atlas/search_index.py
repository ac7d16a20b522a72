"""Search over descriptors, explanations and concepts, by words and by meaning.

* **Words**: SQLite's FTS5 table ``atlas_search_fts`` (porter stemming; its rowid is the
  document's id), PostgreSQL's ``to_tsvector('english', text)`` GIN index. The query's words are
  matched with OR, each as a prefix; the score is FTS5's bm25 / ``ts_rank``, scaled to (0, 1].
* **Meaning**: every document's packaged-MiniLM embedding (unit norm, float32 bytes), computed when
  it is indexed (``refresh_search``); the query's cosine to each, kept when >= ``MIN_COSINE``.
  "sad" finds "disappointment" this way, which no word search does.

A document found both ways is marked ``both``; results are ordered by the larger of the two scores.
The embeddings are read once per process and again only when documents were added.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import numpy as np
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.engine import Engine

from neuroscribe.atlas import schema as t

__all__ = ["refresh_search", "search_docs", "MIN_COSINE", "query_embedder", "warm_up"]

MIN_COSINE = 0.45
_WORD = re.compile(r"\w+", re.UNICODE)
_cache: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
_cache_lock = threading.Lock()


@lru_cache(maxsize=1)
def query_embedder():
    from neuroscribe.workers.describe.vocabulary import minilm_embedder

    return minilm_embedder(batch_size=256)


def warm_up() -> None:
    """Load the query embedder in a background thread (a server's first search need not wait ~10 s)."""
    threading.Thread(target=query_embedder, name="atlas-embedder", daemon=True).start()


def refresh_search(engine: Engine, *, embed=None, batch: int = 2048) -> int:
    """Embed (and, on SQLite, full-text index) the documents not done yet; returns how many."""
    d = t.search_docs.c
    done = 0
    while True:
        with engine.connect() as conn:
            todo = conn.execute(select(d.id, d.text).where(d.embedding.is_(None)).order_by(d.id).limit(batch)).all()
        if not todo:
            return done
        vectors = (embed or query_embedder())([r.text for r in todo])
        with engine.begin() as conn:
            conn.execute(update(t.search_docs).where(d.id == bindparam("doc_id")).values(embedding=bindparam("vec")),
                         [{"doc_id": r.id, "vec": np.asarray(v, dtype="<f4").tobytes()} for r, v in zip(todo, vectors)])
            if conn.dialect.name == "sqlite":
                conn.execute(text("INSERT INTO atlas_search_fts(rowid, text) VALUES (:id, :text)"),
                             [{"id": r.id, "text": r.text} for r in todo])
        done += len(todo)


def _fts_query(q: str) -> str:
    words = _WORD.findall(q.lower())[:12]
    return " OR ".join(f'"{w}"*' for w in words)


def _by_words(conn, q: str, limit: int) -> dict[int, float]:
    if conn.dialect.name == "sqlite":
        fq = _fts_query(q)
        if not fq:
            return {}
        rows = conn.execute(text("SELECT rowid, bm25(atlas_search_fts) AS s FROM atlas_search_fts "
                                 "WHERE atlas_search_fts MATCH :q ORDER BY s LIMIT :n"), {"q": fq, "n": limit}).all()
        # bm25 is lower for better matches (negative): map to (0, 1]
        return {r[0]: 1.0 / (1.0 + max(0.0, r[1] + 10.0) / 10.0) if r[1] < 0 else 0.5 for r in rows}
    words = _WORD.findall(q.lower())[:12]
    if not words:
        return {}
    tsq = " | ".join(f"{w}:*" for w in words)
    vec = func.to_tsvector("english", t.search_docs.c.text)
    query = func.to_tsquery("english", tsq)
    rows = conn.execute(select(t.search_docs.c.id, func.ts_rank(vec, query).label("s"))
                        .where(vec.op("@@")(query)).order_by(text("s DESC")).limit(limit)).all()
    return {r.id: min(1.0, 0.5 + float(r.s)) for r in rows}


def _matrix(engine: Engine, conn) -> tuple[np.ndarray, np.ndarray]:
    d = t.search_docs.c
    key = engine.url.render_as_string(hide_password=False)
    n = conn.execute(select(func.count()).select_from(t.search_docs).where(d.embedding.is_not(None))).scalar()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == n:
            return hit[1], hit[2]
    rows = conn.execute(select(d.id, d.embedding).where(d.embedding.is_not(None)).order_by(d.id)).all()
    ids = np.array([r.id for r in rows], dtype=np.int64)
    mat = (np.frombuffer(b"".join(r.embedding for r in rows), dtype="<f4").reshape(len(rows), -1)
           if rows else np.zeros((0, 384), np.float32))
    with _cache_lock:
        _cache[key] = (n, ids, mat)
    return ids, mat


def search_docs(engine: Engine, q: str, *, limit: int = 20, embed=None) -> list[dict]:
    """The documents matching ``q``: ``[{id, kind, text, score, match}]``, best first."""
    with engine.connect() as conn:
        words = _by_words(conn, q, limit * 2)
        ids, mat = _matrix(engine, conn)
        meaning: dict[int, float] = {}
        if len(ids):
            v = np.asarray((embed or query_embedder())([q])[0], dtype=np.float32)
            sims = mat @ v
            best = np.argsort(-sims)[: limit * 2]
            meaning = {int(ids[i]): float(sims[i]) for i in best if sims[i] >= MIN_COSINE}
        found = set(words) | set(meaning)
        if not found:
            return []
        d = t.search_docs.c
        docs = {r.id: r for r in conn.execute(select(d.id, d.kind, d.text).where(d.id.in_(sorted(found))))}
    out = []
    for i in found:
        w, m = words.get(i), meaning.get(i)
        match = "both" if w is not None and m is not None else "words" if w is not None else "meaning"
        out.append({"id": i, "kind": docs[i].kind, "text": docs[i].text, "score": round(max(w or 0, m or 0), 4),
                    "match": match, "cosine": None if m is None else round(m, 4)})
    out.sort(key=lambda r: (-r["score"], r["text"]))
    return out[:limit]
