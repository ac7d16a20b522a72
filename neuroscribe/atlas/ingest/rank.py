"""A rank job's rows: every unit's position in every ranking of the layer (1 = ranked first), and
for each unit in a ranking's top-k the interventions' effect of that top-k set beside random sets.
"""

from __future__ import annotations

from neuroscribe.atlas import schema as t
from neuroscribe.atlas.ingest.folder import ResultFolder
from neuroscribe.atlas.ingest.writer import JobWriter

__all__ = ["index_rank", "attribute_of"]


def attribute_of(result: dict) -> str:
    names = result.get("label_names") or {}
    labels = sorted(result.get("classes") or {})
    classes = " / ".join(names.get(lb, lb) for lb in labels)
    return (f"{result.get('dataset') or 'labels'}: {classes}" if classes else result.get("dataset") or "attribute")[:200]


def index_rank(w: JobWriter, rf: ResultFolder) -> dict:
    res, prov = rf.result, rf.result["provenance"]
    model = w.model(prov["model"], prov.get("requested_revision"), prov["weight_sha256"])
    layer, n = int(res["layer"]), int(res["units"])
    ids = w.neurons(model, prov["site"], [(layer, u) for u in range(n)])
    attribute = attribute_of(res)
    rows, top = [], {}
    for r in res["rankings"]:
        scores = r.get("scores") or ()
        for pos, unit in enumerate(r["order"], start=1):
            rows.append({"neuron": ids[(layer, unit)], "method": r["method"][:60], "attribute": attribute,
                         "position": pos, "score": scores[unit] if unit < len(scores) else None, "n_ranked": n})
        top[r["method"]] = list(r["order"])
    w.rows(t.ranks, rows)
    effects = []
    for e in res.get("interventions") or ():
        order = top.get(e["ranking"])
        if order is None or e.get("mean_difference") is None:
            continue
        lo, hi = e.get("ci_difference") or (None, None)
        where = "at every position" if e.get("positions", "all") == "all" else "at the attribute word's tokens"
        label = (f"{e['mode']} the top-{e['k']} of {e['ranking']} {where}: {e['measure']} minus random "
                 f"{e['k']}-sets ({len(e.get('random_draws') or ())} sets, {e.get('n_examples')} examples)")
        for unit in order[: e["k"]]:
            effects.append({"neuron": ids[(layer, unit)], "kind": "intervention", "label": label[:300],
                            "value": e["mean_difference"], "low": lo, "high": hi, "baseline": e.get("mean_random"),
                            "detail": {"ranking": e["ranking"], "mode": e["mode"], "k": e["k"],
                                       "positions": e.get("positions", "all"),
                                       "mean_ranked": e.get("mean_ranked"), "p_random": e.get("p_random"),
                                       "p_floor": e.get("p_floor")}})
    w.rows(t.effects, effects)
    return {"layer": layer, "rankings": len(res["rankings"]), "rows": len(rows), "effects": len(effects)}
