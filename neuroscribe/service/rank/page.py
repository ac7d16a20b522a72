"""The page of a ``neuroscribe rank`` result (docs/methods.md#c, Antverg & Belinkov 2022): ``DIR/rankings.html``.

One self-contained HTML file (the report kit's page shell: inline CSS, PNGs as base64 data URIs, no
script, no network; every string from the user or the result escaped) and ``DIR/report/`` with its
figures, each ``NAME.png`` beside ``NAME.csv`` (the numbers it plots; ``rank.figures``:
``probing_accuracy``, ``interventions``, ``agreement_k{K}``).

Top to bottom: title, the results at a glance (``rank.glance``: probing top-k against random-k,
interventions against random k-sets, agreement and stability against chance), warnings, summary,
encoded information, used information (only when the result has interventions), agreement, the
rankings (per method its top ``TOP_UNITS`` units, each linking to its atlas page, and params),
provenance (``rank.sections``).

``write_rank_page`` is what the job calls; ``rebuild_rank_page`` writes the same page again from a
finished result folder (``neuroscribe report DIR``).
"""

from __future__ import annotations

from pathlib import Path

from neuroscribe.jobs import RankResult
from neuroscribe.service.artefacts import write_text
from neuroscribe.service.rank.glance import rank_glance
from neuroscribe.service.rank.sections import (
    RANK_CSS,
    TOP_UNITS,
    agreement_section,
    encoded_section,
    rank_provenance,
    rankings_section,
    summary_section,
    used_section,
)
from neuroscribe.service.report.folder import read_result, replace_page
from neuroscribe.service.report.glance import glance_section
from neuroscribe.service.report.html import esc, render_document, render_section, render_sections, warnings_block

__all__ = ["write_rank_page", "rebuild_rank_page", "RANKINGS_HTML", "REPORT_DIR", "TOP_UNITS"]

RANKINGS_HTML = "rankings.html"
REPORT_DIR = "report"


def _count(n: int) -> str:
    return f"{n:,}"


def write_rank_page(out_dir: Path, result: RankResult, *, top_units: int = TOP_UNITS) -> Path:
    """Write ``out_dir/rankings.html`` and its figures into ``out_dir/report/``; returns the page's path."""
    root = Path(out_dir)
    fig_dir = root / REPORT_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    sections = [summary_section(result), encoded_section(result, fig_dir)]
    used = used_section(result, fig_dir)
    if used is not None:
        sections.append(used)
    sections += [agreement_section(result, fig_dir), rankings_section(result, max(1, int(top_units)))]
    p = result.provenance
    rev = p.requested_revision or p.revision
    title = f"neuroscribe rank — {p.model}" + (f" @ {rev}" if rev else "") + f" on {result.dataset}"
    intro = (f"<p>Neuron rankings (Antverg &amp; Belinkov 2022): the {_count(result.units)} units of layer "
             f"{esc(result.layer)} (site <code>{esc(p.site)}</code>) ranked for a {esc(result.level)}-level attribute "
             f"of <code>{esc(result.dataset)}</code> ({_count(result.n_examples)} examples, "
             f"{len(result.classes)} classes) by {esc(', '.join(r.method for r in result.rankings))}; "
             f"judged at k = {esc(', '.join(str(k) for k in result.ks))}.</p>")
    body = (glance_section(rank_glance(result), n_warnings=len(result.warnings))
            + warnings_block(result.warnings) + render_sections(sections, root)
            + render_section(rank_provenance(result, root), root))
    page = render_document(title, intro, body, version=p.neuroscribe_version, css=RANK_CSS)
    out = root / RANKINGS_HTML
    write_text(out, page)
    return out


def rebuild_rank_page(result_dir: str | Path) -> Path:
    """Write ``rankings.html`` and ``report/`` of a finished rank result folder again from its
    ``rankings.json``, as the job wrote them. Returns the page's path; ``InvalidInput("DIR", ...)``
    when the folder has no valid ``rankings.json``."""
    root = Path(result_dir)
    result = read_result(root, "rankings.json", RankResult, "rank")
    return replace_page(root, REPORT_DIR, lambda: write_rank_page(root, result))
