"""Section builders: ``(result, fig_dir) -> Section | None``, run in ``SECTIONS`` order.

A builder returns ``None`` when the result holds nothing for it, so the page never shows empty
placeholders. The page (after the results-at-a-glance box, ``experts.glance``): the result's
warnings (if any), experts per concept and per layer, concept overlap, then the analysis suite of
``suite_sections`` (stability, human alignment, sweep, causal check: each only when the result
carries it), the top units (each linking to its atlas page) and the provenance.
"""

from __future__ import annotations

from pathlib import Path

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.experts.figures import concept_overlap, experts_per_concept, experts_per_layer
from neuroscribe.service.report.atlas_links import ATLAS_NOTE, atlas_link, provenance_key
from neuroscribe.service.report.html import Section, esc, provenance_list, table
from neuroscribe.service.experts.suite_sections import (
    alignment_section,
    causal_section,
    stability_section,
    sweep_section,
    warnings_section,
)

__all__ = ["SECTIONS", "experts_section", "overlap_section", "top_units_section", "provenance_section"]

N_PERMUTATIONS = 10_000


def experts_section(result: ExpertsResult, fig_dir: Path) -> Section:
    return Section("Experts per concept and per layer",
                   figures=(experts_per_concept(result, fig_dir), experts_per_layer(result, fig_dir)), anchor="experts")


def _category_aside(result: ExpertsResult, fig, fig_dir: Path) -> tuple[str, tuple[str, ...]]:
    """The within- vs between-category test beside the heatmap, or why there is none."""
    from neuroscribe.workers.experts.overlap import category_overlap

    categories = {c.concept: c.category for c in result.concepts}
    if not any(categories.values()):
        return ('<p class="muted">No concept has a category, so there is no within- vs between-category '
                "test (give categories as <code>--concept cat:animal</code>).</p>", ())
    try:
        stats = category_overlap(fig.extra["matrix"], fig.extra["names"], categories,
                                 n_permutations=N_PERMUTATIONS, seed=result.provenance.seed)
    except InvalidInput as e:
        return f'<p class="note">No category test: {esc(e.message)}.</p>', ()
    rows = [("within-category mean Jaccard", f"{stats.within_mean:.3f}", stats.n_within_pairs),
            ("between-category mean Jaccard", f"{stats.between_mean:.3f}", stats.n_between_pairs),
            ("difference (within − between)", f"{stats.difference:+.3f}", ""),
            ("permutation p (one-sided)", f"{stats.p_value:.4g}", "")]
    out = fig_dir / "category_overlap.csv"
    out.write_text(
        "statistic,value\n" + "".join(f"{k},{v!r}\n" for k, v in [
            ("within_mean", stats.within_mean), ("between_mean", stats.between_mean),
            ("difference", stats.difference), ("p_value", stats.p_value),
            ("n_permutations", stats.n_permutations), ("n_within_pairs", stats.n_within_pairs),
            ("n_between_pairs", stats.n_between_pairs), ("seed", stats.seed)]),
        encoding="utf-8")
    groups: dict[str, list[str]] = {}
    for concept, cat in stats.categories.items():
        groups.setdefault(cat, []).append(concept)
    cats = "; ".join(f"<b>{esc(k)}</b>: {esc(', '.join(v))}" for k, v in groups.items())
    excluded = (f"<p class=\"muted\">Without a category (left out): {esc(', '.join(stats.excluded))}.</p>"
                if stats.excluded else "")
    aside = (f"<h3>Within vs between categories</h3>{table(('', 'value', 'pairs'), rows, {1, 2})}"
             f"<p>{stats.n_permutations:,} permutations of the category labels (seed {stats.seed}); "
             f"p = (1 + #{{permuted ≥ observed}}) / (1 + permutations).</p><p>Categories: {cats}.</p>{excluded}")
    return aside, (out.relative_to(fig_dir.parent).as_posix(),)


def overlap_section(result: ExpertsResult, fig_dir: Path) -> Section | None:
    fig = concept_overlap(result, fig_dir)
    if fig is None:  # one concept: nothing to compare
        return None
    aside, files = _category_aside(result, fig, fig_dir)
    return Section("Concept overlap", figures=(fig,), aside=aside, files=files, anchor="overlap")


def _units_table(result: ExpertsResult, c, key: str) -> str:
    """A concept's top units; each unit links to its atlas page."""
    experts = {(u.layer, u.unit) for u in c.experts}
    body = "".join(
        f'<tr><td class="num">{u.layer}</td><td class="num">{atlas_link(key, u.layer, u.unit, str(u.unit))}</td>'
        f'<td class="num">{u.ap:.3f}</td><td>{"yes" if (u.layer, u.unit) in experts else ""}</td></tr>'
        for u in c.top)
    return ("<table><thead><tr><th>layer</th><th>unit</th><th>AP</th><th>expert</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def top_units_section(result: ExpertsResult, fig_dir: Path) -> Section:
    key = provenance_key(result.provenance)
    parts = [ATLAS_NOTE, '<div style="display:flex;flex-wrap:wrap;gap:0 2em">']
    for c in result.concepts:
        cat = f" <span class=\"muted\">({esc(c.category)})</span>" if c.category else ""
        parts.append(f"<div><h3>{esc(c.concept)}{cat} — {len(c.experts)} experts</h3>{_units_table(result, c, key)}</div>")
    parts.append("</div>")
    files = tuple(f for f in ("ap.csv", "experts.json") if (fig_dir.parent / f).is_file())
    return Section("Top units per concept", body="".join(parts), files=files, anchor="top-units")


def provenance_section(result: ExpertsResult, fig_dir: Path) -> Section:
    prov = provenance_list(result.provenance, "user-supplied sentences")
    reasons = list(dict.fromkeys(k for d in result.drops.values() for k in d))
    if reasons:
        rows = [(c.concept, *(result.drops.get(c.concept, {}).get(k, 0) for k in reasons)) for c in result.concepts]
        drops = "<h3>Sentences generated, kept and dropped</h3>" + table(("concept", *reasons), rows,
                                                                          set(range(1, len(reasons) + 1)))
    else:
        drops = '<p class="muted">No sentence drop counts (the sentences were given by the user).</p>'
    root = fig_dir.parent
    return Section("Provenance", body=prov + drops, anchor="provenance",
                   files=tuple(f for f in ("job.json", "sentences.jsonl") if (root / f).is_file()))


SECTIONS = (warnings_section, experts_section, overlap_section, stability_section, alignment_section, sweep_section,
            causal_section, top_units_section, provenance_section)
