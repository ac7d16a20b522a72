"""The atlas's reads for lists: models, jobs, the neurons table (filters, sort, pages), concepts.
One neuron with everything known about it: ``atlas.neuron_view``; search: ``atlas.search_index``.

The neurons table shows, per neuron, the statistics of the most recently indexed job that has
any (a describe job), with its best AP over concepts and its best rank position over methods.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine

from neuroscribe.atlas import schema as t

__all__ = ["list_models", "list_jobs", "list_neurons", "list_concepts", "concept_view", "SORTS", "model_row",
           "NotFound"]

SORTS = ("unit", "layer", "max_activation", "mean_activation", "firing_density", "n_descriptors", "n_verified",
         "best_ap", "best_rank")
STATUSES = ("described", "no descriptor passed", "too few valid exemplars", "rare", "dead")  # jobs.describe.UnitStatus
SUMMARY_IN_LIST = 600  # characters of a job's summary in lists (the whole of it: one job)


class NotFound(LookupError):
    """No such model, neuron or concept (the API answers 404 with the key)."""


def model_row(conn, key: str):
    m = conn.execute(select(t.models).where(t.models.c.key == key)).first()
    if m is None:
        raise NotFound(f"model {key[:200]!r}")
    return m


def list_models(engine: Engine) -> list[dict]:
    n, m = t.neurons.c, t.models.c
    with engine.connect() as conn:
        models = conn.execute(select(t.models).order_by(m.key)).all()
        per = conn.execute(select(n.model, n.site, n.layer, func.count()).group_by(n.model, n.site, n.layer)).all()
    out = []
    for mod in models:
        rows = [r for r in per if r[0] == mod.id]
        layers: dict[int, int] = {}
        for _, _site, layer, c in rows:
            layers[layer] = layers.get(layer, 0) + c
        out.append({"key": mod.key, "model_id": mod.model_id, "revision": mod.revision,
                    "weight_sha256": mod.weight_sha256, "model_type": mod.model_type, "random_init": mod.random_init,
                    "layers": [{"layer": k, "n_neurons": v} for k, v in sorted(layers.items())],
                    "sites": sorted({r[1] for r in rows}), "n_neurons": sum(layers.values())})
    return out


def job_dict(r, summary_chars: int | None = None) -> dict:
    summary = r.summary if summary_chars is None or r.summary is None else r.summary[:summary_chars]
    prov = dict(r.provenance or {})
    return {"key": r.key, "kind": r.kind, "result_dir": r.result_dir, "created_at": r.created_at,
            "indexed_at": r.indexed_at, "summary": summary, "parameters": r.parameters, "provenance": prov,
            "models": prov.pop("atlas_models", []), "service_job": len(r.key) == 32}


def list_jobs(engine: Engine, limit: int = 50, offset: int = 0) -> dict:
    j = t.jobs.c
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t.jobs)).scalar()
        rows = conn.execute(select(t.jobs).order_by(j.id.desc()).limit(limit).offset(offset)).all()
    items = [job_dict(r, SUMMARY_IN_LIST) for r in rows]
    for item in items:
        item.pop("parameters")  # the job as submitted: on the neuron page's jobs and in the result folder
    return {"total": total, "items": items}


def _latest_stats():
    """Per neuron, its stats row of the latest job."""
    s = t.unit_stats.c
    latest = select(s.neuron, func.max(s.id).label("sid")).group_by(s.neuron).subquery()
    return latest


def _latest_describe_job(conn, model_key: str) -> int | None:
    """The newest indexed job with statistics of ``model_key``'s neurons (a describe job)."""
    j = t.jobs.c
    for row in conn.execute(select(j.id, j.provenance).where(j.kind == "describe").order_by(j.id.desc())):
        if model_key in ((row.provenance or {}).get("atlas_models") or ()):
            return row.id
    return None


def _best(conn, ids: list[int], method: str | None) -> tuple[dict, dict]:
    """Best AP and best rank position of the neurons ``ids`` (for one page of the table)."""
    c, r = t.concepts.c, t.ranks.c
    ap = dict(conn.execute(select(c.neuron, func.max(c.ap)).where(c.neuron.in_(ids)).group_by(c.neuron)).all())
    q = select(r.neuron, func.min(r.position)).where(r.neuron.in_(ids))
    if method:
        q = q.where(r.method == method)
    return ap, dict(conn.execute(q.group_by(r.neuron)).all())


