"""A synthetic describe result folder for ``bench/bench_atlas.py``: the files a describe job writes
(``job.json``, ``descriptions.json``, ``sentences.jsonl``, ``token_evidence.npz`` and ``.json``,
``summary.txt``), shaped as ``DescribeResult`` and docs/atlas.md "Token-level evidence", at any size.

Full size is Llama-3.1-8B's MLP: 32 layers x 14,336 units = 458,752 units, 20 top exemplars and 3
quantile samples each, ~30 tokens per sentence, 200,000 dataset sentences, 0-3 descriptors per unit
from a vocabulary of 2,000 names (held-out tests for each), 2,000 explained units. Smaller runs
scale the sentences with the units (the vocabulary stays 2,000 names). Everything is drawn with a
seeded numpy generator; ``build(folder, units)`` writes it once and reuses it (``.complete``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

FULL_UNITS = 32 * 14_336
FULL_SENTENCES = 200_000
UNITS_PER_LAYER = 14_336
TOP = 20
LEVELS = (0.5, 0.9, 0.99)
QUANTILE_LEVELS = (0.25, 0.5, 0.75, 0.9, 0.99)
VOCABULARY = 2_000
EXPLAINED = 2_000
HIST_BINS = 30
STATUSES = ("no descriptor passed", "too few valid exemplars", "rare", "dead")
WORDS = ("cat dog bus guitar phone battery screen headset music movie book food pizza coffee tea water car "
         "train plane hotel room price money shipping delivery quality size color red blue green black white "
         "love hate good bad great poor broken cheap expensive fast slow easy hard happy sad angry funny boring "
         "family child baby mother father friend gift birthday christmas summer winter rain sun garden kitchen "
         "shoe shirt dress bag watch camera lens light lamp chair table bed sofa door window glass cup plate "
         "knife spoon soap shampoo cream skin hair dental health doctor medicine pain sleep game toy puzzle ball "
         "sport football tennis golf bike running gym yoga software update app computer laptop keyboard mouse "
         "printer cable charger speaker sound noise volume bass signal wifi battery screen time date number "
         "question answer review star refund return customer service support warranty seller package box").split()


def shape(units: int) -> tuple[int, int, int]:
    """(layers, units per layer, sentences) of a run of about ``units`` units."""
    layers = max(1, math.ceil(units / UNITS_PER_LAYER))
    upl = math.ceil(units / layers)
    sentences = max(2_000, round(FULL_SENTENCES * layers * upl / FULL_UNITS))
    return layers, upl, sentences


def _names(rng) -> list[str]:
    out: set[str] = set()
    while len(out) < VOCABULARY:
        k = int(rng.integers(1, 4))
        out.add(" ".join(WORDS[i] for i in rng.integers(0, len(WORDS), k)))
    return sorted(out)


def _sentences(rng, n: int):
    """Texts, their token spans and counts (words ~ tokens, 10-50 per sentence, mean 30)."""
    counts = rng.integers(10, 51, n).astype(np.int32)
    word_ids = rng.integers(0, len(WORDS), int(counts.sum()))
    lens = np.array([len(w) for w in WORDS], np.int64)[word_ids]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    texts, spans = [], []
    for i in range(n):
        a, b = bounds[i], bounds[i + 1]
        texts.append(" ".join(WORDS[j] for j in word_ids[a:b]))
        ln = lens[a:b]
        start = np.concatenate([[0], np.cumsum(ln[:-1] + 1)])
        spans.append(np.stack([start, start + ln], 1).tolist())
    return texts, spans, counts


def _unit_rows(rng, n_units: int, n_sent: int, e: int) -> np.ndarray:
    """Distinct sentence rows per unit (a random start and positive steps that sum below n)."""
    step = rng.integers(1, max(2, n_sent // (e + 1)), (n_units, e))
    return ((rng.integers(0, n_sent, (n_units, 1)) + np.cumsum(step, 1)) % n_sent).astype(np.int32)


def _token_evidence(rng, folder: Path, layers: int, upl: int, rows: np.ndarray, act: np.ndarray,
                    counts: np.ndarray, spans: list) -> None:
    n, e = rows.shape
    length = counts[rows].astype(np.int32)
    offset = np.concatenate([[0], np.cumsum(length.ravel())[:-1]]).astype(np.int64).reshape(n, e)
    total = int(length.sum())
    values = np.empty(total, np.float16)
    for a in range(0, total, 20_000_000):
        b = min(total, a + 20_000_000)
        values[a:b] = rng.standard_normal(b - a, np.float32)
    kind = np.broadcast_to(np.r_[np.zeros(TOP), np.arange(1, len(LEVELS) + 1)].astype(np.int8), (n, e))
    edges = np.sort(rng.normal(0.0, 1.0, (n, HIST_BINS + 1)).astype(np.float32), axis=1)
    np.savez(folder / "token_evidence.npz", layer=np.repeat(np.arange(layers, dtype=np.int32), upl),
             unit=np.tile(np.arange(upl, dtype=np.int32), layers), rows=rows, kind=np.ascontiguousarray(kind),
             activation=act, offset=offset, length=length, values=values,
             mean=rng.normal(0.0, 0.2, n).astype(np.float32),
             hist_counts=rng.integers(0, 5_000, (n, HIST_BINS)).astype(np.int32), hist_edges=edges)
    used = np.unique(rows)
    meta = {"levels": list(LEVELS), "site": "mlp_post", "pooling": "max", "max_length": 128,
            "sentences": {str(int(r)): spans[r] for r in used}}
    (folder / "token_evidence.json").write_text(json.dumps(meta, separators=(",", ":")), encoding="utf-8")


def _unit(rng_u, layer, unit, names, rows, act, n_desc, status, q, held) -> dict:
    descs = []
    for j in range(n_desc):
        descs.append({"descriptor": names[held[j]], "count": 10 + j, "f": 100.0 - 10 * j, "base_rate": float(q[0]),
                      "enrichment": float(q[1]), "p": float(q[2]), "q": None})
    ho = [{"descriptor": d["descriptor"], "n_pos": 40, "n_neg": 960, "auroc": float(q[3]), "ap": float(q[4]),
           "ap_chance": 0.04, "p": float(q[2]), "q": float(q[2]) * 3, "verified": bool(j == 0)}
          for j, d in enumerate(descs)]
    return {"layer": layer, "unit": unit, "descriptors": descs, "exemplars": rows, "activations": act,
            "n_failed": 0, "consistency": float(q[5]) if n_desc else None, "reference": None, "status": status,
            "n_valid": TOP, "exemplar_counts": [1] * TOP, "firing_threshold": 0.0, "n_firing": int(rng_u),
            "firing_density": float(q[6]), "max_activation": act[0], "quantiles": [float(x) for x in q[7:12]],
            "held_out": ho}


def _descriptions(rng, folder: Path, layers: int, upl: int, n_sent: int, rows: np.ndarray, act: np.ndarray,
                  names: list[str]) -> None:
    n = rows.shape[0]
    n_desc = rng.choice(4, n, p=[0.3, 0.3, 0.25, 0.15])
    picks = rng.integers(0, len(names), (n, 3))
    status = np.where(n_desc > 0, "described", np.array(STATUSES)[rng.integers(0, len(STATUSES), n)])
    floats = rng.random((n, 12))
    floats[:, 7:12] = np.sort(floats[:, 7:12] * act[:, :1], 1)
    firing = rng.integers(1, n_sent, n)
    top_rows, top_act = rows[:, :TOP].tolist(), act[:, :TOP].astype(np.float64).tolist()
    explained = rng.choice(n, min(EXPLAINED, n), replace=False)
    head = {"kind": "describe", "schema_version": 1, "dataset": "synthetic.tsv", "n_sentences": n_sent,
            "layers": list(range(layers)), "units_per_layer": upl, "top_k_percent": 100.0 * TOP / n_sent,
            "n_exemplars": TOP, "threshold": 50.0, "fdr": None, "fdr_family": "tested",
            "descriptors": {"n_sentences": n_sent, "n_distinct_sentences": n_sent, "n_failed": 0, "failures": {},
                            "n_distinct_descriptors": 9_000, "mean_per_sentence": 2.1, "samples": 1, "min_votes": 1,
                            "retries": 1, "n_retried": 0, "n_recovered": 0, "n_dropped_by_vote": 0},
            "vocabulary": {"n_descriptors": 9_000, "largest_cluster": 40, "n_names": len(names), "n_clusters": 1_500,
                           "n_noise": 500, "kept": ["positive", "negative"], "params": {}},
            "n_units": n, "n_described": int((n_desc > 0).sum())}
    with open(folder / "descriptions.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(head)[:-1] + ', "units": [')
        for a in range(0, n, 20_000):
            chunk = [_unit(firing[i], i // upl, i % upl, names, top_rows[i], top_act[i], int(n_desc[i]),
                           str(status[i]), floats[i], picks[i]) for i in range(a, min(n, a + 20_000))]
            f.write(("" if a == 0 else ", ") + json.dumps(chunk)[1:-1])
        expl = [{"layer": int(i // upl), "unit": int(i % upl), "verified": bool(k % 2),
                 "explanation": f"Sentences about {names[picks[i, 0]]} and {names[picks[i, 1]]}.", "failure": None,
                 "n_firing_shown": 8, "n_contrast_shown": 5, "shuffled_from": [0, 2],
                 "shuffled_explanation": f"Sentences about {names[picks[i, 2]]}.",
                 "detection": {"balanced_accuracy": 0.8, "true_positive_rate": 0.8, "true_negative_rate": 0.8,
                               "n_pos": 5, "n_neg": 5, "n_unparsed": 0},
                 "shuffled_detection": {"balanced_accuracy": 0.5, "true_positive_rate": 0.4,
                                        "true_negative_rate": 0.6, "n_pos": 5, "n_neg": 5, "n_unparsed": 0},
                 "embedding_auroc": 0.7, "shuffled_embedding_auroc": 0.5, "embedding_n_pos": 8, "embedding_n_neg": 32}
                for k, i in enumerate(sorted(explained))]
        tail = {"consistency": None, "evaluation": None,
                "validity": {"firing_rule": "response > 0", "quantile_levels": list(QUANTILE_LEVELS),
                             "quantile_method": "synthetic", "min_valid": 5, "min_valid_fraction": 0.5,
                             "min_valid_exemplars": 10, "n_duplicates_collapsed": 0, "n_firing": n, "n_dead": 0,
                             "n_rare": 0, "n_too_few_valid": 0, "n_no_descriptor": 0, "n_described": n,
                             "hub_share": 0.05, "n_hub_sentences": 0, "hubs": []},
                "verification": None,
                "explanations": {"prompt_version": "explanation-v1", "detection_prompt_version": "detection-v1",
                                 "n_requested": len(expl), "detection_sentences": 5, "units": expl},
                "provenance": {"neuroscribe_version": "0.1.0", "schema_version": 1,
                               "model": "meta-llama/Llama-3.1-8B", "revision": None, "requested_revision": None,
                               "weight_sha256": "ab" * 32, "site": "mlp_post", "pooling": "max",
                               "data_sha256": "cd" * 32, "environment": {"device": "cuda"},
                               "created_at": "2026-01-01T00:00:00+00:00"},
                "warnings": []}
        f.write("], " + json.dumps(tail)[1:])


def build(folder: Path, units: int, *, seed: int = 0, log=print) -> Path:
    """The synthetic result folder of about ``units`` units under ``folder`` (built once)."""
    layers, upl, n_sent = shape(units)
    out = Path(folder) / f"describe-{layers}x{upl}"
    if (out / ".complete").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = layers * upl
    names = _names(rng)
    texts, spans, counts = _sentences(rng, n_sent)
    e = TOP + len(LEVELS)
    rows = _unit_rows(rng, n, n_sent, e)
    act = np.concatenate([-np.sort(-rng.gamma(2.0, 1.0, (n, TOP)), 1), rng.random((n, len(LEVELS)))], 1)
    act = act.astype(np.float32)
    _token_evidence(rng, out, layers, upl, rows, act, counts, spans)
    del spans
    with open(out / "sentences.jsonl", "w", encoding="utf-8") as f:
        for r, text in enumerate(texts):
            f.write(json.dumps({"row": r, "text": text, "label": str(r % 2), "descriptors": [], "names": []}) + "\n")
    del texts
    _descriptions(rng, out, layers, upl, n_sent, rows, act, names)
    job = {"schema_version": 1, "seed": 0, "kind": "describe", "dataset": {"name": "synthetic.tsv"},
           "model": {"name": "meta-llama/Llama-3.1-8B", "revision": None, "site": "mlp_post", "pooling": "max"},
           "generator": {"backend": "fake"}, "top_k_percent": 100.0 * TOP / n_sent, "token_evidence": True}
    (out / "job.json").write_text(json.dumps(job, indent=2), encoding="utf-8")
    (out / "summary.txt").write_text(f"synthetic describe result: {n} units, {n_sent} sentences\n", encoding="utf-8")
    (out / ".complete").write_text("")
    log(f"built {out} ({n:,} units, {n_sent:,} sentences) in {time.perf_counter() - t0:.0f} s; "
        f"{sum(p.stat().st_size for p in out.iterdir()) / 1e6:,.0f} MB")
    return out
