"""The sections of a describe result's page (docs/methods.md#b), top to bottom: summary,
consistency, evaluation, vocabulary (``Section`` objects of the report kit), the units (the table of
the described units, ``describe.unit_table``) and the provenance.
"""

from __future__ import annotations

import math
from pathlib import Path

from neuroscribe.jobs import DescribeResult
from neuroscribe.service.describe.chance_text import chance_difference, pct_interval
from neuroscribe.service.describe.figures import consistency_histogram, precision_recall_figure
from neuroscribe.service.report.html import Section, esc, provenance_section, table

__all__ = ["summary_section", "consistency_section", "evaluation_section", "vocabulary_section",
           "describe_provenance", "TOP_CLUSTERS", "MEMBER_EXAMPLES"]

TOP_CLUSTERS = 30
MEMBER_EXAMPLES = 8

_RESULT_FILES = ("descriptions.json", "sentences.jsonl", "vocabulary.json", "vocabulary.csv", "units.csv",
                 "consistency.csv", "evaluation.csv", "explanations.csv", "summary.txt", "job.json")


# --------------------------------------------------------------------------- formatting


def _g(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}g}"


def _pct(x: float | None) -> str:
    """A fraction as a percent (precision and recall are fractions)."""
    return "—" if x is None else f"{100 * x:.1f}%"


def _count(n: int) -> str:
    return f"{n:,}"


# --------------------------------------------------------------------------- sections


def summary_section(result: DescribeResult) -> Section:
    d, v = result.descriptors, result.vocabulary
    failures = "; ".join(f"{k}: {_count(n)}" for k, n in sorted(d.failures.items()))
    mean = "" if d.mean_per_sentence is None else f" ({d.mean_per_sentence:.2f} per sentence)"
    kept = f"; kept as themselves: {', '.join(v.kept)}" if v.kept else ""
    fdr = "none" if result.fdr is None else f"{result.fdr:g} (Benjamini-Hochberg over the {result.fdr_family} family)"
    share = f" ({100 * result.n_described / result.n_units:.1f}%)" if result.n_units else ""
    rows = [
        ("sentences", f"{_count(result.n_sentences)} ({_count(d.n_distinct_sentences)} distinct)"),
        ("failed generations", _count(d.n_failed) + (f" ({failures})" if failures else "")),
        ("distinct descriptors", _count(d.n_distinct_descriptors) + mean),
        ("vocabulary", f"{_count(v.n_names)} names: {_count(v.n_clusters)} clusters, {_count(v.n_noise)} unclustered"
                       + kept),
        ("exemplars per unit k", f"{_count(result.n_exemplars)} (top {result.top_k_percent:g}% of the sentences)"),
        ("threshold t", f"{result.threshold:g}% of a unit's exemplars"),
        ("FDR", fdr),
        ("units", f"{_count(result.n_units)} ({len(result.layers)} layers × {_count(result.units_per_layer)})"),
        ("units described", f"{_count(result.n_described)}{share}"),
    ]
    vr = result.verification
    if vr is not None:
        null = "not run" if vr.n_verified_null is None else _count(vr.n_verified_null)
        rows.insert(0, ("verified descriptions", f"{_count(vr.n_verified)} of {_count(vr.n_pairs)} made on the "
                                                 f"calibration half predict the unit on the {_count(vr.n_heldout)} "
                                                 f"held-out sentences (FDR {vr.fdr:g}; {_count(vr.n_units_verified)} "
                                                 f"units); chance alone (responses permuted): {null}"))
    val = result.validity
    if val is not None:
        hubs = "; ".join(f"“{h.text if len(h.text) <= 60 else h.text[:59] + '…'}” ({_count(h.n_units)} units)"
                         for h in val.hubs[:3])
        rows += [
            ("firing", f"{val.firing_rule}: {_count(val.n_firing)} of {_count(result.n_units)} units fire"),
            ("valid exemplars", f"distinct sentences the unit fires on, with descriptors; a description needs ≥ "
                                f"{val.min_valid_exemplars} (the larger of {val.min_valid} and "
                                f"{val.min_valid_fraction:g} k)"),
            ("units not described", f"dead {_count(val.n_dead)}, rare {_count(val.n_rare)}, too few valid exemplars "
                                    f"{_count(val.n_too_few_valid)}, no descriptor passed {_count(val.n_no_descriptor)}"),
            ("duplicate sentences collapsed", _count(val.n_duplicates_collapsed)),
            ("hub sentences", f"{_count(val.n_hub_sentences)} are exemplars of ≥ {100 * val.hub_share:g}% of the "
                              "units" + (f"; most: {hubs}" if hubs else "")),
        ]
    return Section("Summary", body=table(("", "value"), rows), anchor="summary")


