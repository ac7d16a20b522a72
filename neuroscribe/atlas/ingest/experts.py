"""An experts job's rows: each concept's experts (AP >= tau) and its top units by AP (experts or
not), the causal check's effect of fixing a concept's experts, and the sweep's counts per model
and layer (kept on the job, ``provenance.sweep``: the sweep does not name its other models' units).
"""

from __future__ import annotations

from neuroscribe.atlas import schema as t
from neuroscribe.atlas.ingest.folder import ResultFolder
from neuroscribe.atlas.ingest.writer import JobWriter

__all__ = ["index_experts", "sweep_counts"]


def sweep_counts(result: dict) -> list[dict]:
    """Per sweep entry: model, revision, random init, weight hash and experts per concept and layer."""
    sweep = result.get("sweep") or {}
    return [{"model": e.get("model"), "revision": e.get("requested_revision"), "random_init": e.get("random_init"),
             "weight_sha256": e.get("weight_sha256"), "step": e.get("step"),
             "counts_per_layer": e.get("counts_per_layer") or {}} for e in sweep.get("entries") or ()]


def index_experts(w: JobWriter, rf: ResultFolder) -> dict:
    res, prov = rf.result, rf.result["provenance"]
    model = w.model(prov["model"], prov.get("requested_revision"), prov["weight_sha256"])
    tau = float(res["tau"])
    picked: dict[tuple[str, int, int], float] = {}
    for c in res["concepts"]:
        for u in (*c.get("experts", ()), *c.get("top", ())):
            picked[(c["concept"], u["layer"], u["unit"])] = float(u["ap"])
    ids = w.neurons(model, prov["site"], {(layer, unit) for _, layer, unit in picked})
    rows = [{"neuron": ids[(layer, unit)], "concept": concept[:200], "ap": ap, "tau": tau, "expert": ap >= tau}
            for (concept, layer, unit), ap in picked.items()]
    w.rows(t.concepts, rows)
    effects = []
    causal = res.get("causal") or {}
    experts = {c["concept"]: c.get("experts", ()) for c in res["concepts"]}
    for cc in causal.get("concepts") or ():
        if cc.get("skipped") or cc.get("mean_difference") is None:
            continue
        members = experts.get(cc["concept"], ())[: cc.get("n_units") or None]
        lo, hi = cc.get("ci_difference") or (None, None)
        label = (f"fixing the {cc.get('n_units')} experts of {cc['concept']!r}: change in log p of the concept word "
                 f"minus {cc.get('n_random')} random sets' ({cc.get('n_prompts')} prompts)")
        for u in members:
            nid = ids.get((u["layer"], u["unit"]))
            if nid is not None:
                effects.append({"neuron": nid, "kind": "causal", "label": label[:300], "value": cc["mean_difference"],
                                "low": lo, "high": hi, "baseline": cc.get("mean_random"),
                                "detail": {"concept": cc["concept"], "mean_experts": cc.get("mean_experts"),
                                           "ci_experts": cc.get("ci_experts"), "ci_random": cc.get("ci_random")}})
    w.rows(t.effects, effects)
    w.search_texts("concept", {c["concept"] for c in res["concepts"]})
    return {"concepts": len(res["concepts"]), "rows": len(rows), "effects": len(effects)}
