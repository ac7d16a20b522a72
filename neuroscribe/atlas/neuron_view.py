"""One neuron with everything the indexed jobs know about it: statistics and histogram, exemplars
with the unit's activation at every token, descriptors, explanations, expert concepts, rank
positions and effects, each naming the job it came from; its neighbours for prev / next.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import and_, select, tuple_

from neuroscribe.atlas import schema as t
from neuroscribe.atlas.queries import NotFound, job_dict, model_row

__all__ = ["neuron_view", "exemplar_tokens"]


def exemplar_tokens(text: str, spans, values: np.ndarray) -> tuple[list[dict], int | None]:
    """Tokens of one sentence with the unit's value at each; the peak's index (None: no token)."""
    if not spans:
        return [], None
    n = min(len(spans), len(values))
    toks = [{"start": int(a), "end": int(b), "text": text[int(a):int(b)], "value": round(float(values[i]), 4)}
            for i, (a, b) in enumerate(spans[:n])]
    peak = int(np.argmax(values[:n])) if n else None
    return toks, peak


def _neighbours(conn, neuron) -> tuple[dict | None, dict | None]:
    n = t.neurons.c
    same = and_(n.model == neuron.model, n.site == neuron.site)
    here = tuple_(n.layer, n.unit)  # a row value: the unique index's range, not an OR over it
    before = conn.execute(select(n.layer, n.unit).where(same, here < tuple_(neuron.layer, neuron.unit))
                          .order_by(n.layer.desc(), n.unit.desc()).limit(1)).first()
    after = conn.execute(select(n.layer, n.unit).where(same, here > tuple_(neuron.layer, neuron.unit))
                         .order_by(n.layer, n.unit).limit(1)).first()
    return (None if before is None else {"layer": before.layer, "unit": before.unit},
            None if after is None else {"layer": after.layer, "unit": after.unit})


def _rows(conn, table, nid: int, order=None):
    q = select(table, t.jobs.c.key.label("job_key")).join(t.jobs, t.jobs.c.id == table.c.job) \
        .where(table.c.neuron == nid)
    return conn.execute(q.order_by(*(order or (table.c.id,)))).all()


def _exemplars(conn, nid: int) -> list[dict]:
    out = []
    for ex in _rows(conn, t.exemplars, nid):
        rows = list(ex.rows)
        sents = {r.row: r for r in conn.execute(select(t.sentences).where(
            t.sentences.c.job == ex.job, t.sentences.c.row.in_(rows)))} if rows else {}
        values = np.frombuffer(ex.values, dtype="<f2").astype(np.float32) if ex.values else None
        lengths = ex.lengths or [0] * len(rows)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
        levels = ex.levels or []
        rank = 0
        for i, row in enumerate(rows):
            s = sents.get(row)
            text = s.text if s is not None else ""
            kind = ex.kinds[i] if i < len(ex.kinds) else 0
            toks, peak = ([], None)
            if values is not None and s is not None:
                toks, peak = exemplar_tokens(text, s.spans, values[offsets[i]:offsets[i + 1]])
            rank = rank + 1 if kind == 0 else rank
            out.append({"job": ex.job_key, "kind": "top" if kind == 0 else "quantile",
                        "level": levels[kind - 1] if kind and kind - 1 < len(levels) else None,
                        "rank": rank if kind == 0 else None, "row": row,
                        "activation": ex.activations[i] if i < len(ex.activations) else None,
                        "text": text, "label": None if s is None else s.label, "tokens": toks, "peak": peak})
    return out


def neuron_view(engine, model: str, layer: int, unit: int, site: str | None = None) -> dict:
    n = t.neurons.c
    with engine.connect() as conn:
        mod = model_row(conn, model)
        sites = [r[0] for r in conn.execute(select(n.site).where(n.model == mod.id, n.layer == layer,
                                                                  n.unit == unit).order_by(n.site))]
        if not sites or (site is not None and site not in sites):
            raise NotFound(f"neuron {model[:200]}/{layer}/{unit}" + (f" at site {site[:40]!r}" if site else ""))
        site = site if site is not None else ("mlp_post" if "mlp_post" in sites else sites[0])
        neuron = conn.execute(select(t.neurons).where(n.model == mod.id, n.site == site, n.layer == layer,
                                                      n.unit == unit)).first()
        prev, nxt = _neighbours(conn, neuron)
        stats = [{"job": r.job_key, "max": r.max_activation, "mean": r.mean_activation, "quantiles": r.quantiles,
                  "firing_density": r.firing_density, "status": r.status, "histogram": r.histogram,
                  "n_exemplars": r.n_exemplars} for r in _rows(conn, t.unit_stats, neuron.id)]
        d = t.descriptors
        descriptors = [{"job": r.job_key, "descriptor": r.descriptor, "count": r.count, "f": r.f,
                        "base_rate": r.base_rate, "enrichment": r.enrichment, "p": r.p, "q": r.q, "auroc": r.auroc,
                        "verified": r.verified} for r in _rows(conn, d, neuron.id, (d.c.job, d.c.position))]
        explanations = [{"job": r.job_key, "text": r.text, **(r.scores or {})}
                        for r in _rows(conn, t.explanations, neuron.id)]
        c = t.concepts
        concepts = [{"job": r.job_key, "concept": r.concept, "ap": r.ap, "tau": r.tau, "expert": r.expert}
                    for r in _rows(conn, c, neuron.id, (c.c.ap.desc(),))]
        rk = t.ranks
        ranks = [{"job": r.job_key, "method": r.method, "attribute": r.attribute, "position": r.position,
                  "n_ranked": r.n_ranked, "score": r.score} for r in _rows(conn, rk, neuron.id, (rk.c.position,))]
        effects = [{"job": r.job_key, "kind": r.kind, "label": r.label, "value": r.value, "low": r.low,
                    "high": r.high, "baseline": r.baseline, "detail": r.detail}
                   for r in _rows(conn, t.effects, neuron.id)]
        exemplars = _exemplars(conn, neuron.id)
        keys = {x["job"] for x in (*stats, *descriptors, *explanations, *concepts, *ranks, *effects, *exemplars)}
        jobs = [job_dict(r) for r in conn.execute(select(t.jobs).where(t.jobs.c.key.in_(sorted(keys)))
                                                  .order_by(t.jobs.c.id))] if keys else []
    for j in jobs:
        j.pop("parameters", None)
    return {"neuron": {"model": mod.key, "model_id": mod.model_id, "revision": mod.revision, "site": site,
                       "layer": layer, "unit": unit}, "sites": sites, "prev": prev, "next": nxt, "stats": stats,
            "exemplars": exemplars, "descriptors": descriptors, "explanations": explanations, "concepts": concepts,
            "ranks": ranks, "effects": effects, "jobs": jobs}
