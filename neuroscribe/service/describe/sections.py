"""The sections of a describe result's page (docs/methods.md#b), top to bottom: summary,
consistency, evaluation, vocabulary (``Section`` objects of the report kit), the units (one
``<details>`` element per unit: ``units_html``) and the provenance.

A page may hold ~10,000 units, so a unit costs no figure and little markup: its line (layer:unit,
descriptors, J, reference, and why an undescribed unit is not described: its status) is the
``<summary>``; inside, its descriptor table, one line on its firing, and its first
``max_exemplars`` exemplars as a list (activation, label, sentence).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from neuroscribe.jobs import DescribeResult
from neuroscribe.jobs.describe import UnitReport
from neuroscribe.service.describe.chance_text import chance_difference, pct_interval
from neuroscribe.service.describe.figures import consistency_histogram, precision_recall_figure
from neuroscribe.service.report.html import Section, esc, provenance_section, table

__all__ = ["summary_section", "consistency_section", "evaluation_section", "vocabulary_section", "units_html",
           "describe_provenance", "UNIT_CSS", "TOP_CLUSTERS", "MEMBER_EXAMPLES"]

TOP_CLUSTERS = 30
MEMBER_EXAMPLES = 8

# units: short selectors instead of a class on every cell (the page may hold 10,000 units)
UNIT_CSS = """
details{border-bottom:1px solid #eee;padding:.15em 0} summary{cursor:pointer}
summary b{font-variant-numeric:tabular-nums;display:inline-block;min-width:4.5em}
summary i{color:#777;font-style:normal;font-size:.9em}
details>table,details>ol,details>p{margin:.3em 0 .5em 1.2em}
table.d td+td{text-align:right;font-variant-numeric:tabular-nums}
ol.x{font-size:.9em;padding-left:2.2em} ol.x b{font-weight:400;font-variant-numeric:tabular-nums;color:#0072b2}
ol.x i{font-style:normal;color:#777} h3{font-size:1.05em;margin-top:1.5em}
"""

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


def _text(s) -> str:
    """Escape element content (``&``, ``<``, ``>``); quotes need no escape outside attributes."""
    return html.escape(str(s), quote=False)


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
    return Section("Summary", body=table(("", "value"), rows))


def consistency_section(result: DescribeResult, fig_dir: Path) -> Section:
    c = result.consistency
    if c is None:
        return Section("Split-half consistency",
                       body='<p class="muted">Not computed for this run (the job asked for no consistency).</p>')
    fig = consistency_histogram(result, fig_dir)
    rows = [("mean Jaccard", _g(c.mean), f"{c.paper_mean:g}"), ("median Jaccard", _g(c.median), ""),
            ("units defined (described on ≥ 1 half)", _count(c.n_defined), ""),
            ("units empty on both halves (excluded)", _count(c.n_both_empty), ""),
            ("units empty on one half (J = 0)", _count(c.n_one_side_empty), ""),
            ("units", _count(c.n_units), ""),
            ("halves (calibration / validation)", f"{_count(c.n_calibration)} / {_count(c.n_validation)}", "")]
    aside = table(("", "ours", "paper"), rows, {1, 2})
    return Section("Split-half consistency", figures=(fig,), aside=aside)


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
    return Section("Evaluation against the reference labels", figures=(fig,), aside=aside, body=body)


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
    return Section("Descriptor vocabulary", body=body)


def _unit(u: UnitReport, texts: Sequence[str], labels: Sequence[str] | None, max_exemplars: int,
          max_chars: int, has_q: bool, show_j: bool) -> str:
    names = ", ".join(d.descriptor for d in u.descriptors)
    bits = [u.status] if u.status and u.status != "described" else []
    if show_j:
        bits.append(f"J {_g(u.consistency, 2)}" if u.consistency is not None else "J undefined")
    if u.reference is not None:
        bits.append("ref " + (", ".join(u.reference) if u.reference else "none"))
    line = f"<b>{u.layer}:{u.unit}</b>" + (f" {_text(names)}" if names else "") + \
        (f" <i>{_text(' · '.join(bits))}</i>" if bits else "")
    parts = [f'<details id="u{u.layer}-{u.unit}"><summary>{line}</summary>']
    if u.descriptors:
        head = "<tr><th>descriptor</th><th>f %</th><th>base %</th><th>enrichment</th><th>p</th>" + \
            ("<th>q</th>" if has_q else "") + "</tr>"
        body = "".join(
            f"<tr><td>{_text(d.descriptor)}</td><td>{d.f:.1f}</td><td>{d.base_rate:.1f}</td><td>{_g(d.enrichment)}</td>"
            f"<td>{_g(d.p, 2)}</td>" + (f"<td>{_g(d.q, 2)}</td>" if has_q else "") + "</tr>"
            for d in u.descriptors)
        parts.append(f'<table class="d">{head}{body}</table>')
    if u.n_firing is not None:
        parts.append(f'<p class="muted">{_text(u.status or "")}: fires on {_count(u.n_firing)} sentences '
                     f"({_pct(u.firing_density)}) above {_g(u.firing_threshold)}; max {_g(u.max_activation)}; "
                     f"{u.n_valid} valid exemplars</p>")
    if u.n_failed:
        parts.append(f'<p class="muted">{u.n_failed} of {len(u.exemplars)} exemplars without descriptors '
                     "(generation failed; left out of f).</p>")
    items = []
    for row, act in list(zip(u.exemplars, u.activations))[:max_exemplars]:
        if 0 <= row < len(texts):
            text = " ".join(str(texts[row]).split())
            if len(text) > max_chars:
                text = text[: max_chars - 1] + "…"
        else:
            text = f"(row {row} is not among the {len(texts)} sentences)"
        lab = ""
        if labels is not None and 0 <= row < len(labels):
            lab = f"<i>[{_text(labels[row])}]</i> "
        items.append(f"<li><b>{act:.3g}</b> {lab}{_text(text)}</li>")
    if items:
        parts.append(f'<ol class="x">{"".join(items)}</ol>')
    rest = len(u.exemplars) - min(len(u.exemplars), max_exemplars)
    if rest > 0:
        parts.append(f'<p class="muted">{rest} more exemplars in descriptions.json</p>')
    parts.append("</details>")
    return "".join(parts)


def units_html(result: DescribeResult, texts: Sequence[str], labels: Sequence[str] | None, max_exemplars: int,
           max_chars: int) -> str:
    ordered = sorted(result.units, key=lambda u: (u.layer, u.unit))
    described = [u for u in ordered if u.descriptors]
    undescribed = [u for u in ordered if not u.descriptors]
    has_q = result.fdr is not None or any(d.q is not None for u in described for d in u.descriptors)
    show_j = result.consistency is not None
    per_layer = {}
    for u in ordered:
        n, m = per_layer.get(u.layer, (0, 0))
        per_layer[u.layer] = (n + 1, m + bool(u.descriptors))
    layer_table = table(("layer", "units", "described"), [(k, n, m) for k, (n, m) in sorted(per_layer.items())],
                        {0, 1, 2})
    key = ("<p>One line per unit: <b>layer:unit</b>, its assigned descriptors (best f first)"
           + (", J = its split-half Jaccard" if show_j else "")
           + (", ref = the reference label names carried by ≥ t% of its exemplars" if result.evaluation else "")
           + ". Open a unit for its descriptors (f: % of its exemplars holding the descriptor; base: % of all "
           "sentences; enrichment = f / base; p: one-sided hypergeometric"
           + ("; q: Benjamini-Hochberg" if has_q else "")
           + f") and its first {max_exemplars} exemplars, best first: activation"
           + (", [label]" if labels is not None else "")
           + f", sentence (cut at {max_chars} characters; full text in sentences.jsonl).</p>")
    out = [f"<section><h2>Units: {_count(len(described))} of {_count(len(ordered))} described</h2>", key,
           layer_table, f"<h3>Described units ({_count(len(described))})</h3>"]
    if not described:
        out.append('<p class="muted">No unit reached the threshold.</p>')
    out.extend(_unit(u, texts, labels, max_exemplars, max_chars, has_q, show_j) for u in described)
    out.append(f"<h3>Undescribed units ({_count(len(undescribed))})</h3>")
    if undescribed:
        why = {}
        for u in undescribed:
            why[u.status or "no descriptor"] = why.get(u.status or "no descriptor", 0) + 1
        out.append(f'<p class="muted">{_count(len(undescribed))} units with no descriptor at f ≥ t = '
                   f"{result.threshold:g}%" + (": " + ", ".join(f"{_text(k)} {_count(n)}" for k, n in why.items())
                                               if result.validity is not None else "") + ".</p>")
    out.extend(_unit(u, texts, labels, max_exemplars, max_chars, has_q, show_j) for u in undescribed)
    out.append("</section>")
    return "".join(out)


def describe_provenance(result: DescribeResult, root: Path) -> Section:
    return provenance_section(result.provenance, "none recorded", root, _RESULT_FILES)