def consistency_section(result: DescribeResult, fig_dir: Path) -> Section:
    c = result.consistency
    if c is None:
        return Section("Split-half consistency", anchor="consistency",
                       body='<p class="muted">Not computed for this run (the job asked for no consistency).</p>')
    fig = consistency_histogram(result, fig_dir)
    rows = [("mean Jaccard", _g(c.mean), f"{c.paper_mean:g}"), ("median Jaccard", _g(c.median), ""),
            ("units defined (described on ≥ 1 half)", _count(c.n_defined), ""),
            ("units empty on both halves (excluded)", _count(c.n_both_empty), ""),
            ("units empty on one half (J = 0)", _count(c.n_one_side_empty), ""),
            ("units", _count(c.n_units), ""),
            ("halves (calibration / validation)", f"{_count(c.n_calibration)} / {_count(c.n_validation)}", "")]
    aside = table(("", "ours", "paper"), rows, {1, 2})
    return Section("Split-half consistency", figures=(fig,), aside=aside, anchor="consistency")


def evaluation_section(result: DescribeResult, fig_dir: Path) -> Section | None:
    e = result.evaluation
    if e is None:
        return None
    fig = precision_recall_figure(result, fig_dir)
    none = (None,) * len(e.ks)

    def diff(j):
        d = (e.precision_minus_chance_ci or none)[j]
        return "" if d is None else chance_difference(d)

    rows = [(k, _pct(p) + pct_interval(e.precision_ci, j), _pct(r) + pct_interval(e.recall_ci, j),
             _pct(bp) + pct_interval(e.baseline_precision_ci, j), _pct(br) + pct_interval(e.baseline_recall_ci, j), diff(j),
             f"{100 * e.paper_precision_at_2:.0f}%" if k == 2 else "", f"{100 * e.paper_recall_at_2:.0f}%" if k == 2 else "")
            for j, (k, p, r, bp, br) in enumerate(zip(e.ks, e.precision, e.recall, e.baseline_precision or none,
                                                      e.baseline_recall or none))]
    pr = table(("K", "precision", "recall", "chance precision", "chance recall", "precision − chance",
                "paper precision", "paper recall"), rows, {0, 1, 2, 3, 4, 5, 6, 7})
    names = table(("label", "reference name"), sorted(e.label_names.items()))
    aside = (f"{pr}<p>Precision over the {_count(e.n_units)} units with at least one descriptor; recall over the "
             f"{_count(e.n_recall_units)} of them whose exemplars carry a reference label (the label of ≥ t = "
             f"{result.threshold:g}% of them); {_count(e.n_units_total)} units in all. Chance: "
             f"{_count(e.baseline_sets)} random sets of {result.n_exemplars} sentences treated as units "
             f"({_count(e.baseline_n_units)} of them described): what descriptor and label frequencies give with no "
             f"model." + (f" Intervals: {100 * e.confidence:g}% bootstrap over the units (the random sets for chance), "
                          f"{_count(e.bootstrap)} resamples; precision − chance resamples both sides."
                          if e.bootstrap else "") + f"</p>{names}")
    body = ('<p class="note">The labels (e.g. sentiment) are the only reference here: a correct topical descriptor '
            '(say "battery") that no label names counts as a miss, so this precision is a lower bound of what '
            "annotators would judge; the paper's numbers come from annotated descriptors.</p>")
    return Section("Evaluation against the reference labels", figures=(fig,), aside=aside, body=body,
                   anchor="evaluation")


def vocabulary_section(result: DescribeResult, vocabulary: dict) -> Section:
    clusters = sorted(vocabulary.get("clusters") or [], key=lambda c: (-int(c.get("count", 0)), str(c.get("name"))))
    noise = vocabulary.get("noise") or []
    rows = []
    for c in clusters[:TOP_CLUSTERS]:
        members = c.get("members") or []
        ex = ", ".join(f"{m.get('descriptor')} ({m.get('count')})" for m in members[:MEMBER_EXAMPLES])
        more = int(c.get("size", len(members))) - min(len(members), MEMBER_EXAMPLES)
        rows.append((c.get("name"), c.get("size"), c.get("count"), ex + (f", … {more} more" if more > 0 else "")))
    n_desc = vocabulary.get("n_descriptors", result.vocabulary.n_descriptors)
    n_names = vocabulary.get("n_names", result.vocabulary.n_names)
    intro = (f"<p>{_count(int(n_desc))} distinct descriptors clustered into {_count(int(n_names))} names: "
             f"{_count(len(clusters))} clusters (each named by its most frequent member) and "
             f"{_count(len(noise))} noise descriptors that stay themselves"
             + (f" (reference label names kept out of clustering: {esc(', '.join(result.vocabulary.kept))})"
                if result.vocabulary.kept else "") + ".</p>")
    shown = (f"<h3>The {min(TOP_CLUSTERS, len(clusters))} largest clusters of {_count(len(clusters))}, by count</h3>"
             + table(("name", "size", "count", "example members (count)"), rows, {1, 2})) if rows else \
        '<p class="muted">No cluster: every descriptor stays itself.</p>'
    params = vocabulary.get("params") or result.vocabulary.params
    ptxt = ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("kept", "n_descriptors"))
    body = intro + shown + (f'<p class="muted">HDBSCAN: {esc(ptxt)}. Size: distinct descriptors; count: sentences '
                            "holding a member.</p>" if ptxt else "")
    return Section("Descriptor vocabulary", body=body, anchor="vocabulary")


def describe_provenance(result: DescribeResult, root: Path) -> Section:
    return provenance_section(result.provenance, "none recorded", root, _RESULT_FILES)
