"""A describe job's rows: per unit its statistics, exemplars (with per-token activations when the
folder has ``token_evidence.npz``), descriptors and explanations; the dataset's exemplar sentences.

Built column-wise, ``CHUNK`` units at a time (a Llama-3.1-8B MLP is 458,752 units), with the same
rows and text as row-by-row code would write: the token evidence's JSON columns come from
``evidence_text`` (in a helper process when large), each unit's float16 token values are one slice
of ``values`` where its exemplars lie back to back (as the describe job writes them), and the rows
go to a writer thread (``JobWriter.pipelined``) while the next chunk is built. The large files are
read by ``describe_files``; the garbage collector is paused meanwhile (``paused_gc``).
"""

from __future__ import annotations

import json

import numpy as np

from neuroscribe.atlas import schema as t
from neuroscribe.atlas.ingest.describe_files import evidence_meta, paused_gc, sentence_records
from neuroscribe.atlas.ingest.evidence_text import texts_in_order
from neuroscribe.atlas.ingest.folder import ResultFolder
from neuroscribe.atlas.ingest.json_columns import finite_or_none as _finite, keyed_rows
from neuroscribe.atlas.ingest.writer import JobWriter

__all__ = ["index_describe", "CHUNK"]

CHUNK = 32_768


def _sentences(rf: ResultFolder, rows: set[int]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    path = rf.file("sentences.jsonl")
    if not path.is_file():
        return out
    for rec in sentence_records(path):
        if rec.get("row") in rows:
            out[rec["row"]] = rec
    return out


def _evidence(rf: ResultFolder):
    """The token evidence's arrays, its json (without the sentences) and each sentence's spans as
    JSON text; Nones when the folder has none."""
    npz, meta = rf.file("token_evidence.npz"), rf.file("token_evidence.json")
    if not (npz.is_file() and meta.is_file()):
        return None, None, {}
    with np.load(npz) as z:
        ev = {k: z[k] for k in z.files}
    return (ev, *evidence_meta(meta))


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


def _evidence_rows(ev, layers: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Per unit, its row in the token evidence (-1: none); the last row of a (layer, unit) wins."""
    if ev is None:
        return np.full(len(layers), -1, np.int64)
    el, eu = ev["layer"].astype(np.int64), ev["unit"].astype(np.int64)
    if len(el) == len(layers) and np.array_equal(el, layers) and np.array_equal(eu, units):
        return np.arange(len(layers), dtype=np.int64)
    where = {k: i for i, k in enumerate(zip(el.tolist(), eu.tolist()))}
    return np.array([where.get(k, -1) for k in zip(layers.tolist(), units.tolist())], dtype=np.int64)


def _blobs(values: memoryview, offset: np.ndarray, length: np.ndarray, keep: np.ndarray, f16: np.ndarray) -> list:
    """Per row, the float16 bytes of its kept entries' values, in order (``values``: the bytes of
    ``f16``). One slice where the kept entries lie back to back, else a join."""
    n = len(offset)
    out: list = [b""] * n
    has = keep.any(1)
    r, c = np.nonzero(keep)
    off, ln = offset[r, c], length[r, c]
    same = r[1:] == r[:-1]
    broken = set(np.unique(r[1:][same & (off[1:] != off[:-1] + ln[:-1])]).tolist())
    first = np.argmax(keep, 1)
    last = keep.shape[1] - 1 - np.argmax(keep[:, ::-1], 1)
    ix = np.arange(n)
    start = offset[ix, first].astype(np.int64) * 2
    end = (offset[ix, last].astype(np.int64) + length[ix, last]) * 2
    for i, a, b, h in zip(range(n), start.tolist(), end.tolist(), has.tolist()):
        if not h:
            continue
        if i in broken:
            out[i] = b"".join(f16[o:o + k].tobytes() for o, k in zip(offset[i][keep[i]], length[i][keep[i]]))
        else:
            out[i] = bytes(values[max(0, a):max(0, b)])
    return out


def _exemplar_columns(ev, meta, er: np.ndarray, texts: dict, f16: np.ndarray, raw: memoryview) -> dict:
    offset, length = ev["offset"][er], ev["length"][er]
    levels = meta.get("levels")
    return {"rows": texts["rows"], "kinds": texts["kinds"], "activations": texts["activations"],
            "lengths": texts["lengths"], "levels": [None if levels is None else json.dumps(levels)] * len(er),
            "values": _blobs(raw, offset, length, ev["rows"][er] >= 0, f16)}


def _json_exemplars(u) -> dict:
    rows = list(u.get("exemplars") or ())
    return {"rows": json.dumps(rows), "kinds": json.dumps([0] * len(rows)),
            "activations": json.dumps([_finite(a) for a in u.get("activations") or ()]), "lengths": None,
            "levels": None, "values": None}


def _stats_columns(units: list, ev, er: np.ndarray, texts: dict | None, levels: list) -> dict:
    mean = [None] * len(units)
    hist = [None] * len(units)
    has = er >= 0
    if has.any():
        idx = np.flatnonzero(has)
        m = ev["mean"][er[idx]].astype(np.float64)
        for i, v, ok in zip(idx.tolist(), m.tolist(), np.isfinite(m).tolist()):
            mean[i] = v if ok else None
        for i, e, c in zip(idx.tolist(), texts["edges"], texts["counts"]):
            hist[i] = '{"edges": ' + e + ', "counts": ' + c + "}"
    verified = []
    for u in units:
        held = u.get("held_out")
        verified.append(sum(1 for h in {h["descriptor"]: h for h in held}.values() if h.get("verified"))
                        if held else 0)
    return {"max_activation": [_finite(u.get("max_activation")) for u in units], "mean_activation": mean,
            "firing_density": [_finite(u.get("firing_density")) for u in units],
            "status": [u.get("status") for u in units],
            "quantiles": keyed_rows(levels, [u.get("quantiles") for u in units]), "histogram": hist,
            "top_descriptor": [u["descriptors"][0]["descriptor"] if u.get("descriptors") else None for u in units],
            "n_descriptors": [len(u.get("descriptors") or ()) for u in units], "n_verified": verified,
            "n_exemplars": [len(u.get("exemplars") or ()) for u in units]}


def _descriptor_columns(units: list, ids: list) -> dict:
    flat = [(i, pos, d) for i, u in enumerate(units) if u.get("descriptors")
            for pos, d in enumerate(u["descriptors"])]
    held_of = {}
    for i, u in enumerate(units):
        if u.get("held_out") and u.get("descriptors"):
            held_of[i] = {h["descriptor"]: h for h in u["held_out"]}
    held = [(held_of.get(i) or {}).get(d["descriptor"]) or {} for i, _, d in flat]
    return {"neuron": [ids[i] for i, _, _ in flat], "position": [p for _, p, _ in flat],
            "descriptor": [d["descriptor"][:500] for _, _, d in flat], "count": [d.get("count") for _, _, d in flat],
            "f": [d.get("f") for _, _, d in flat], "base_rate": [d.get("base_rate") for _, _, d in flat],
            "enrichment": [_finite(d.get("enrichment")) for _, _, d in flat], "p": [d.get("p") for _, _, d in flat],
            "q": [d.get("q") for _, _, d in flat], "auroc": [h.get("auroc") for h in held],
            "verified": [h.get("verified") if h else None for h in held]}


def _write_chunk(w: JobWriter, part: list, ids: list, part_er: np.ndarray, has: np.ndarray, texts, ev, meta,
                 levels: list, f16, raw) -> int:
    """One chunk of units: its statistics and exemplars rows."""
    w.columns(t.unit_stats, {"neuron": ids, **_stats_columns(part, ev, part_er, texts, levels)})
    cols = {k: [None] * len(part) for k in ("rows", "kinds", "activations", "lengths", "levels", "values")}
    if has.size:
        for k, v in _exemplar_columns(ev, meta, part_er[has], texts, f16, raw).items():
            col = cols[k]
            for i, x in zip(has.tolist(), v):
                col[i] = x
    for i in np.flatnonzero(part_er < 0).tolist():
        for k, v in _json_exemplars(part[i]).items():
            cols[k][i] = v
    return w.columns(t.exemplars, {"neuron": ids, **cols})


def index_describe(w: JobWriter, rf: ResultFolder) -> dict:
    with paused_gc():
        return _index_describe(w, rf)


def _index_describe(w: JobWriter, rf: ResultFolder) -> dict:
    res, prov = rf.result, rf.result["provenance"]
    ev, meta, spans = _evidence(rf)
    model = w.model(prov["model"], prov.get("requested_revision"), prov["weight_sha256"],
                    (meta or {}).get("model_type"))
    units = res["units"]
    n = len(units)
    layers = np.fromiter((u["layer"] for u in units), np.int64, n)
    unit_ix = np.fromiter((u["unit"] for u in units), np.int64, n)
    ids = w.neuron_ids(model, prov["site"], layers, unit_ix).tolist()
    levels = list((res.get("validity") or {}).get("quantile_levels") or ())
    er = _evidence_rows(ev, layers, unit_ix)
    wanted: set[int] = set()
    if ev is not None and (er >= 0).any():
        r = ev["rows"][er[er >= 0]]
        wanted.update(np.unique(r[r >= 0]).tolist())
    for i in np.flatnonzero(er < 0).tolist():
        wanted.update(units[i].get("exemplars") or ())
    texts = _sentences(rf, wanted)
    listed = sorted(texts.items())
    del texts
    f16 = np.ascontiguousarray(ev["values"], dtype="<f2") if ev is not None else None
    raw = memoryview(f16).cast("B") if f16 is not None else None
    n_ex = 0
    with w.bulk(), w.pipelined():
        w.columns(t.sentences, {
            "row": [r for r, _ in listed], "text": [rec.get("text", "") for _, rec in listed],
            "label": [None if rec.get("label") is None else str(rec["label"])[:200] for _, rec in listed],
            "spans": [spans.get(str(r)) for r, _ in listed]})
        del listed
        starts = list(range(0, n, CHUNK))
        with_ev = [np.flatnonzero(er[a:a + CHUNK] >= 0) for a in starts]
        texts = (texts_in_order(ev, [er[a:a + CHUNK][h] for a, h in zip(starts, with_ev)]) if ev is not None
                 else iter([None] * len(starts)))
        try:
            for a, has, got in zip(starts, with_ev, texts):
                n_ex += _write_chunk(w, units[a:a + CHUNK], ids[a:a + CHUNK], er[a:a + CHUNK], has, got, ev, meta,
                                     levels, f16, raw)
        finally:
            getattr(texts, "close", lambda: None)()  # the helper process goes
        descs = _descriptor_columns(units, ids)
        w.columns(t.descriptors, descs)
    explained = _explanation_rows(res)
    expl_rows = [{"neuron": ids[i], **explained[(u["layer"], u["unit"])]}
                 for i, u in enumerate(units) if (u["layer"], u["unit"]) in explained]
    w.rows(t.explanations, expl_rows)
    w.search_texts("descriptor", set(descs["descriptor"]))
    w.search_texts("explanation", {e["text"] for e in expl_rows})
    return {"units": n, "descriptors": len(descs["descriptor"]), "exemplar_sets": n_ex,
            "token_evidence": ev is not None}
