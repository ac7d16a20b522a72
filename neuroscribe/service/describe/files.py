"""The describe job's result folder, written by the embedded run and by the analyse stage alike.

Result folder (DIR):
    job.json               the job without its sentences (they are in sentences.jsonl)
    descriptions.json      the DescribeResult: every unit's descriptors with f, base rate,
                           enrichment, p (q), its exemplar rows and responses, consistency, reference
    sentences.jsonl        per sentence: row, text, label, raw descriptors, vocabulary names (null: failed)
    vocabulary.json/.csv   clusters (name, size, count, members) and noise descriptors
    units.csv              one line per unit: layer, unit, descriptors, consistency, reference, top
                           activation, status, valid exemplars, max activation, firing density, the
                           descriptions verified on the held-out half, and every one tested there
    consistency.csv        per-unit Jaccard between the halves (empty: no descriptor on either side)
    evaluation.csv         K, precision@K, recall@K beside the paper's numbers (with labels)
    explanations.csv       per explained unit: its explanation, detection and embedding scores on held-out
                           sentences beside the shuffled explanation's (docs/methods.md#b7)
    descriptions.html      one section per unit (``report/`` holds its figures, each PNG with a CSV)
    token_evidence.npz     per unit: its top exemplars and one sentence at each of its response
                           quantiles 0.5, 0.9, 0.99 (rows, kind, pooled activation), its activation at
                           every real token of each (offset/length into the flat float16 ``values``),
                           its mean response and a display histogram (docs/atlas.md, "Token-level
                           evidence"; docs/methods.md#b3); absent when the job sets token_evidence false
    token_evidence.json    the quantile levels, site, pooling, max_length and, per sentence used, the
                           character spans [start, end) of its real tokens, in the order of ``values``
    summary.txt
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from neuroscribe.jobs import DescribeJob, DescribeResult
from neuroscribe.service.artefacts import csv_text as _csv, summary_tail, write_json, write_text
from neuroscribe.service.describe.chance_text import chance_lines, pct_interval
from neuroscribe.service.describe.explanation_view import explanation_lines, write_explanations_csv

__all__ = ["write_describe_files", "format_describe_summary", "verification_line", "chance_lines"]


def _fmt(x) -> str:
    return "" if x is None else f"{x:.6g}" if isinstance(x, float) else str(x)


def format_describe_summary(result: DescribeResult, out: Path | None = None, timings: dict | None = None) -> str:
    d, v = result.descriptors, result.vocabulary
    lines = [verification_line(result),
             f"neuroscribe describe: {result.provenance.model} on {result.dataset} ({result.n_sentences} sentences)",
             f"  descriptors: {d.n_distinct_descriptors} distinct, {d.n_failed} failed generations"
             + (f" ({', '.join(f'{k}: {n}' for k, n in sorted(d.failures.items()))})" if d.failures else ""),
             f"  vocabulary: {v.n_names} names ({v.n_clusters} clusters, {v.n_noise} unclustered)",
             f"  units: {result.n_described} of {result.n_units} described (k = {result.n_exemplars} exemplars, "
             f"t = {result.threshold:g}%" + (f", FDR {result.fdr:g}" if result.fdr else "") + ")"]
    val = result.validity
    if val is not None:
        top = f"; top: {val.hubs[0].n_units} units" if val.hubs else ""
        lines.append(f"  firing ({val.firing_rule}): {val.n_firing} of {result.n_units} units fire, {val.n_dead} dead, "
                     f"{val.n_rare} rare, {val.n_too_few_valid} too few valid exemplars (< {val.min_valid_exemplars}), "
                     f"{val.n_no_descriptor} no descriptor passed, {val.n_described} described; "
                     f"{val.n_duplicates_collapsed} duplicate sentences collapsed; {val.n_hub_sentences} hub sentences "
                     f"(exemplars of >= {100 * val.hub_share:g}% of the units{top})")
    c = result.consistency
    if c is not None:
        mean = "undefined" if c.mean is None else f"{c.mean:.3f}"
        lines.append(f"  consistency: mean Jaccard {mean} over {c.n_defined} units ({c.n_both_empty} empty on both "
                     f"halves, {c.n_one_side_empty} on one; {c.n_calibration} and {c.n_validation} sentences per half"
                     + (f", k = {' and '.join(map(str, c.n_exemplars_per_half))} exemplars per half"
                        if c.n_exemplars_per_half else "") + "); "
                     "paper 0.95")
    e = result.evaluation
    if e is not None:
        pr = ", ".join(f"P@{k} {_pct(p)}{pct_interval(e.precision_ci, j)} R@{k} {_pct(r)}{pct_interval(e.recall_ci, j)}"
                       for j, (k, p, r) in enumerate(zip(e.ks, e.precision, e.recall)))
        lines.append(f"  evaluation vs labels ({e.n_units} units, recall over {e.n_recall_units}): {pr}; "
                     "paper P@2 75% R@2 50%")
        if e.baseline_sets:
            base = ", ".join(f"P@{k} {_pct(p)}{pct_interval(e.baseline_precision_ci, j)} R@{k} {_pct(r)}"
                             f"{pct_interval(e.baseline_recall_ci, j)}"
                             for j, (k, p, r) in enumerate(zip(e.ks, e.baseline_precision, e.baseline_recall)))
            lines.append(f"  chance: {e.baseline_sets} random exemplar sets ({e.baseline_n_units} described): {base}")
            lines += chance_lines(e)
        if e.bootstrap:
            lines.append(f"  [intervals: {100 * e.confidence:g}% bootstrap, {e.bootstrap} resamples of the units "
                         "(of the random sets for the chance row)]")
    lines += explanation_lines(result)
    lines += summary_tail(result.warnings, timings, out, "descriptions.html")
    return "\n".join(lines)


def verification_line(result: DescribeResult) -> str:
    """The summary's first line: verified descriptions against what chance alone verifies."""
    vr = result.verification
    if vr is None:
        return "verified descriptions: not tested (no held-out half: --no-consistency)"
    null = "not run" if vr.n_verified_null is None else str(vr.n_verified_null)
    return (f"verified descriptions: {vr.n_verified} of {vr.n_pairs} made on the calibration half ({vr.n_testable} "
            f"testable; {vr.n_units_verified} of {vr.n_units_tested} units) predict the unit on the {vr.n_heldout} "
            f"held-out sentences at FDR {vr.fdr:g}; chance alone (responses permuted): {null}")


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def write_describe_files(tmp: Path, job: DescribeJob, descriptors, vocab, result: DescribeResult, out: Path | None,
                         timings: dict | None, log: Callable[[str], None], *, evidence=None) -> str:
    """Every file of the result folder into ``tmp`` (the token evidence when ``evidence``, a
    ``workers.describe.token_evidence.TokenEvidence``, is given); returns the summary."""
    texts, labels = job.dataset.texts, job.dataset.labels
    write_json(tmp / "job.json", job.model_dump(mode="json", exclude={"dataset": {"texts", "labels"}}))
    write_text(tmp / "descriptions.json", result.model_dump_json(indent=1) + "\n")
    rows = []
    for i, text in enumerate(texts):
        rows.append(json.dumps({"row": i, "text": text, "label": None if labels is None else labels[i],
                                "descriptors": descriptors.descriptors[i], "names": vocab.sets[i]},
                               ensure_ascii=False) + "\n")
    write_text(tmp / "sentences.jsonl", "".join(rows))
    vdict = vocab.vocabulary.to_dict(examples=10)
    write_json(tmp / "vocabulary.json", vocab.vocabulary.to_dict(examples=10**9))
    write_text(tmp / "vocabulary.csv", _csv(
        ["name", "kind", "distinct_descriptors", "count", "members"],
        [[c.name, "cluster", c.size, c.count, "; ".join(m for m, _ in c.members[:20])]
         for c in vocab.vocabulary.clusters]
        + [[d, "kept" if d in result.vocabulary.kept else "noise", 1, n, d] for d, n in vocab.vocabulary.noise]))
    write_text(tmp / "units.csv", _csv(
        ["layer", "unit", "n_descriptors", "descriptors", "consistency", "reference", "top_activation", "status",
         "n_valid", "max_activation", "firing_density", "verified", "held_out_tested"],
        [[u.layer, u.unit, len(u.descriptors), "; ".join(f"{d.descriptor} ({d.f:.0f}%)" for d in u.descriptors),
          _fmt(u.consistency), "" if u.reference is None else "; ".join(u.reference), _fmt(u.activations[0]),
          _fmt(u.status), _fmt(u.n_valid), _fmt(u.max_activation), _fmt(u.firing_density),
          "; ".join(f"{h.descriptor} (AUROC {h.auroc:.2f}, q {h.q:.2g})" for h in u.held_out if h.verified),
          "; ".join(f"{h.descriptor} ({'' if h.auroc is None else f'AUROC {h.auroc:.2f}'})" for h in u.held_out)]
         for u in result.units]))
    if result.consistency is not None:
        write_text(tmp / "consistency.csv", _csv(["layer", "unit", "jaccard"],
                                                 [[u.layer, u.unit, _fmt(u.consistency)] for u in result.units]))
    if result.evaluation is not None:
        e = result.evaluation
        write_text(tmp / "evaluation.csv", _csv(
            ["k", "precision", "recall", "n_units", "n_recall_units", "random_sets_precision", "random_sets_recall",
             "paper_precision", "paper_recall"],
            [[k, _fmt(p), _fmt(r), e.n_units, e.n_recall_units, _fmt(bp), _fmt(br),
              _fmt(e.paper_precision_at_2) if k == 2 else "", _fmt(e.paper_recall_at_2) if k == 2 else ""]
             for k, p, r, bp, br in zip(e.ks, e.precision, e.recall, e.baseline_precision or (None,) * len(e.ks),
                                        e.baseline_recall or (None,) * len(e.ks))]))
    write_text(tmp / "summary.txt", format_describe_summary(result, None, timings) + "\n")  # no machine path
    summary = format_describe_summary(result, out, timings)
    write_explanations_csv(tmp, result)
    if evidence is not None:
        evidence.save(tmp)
    from neuroscribe.service.describe.page import write_describe_page

    write_describe_page(tmp, result, texts, labels, vdict)
    return summary