def list_neurons(engine: Engine, *, model: str | None = None, layer: int | None = None, site: str | None = None,
                 descriptor: str | None = None, concept: str | None = None, method: str | None = None,
                 status: str | None = None, sort: str = "unit", order: str = "asc", limit: int = 50,
                 offset: int = 0) -> dict:
    """One page of the neurons table. With ``model``, the statistics are its newest describe job's (one
    indexed join); best AP and best rank are computed for the page's rows only, unless the table is
    sorted or filtered by them."""
    n, s, m = t.neurons.c, t.unit_stats.c, t.models.c
    by_best = sort in ("best_ap", "best_rank") or bool(method) or bool(concept)
    with engine.connect() as conn:
        model_id = None if model is None else model_row(conn, model).id
        q = select(n.id.label("nid"), m.key.label("model"), n.site, n.layer, n.unit, s.status, s.max_activation,
                   s.mean_activation, s.firing_density, s.top_descriptor, s.n_descriptors, s.n_verified) \
            .select_from(t.neurons).join(t.models, m.id == n.model)
        if model is not None:
            job = _latest_describe_job(conn, model)
            q = q.outerjoin(t.unit_stats, and_(s.neuron == n.id, s.job == (job if job is not None else -1)))
        else:
            latest = _latest_stats()
            q = q.outerjoin(latest, latest.c.neuron == n.id).outerjoin(t.unit_stats, s.id == latest.c.sid)
        best_ap = best_rank = None
        if by_best:
            best_ap = (select(t.concepts.c.neuron, func.max(t.concepts.c.ap).label("best_ap"))
                       .group_by(t.concepts.c.neuron).subquery())
            rank_q = select(t.ranks.c.neuron, func.min(t.ranks.c.position).label("best_rank"))
            if method:
                rank_q = rank_q.where(t.ranks.c.method == method)
            best_rank = rank_q.group_by(t.ranks.c.neuron).subquery()
            q = q.add_columns(best_ap.c.best_ap, best_rank.c.best_rank) \
                .outerjoin(best_ap, best_ap.c.neuron == n.id).outerjoin(best_rank, best_rank.c.neuron == n.id)
        conds = []
        if model_id is not None:
            conds.append(n.model == model_id)
        if layer is not None:
            conds.append(n.layer == layer)
        if site:
            conds.append(n.site == site)
        if status:
            conds.append(s.status == status)
        if method:
            conds.append(best_rank.c.best_rank.is_not(None))
        if descriptor:
            d = t.descriptors.c
            conds.append(n.id.in_(select(d.neuron).where(func.lower(d.descriptor).contains(descriptor.lower()))))
        if concept:
            c = t.concepts.c
            conds.append(n.id.in_(select(c.neuron).where(and_(c.concept == concept, c.expert.is_(True)))))
        if conds:
            q = q.where(and_(*conds))
        key = {"unit": n.unit, "layer": n.layer, "max_activation": s.max_activation,
               "mean_activation": s.mean_activation, "firing_density": s.firing_density,
               "n_descriptors": s.n_descriptors, "n_verified": s.n_verified,
               "best_ap": best_ap.c.best_ap if best_ap is not None else None,
               "best_rank": best_rank.c.best_rank if best_rank is not None else None}[sort]
        direction = key.desc() if order == "desc" else key.asc()
        q = q.order_by(direction.nulls_last(), n.layer, n.unit)
        total = conn.execute(select(func.count()).select_from(q.order_by(None).subquery())).scalar()
        rows = [dict(r._mapping) for r in conn.execute(q.limit(limit).offset(offset))]
        if not by_best and rows:
            ap, rank = _best(conn, [r["nid"] for r in rows], method)
            for r in rows:
                r["best_ap"], r["best_rank"] = ap.get(r["nid"]), rank.get(r["nid"])
    for r in rows:
        r.pop("nid")
    return {"total": total, "items": rows}


def list_concepts(engine: Engine) -> list[dict]:
    c = t.concepts.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.concept, func.count().filter(c.expert.is_(True)), func.max(c.ap))
                            .group_by(c.concept).order_by(c.concept)).all()
    return [{"concept": r[0], "n_experts": r[1], "best_ap": r[2]} for r in rows]


def concept_view(engine: Engine, name: str) -> dict:
    """A concept's experts across models, revisions and layers, with counts per (model, layer) from
    every experts job (the sweep's other models included)."""
    c, n, m, j = t.concepts.c, t.neurons.c, t.models.c, t.jobs.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(m.key.label("model"), m.model_id, m.revision, n.site, n.layer, n.unit, c.ap, c.tau, c.expert,
                   j.key.label("job"))
            .select_from(t.concepts).join(t.neurons, n.id == c.neuron).join(t.models, m.id == n.model)
            .join(t.jobs, j.id == c.job).where(c.concept == name).order_by(c.ap.desc(), n.layer, n.unit)).all()
        jobs = conn.execute(select(j.key, j.provenance).where(j.kind == "experts")).all()
    if not rows:
        raise NotFound(f"concept {name[:200]!r}")
    counts = []
    for job in jobs:
        for e in (job.provenance or {}).get("sweep") or ():
            per = (e.get("counts_per_layer") or {}).get(name)
            if per:
                counts.append({"job": job.key, "model": e.get("model"), "revision": e.get("revision"),
                               "random_init": e.get("random_init"), "step": e.get("step"),
                               "counts": {str(k): v for k, v in per.items()}})
    per_layer: dict[tuple[str, int], int] = {}
    for r in rows:
        if r.expert:
            per_layer[(r.model, r.layer)] = per_layer.get((r.model, r.layer), 0) + 1
    return {"concept": name, "experts": [dict(r._mapping) for r in rows if r.expert],
            "experts_per_layer": [{"model": k[0], "layer": k[1], "n": v} for k, v in sorted(per_layer.items())],
            "top": [dict(r._mapping) for r in rows if not r.expert][:50], "counts": counts}
