"""The neurons behind each search result: for a descriptor the units that hold it (best f
first), for an explanation the unit explained, for a concept its experts (best AP first)."""

from __future__ import annotations

from sqlalchemy import select

from neuroscribe.atlas import schema as t

__all__ = ["with_neurons", "PER_RESULT"]

PER_RESULT = 10


def _neurons(conn, kind: str, text: str) -> list[dict]:
    n, m = t.neurons.c, t.models.c
    table, value, where = {
        "descriptor": (t.descriptors, t.descriptors.c.f, t.descriptors.c.descriptor == text),
        "explanation": (t.explanations, None, t.explanations.c.text == text),
        "concept": (t.concepts, t.concepts.c.ap, (t.concepts.c.concept == text) & t.concepts.c.expert.is_(True)),
    }[kind]
    cols = [m.key.label("model"), n.site, n.layer, n.unit]
    q = (select(*cols, *(() if value is None else (value.label("value"),)))
         .select_from(table).join(t.neurons, n.id == table.c.neuron).join(t.models, m.id == n.model).where(where))
    if value is not None:
        q = q.order_by(value.desc(), n.layer, n.unit)
    return [dict(r._mapping) for r in conn.execute(q.limit(PER_RESULT))]


def with_neurons(engine, docs: list[dict]) -> list[dict]:
    with engine.connect() as conn:
        return [{**d, "neurons": _neurons(conn, d["kind"], d["text"])} for d in docs]
