"""The describe figures of docs/results (issue 13): a before/after table over finished result
folders, read from their ``descriptions.json``, and the top verified descriptions of the last one.

    .venv/bin/python bench/describe_figures.py LABEL=DIR [LABEL=DIR ...] [--top 20]

Rows: units described; descriptions verified on the held-out half and what the permuted-response
null verifies; units verified; P@K with its 95% bootstrap interval, the chance row (random exemplar
sets) with its interval, and P@K minus chance (its interval's verdict); split-half consistency (k
per half); described units that never fire and descriptions resting on fewer valid exemplars than
the minimum (both targets 0); failed generations, samples and votes; explanation scores (detection
balanced accuracy, embedding AUROC) beside their shuffled baselines. Makes no model call.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuroscribe.jobs import DescribeResult
from neuroscribe.service.describe.chance_text import chance_difference, pct_interval


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _score(s) -> str:
    if s is None or s.mean is None:
        return "—"
    return (f"{s.mean:.2f}{'' if not s.ci else f' [{s.ci[0]:.2f}–{s.ci[1]:.2f}]'} vs shuffled "
            f"{'—' if s.shuffled_mean is None else f'{s.shuffled_mean:.2f}'} (n = {s.n_units}; {s.verdict})")


def rows(r: DescribeResult) -> dict[str, str]:
    out: dict[str, str] = {}
    d, v, vr, e, c = r.descriptors, r.validity, r.verification, r.evaluation, r.consistency
    out["sentences (distinct)"] = f"{r.n_sentences} ({d.n_distinct_sentences})"
    out["samples / min votes / retries"] = f"{d.samples} / {d.min_votes} / {d.retries}"
    out["failed generations"] = (f"{d.n_failed}" + (f" ({d.n_recovered} of {d.n_retried} retried samples recovered)"
                                                    if d.n_retried else ""))
    out["pairs dropped by the vote"] = str(d.n_dropped_by_vote)
    out["units described"] = f"{r.n_described} of {r.n_units}"
    if vr is not None:
        out["descriptions verified (held-out)"] = f"{vr.n_verified} of {vr.n_pairs} (FDR {vr.fdr:g})"
        out["... verified with responses permuted"] = str(vr.n_verified_null)
        out["units verified"] = f"{vr.n_units_verified} of {vr.n_units_tested}"
    if e is not None:
        for j, k in enumerate(e.ks):
            diff = e.precision_minus_chance_ci[j] if e.precision_minus_chance_ci else None
            base = e.baseline_precision[j] if e.baseline_precision else None
            out[f"P@{k} / chance"] = (f"{_pct(e.precision[j])}{pct_interval(e.precision_ci, j)} / {_pct(base)}"
                                      f"{pct_interval(e.baseline_precision_ci, j)}: "
                                      + ("—" if diff is None else chance_difference(diff)))
    if c is not None:
        k = " and ".join(map(str, c.n_exemplars_per_half)) or "?"
        out["consistency (mean Jaccard)"] = "undefined" if c.mean is None else f"{c.mean:.3f} (k = {k} per half)"
    described = [u for u in r.units if u.descriptors]
    never = sum(1 for u in described if not u.n_firing)
    need = v.min_valid_exemplars if v is not None else 0
    few = sum(1 for u in described if (u.n_valid or 0) < need)
    out["described units that never fire"] = f"{never} of {len(described)}"
    out[f"descriptions on < {need} valid exemplars"] = f"{few} of {len(described)}"
    x = getattr(r, "explanations", None)
    if x is not None:
        out["units explained"] = f"{x.n_explained} of {x.n_selected}"
        out["detection (balanced accuracy)"] = _score(x.detection)
        out["embedding (AUROC)"] = _score(x.embedding)
    return out


def top_verified(r: DescribeResult, n: int, texts: list[str]) -> list[str]:
    best = []
    for u in r.units:
        for h in u.held_out:
            if h.verified:
                best.append((h.auroc or 0.0, u, h))
    best.sort(key=lambda t: -t[0])
    lines = ["| unit | descriptor | AUROC | q | n+ | first three exemplars |", "| --- | --- | --- | --- | --- | --- |"]
    for auroc, u, h in best[:n]:
        rows_ = " / ".join(texts[x][:60].replace("|", "/") for x in u.exemplars[:3])
        lines.append(f"| {u.layer}:{u.unit} | {h.descriptor} | {auroc:.2f} | {h.q:.1e} | {h.n_pos} | {rows_} |")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args(argv)
    results = {}
    for spec in args.runs:
        label, sep, folder = spec.partition("=")
        if not sep:
            ap.error(f"{spec!r} is not LABEL=DIR")
        results[label] = DescribeResult.model_validate_json((Path(folder) / "descriptions.json").read_text())
    table = {label: rows(r) for label, r in results.items()}
    keys = list(dict.fromkeys(k for t in table.values() for k in t))
    print("| | " + " | ".join(table) + " |")
    print("| --- |" + " --- |" * len(table))
    for k in keys:
        print(f"| {k} | " + " | ".join(t.get(k, "—") for t in table.values()) + " |")
    label, folder = list(results)[-1], Path(args.runs[-1].partition("=")[2])
    texts = [json.loads(line)["text"] for line in (folder / "sentences.jsonl").read_text().splitlines() if line]
    print(f"\nTop {args.top} verified descriptions of {label} (held-out AUROC):")
    print("\n".join(top_verified(results[label], args.top, texts)))


if __name__ == "__main__":
    main()
