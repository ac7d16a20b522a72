"""A describe job's rows: per unit its statistics, exemplars (with per-token activations when the
folder has ``token_evidence.npz``), descriptors and explanations; the dataset's exemplar sentences.
"""

from __future__ import annotations

import json

import numpy as np

from neuroscribe.atlas import schema as t
from neuroscribe.atlas.ingest.folder import ResultFolder
from neuroscribe.atlas.ingest.writer import JobWriter

__all__ = ["index_describe"]


def _finite(x):
    return None if x is None or not np.isfinite(x) else float(x)


def _sentences(rf: ResultFolder, rows: set[int]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    path = rf.file("sentences.jsonl")
    if not path.is_file():
        return out
    with path.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("row") in rows:
                out[rec["row"]] = rec
    return out


def _evidence(rf: ResultFolder):
    npz, meta = rf.file("token_evidence.npz"), rf.file("token_evidence.json")
    if not (npz.is_file() and meta.is_file()):
        return None, None
    with np.load(npz) as z:
        ev = {k: z[k] for k in z.files}
    return ev, json.loads(meta.read_text(encoding="utf-8"))


def _explanation_rows(result: dict) -> dict[tuple[int, int], dict]:
    rep = result.get("explanations") or {}
    out = {}
    for u in rep.get("units") or ():
        if not u.get("explanation"):
            continue
        det, sdet = u.get("detection") or {}, u.get("shuffled_detection") or {}
        out[(u["layer"], u["unit"])] = {"text": u["explanation"], "scores": {
            "detection": det.get("balanced_accuracy"), "shuffled_detection": sdet.get("balanced_accuracy"),
            "embedding_auroc": u.get("embedding_auroc"), "shuffled_embedding_auroc": u.get("shuffled_embedding_auroc"),
            "shuffled_explanation": u.get("shuffled_explanation"), "verified": u.get("verified"),
            "n_pos": det.get("n_pos"), "n_neg": det.get("n_neg"), "chance": 0.5}}
    return out


def index_describe(w: JobWriter, rf: ResultFolder) -> dict:
    res, prov = rf.result, rf.result["provenance"]
    ev, meta = _evidence(rf)
    model = w.model(prov["model"], prov.get("requested_revision"), prov["weight_sha256"],
                    (meta or {}).get("model_type"))
    site = prov["site"]
    units = res["units"]
    ids = w.neurons(model, site, [(u["layer"], u["unit"]) for u in units])
    levels = list((res.get("validity") or {}).get("quantile_levels") or ())
    ev_index = {}
    if ev is not None:
        ev_index = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(ev["layer"], ev["unit"]))}
    stats, exemplars, descs, expl_rows = [], [], [], []
    explained = _explanation_rows(res)
    wanted_rows: set[int] = set()
    for u in units:
        nid = ids[(u["layer"], u["unit"])]
        held = {h["descriptor"]: h for h in u.get("held_out") or ()}
        n_verified = sum(1 for h in held.values() if h.get("verified"))
        quant = {str(lv): q for lv, q in zip(levels, u.get("quantiles") or ()) if q is not None}
        i = ev_index.get((u["layer"], u["unit"]))
        hist = mean = None
        if i is not None:
            hist = {"edges": [float(x) for x in ev["hist_edges"][i]], "counts": [int(x) for x in ev["hist_counts"][i]]}
            mean = _finite(float(ev["mean"][i]))
            keep = ev["rows"][i] >= 0
            rows = [int(r) for r in ev["rows"][i][keep]]
            off, length = ev["offset"][i][keep], ev["length"][i][keep]
            values = b"".join(ev["values"][o:o + n].astype("<f2").tobytes() for o, n in zip(off, length))
            exemplars.append({"neuron": nid, "rows": rows, "kinds": [int(k) for k in ev["kind"][i][keep]],
                              "activations": [_finite(float(a)) for a in ev["activation"][i][keep]],
                              "lengths": [int(n) for n in length], "levels": meta.get("levels"), "values": values})
        else:
            rows = list(u.get("exemplars") or ())
            exemplars.append({"neuron": nid, "rows": rows, "kinds": [0] * len(rows),
                              "activations": [_finite(a) for a in u.get("activations") or ()], "lengths": None,
                              "levels": None, "values": None})
        wanted_rows.update(rows)
        top = u["descriptors"][0]["descriptor"] if u.get("descriptors") else None
        stats.append({"neuron": nid, "max_activation": _finite(u.get("max_activation")), "mean_activation": mean,
                      "firing_density": _finite(u.get("firing_density")), "status": u.get("status"),
                      "quantiles": quant, "histogram": hist, "top_descriptor": top,
                      "n_descriptors": len(u.get("descriptors") or ()), "n_verified": n_verified,
                      "n_exemplars": len(u.get("exemplars") or ())})
        for pos, d in enumerate(u.get("descriptors") or ()):
            h = held.get(d["descriptor"]) or {}
            descs.append({"neuron": nid, "position": pos, "descriptor": d["descriptor"][:500], "count": d.get("count"),
                          "f": d.get("f"), "base_rate": d.get("base_rate"), "enrichment": _finite(d.get("enrichment")),
                          "p": d.get("p"), "q": d.get("q"), "auroc": h.get("auroc"),
                          "verified": h.get("verified") if h else None})
        if (u["layer"], u["unit"]) in explained:
            expl_rows.append({"neuron": nid, **explained[(u["layer"], u["unit"])]})
    texts = _sentences(rf, wanted_rows)
    spans = (meta or {}).get("sentences") or {}
    w.rows(t.sentences, [{"row": r, "text": rec.get("text", ""), "label": None if rec.get("label") is None
                          else str(rec["label"])[:200], "spans": spans.get(str(r))} for r, rec in sorted(texts.items())])
    w.rows(t.unit_stats, stats)
    w.rows(t.exemplars, exemplars)
    w.rows(t.descriptors, descs)
    w.rows(t.explanations, expl_rows)
    w.search_texts("descriptor", {d["descriptor"] for d in descs})
    w.search_texts("explanation", {e["text"] for e in expl_rows})
    return {"units": len(units), "descriptors": len(descs), "exemplar_sets": len(exemplars),
            "token_evidence": ev is not None}
