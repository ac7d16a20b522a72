"""``neuroscribe report DIR``: one self-contained HTML page for an experts result folder.

Writes ``DIR/report.html`` (PNGs embedded as data URIs, no script, no network) and ``DIR/report/``
with every figure as ``NAME.png`` next to ``NAME.csv``, the numbers it plots. The page opens with the
results at a glance (``experts.glance``: experts per concept against chance, stability, human
alignment, causal check and sweep against their baselines), then the sections of
``report_sections.SECTIONS``: experts, overlap and, when the result carries them, the analysis
suite's stability, human-alignment, sweep and causal sections (``suite_sections``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.artefacts import current_umask, write_text
from neuroscribe.service.experts.glance import experts_glance
from neuroscribe.service.report.folder import read_result
from neuroscribe.service.report.glance import glance_section
from neuroscribe.service.report.html import esc, render_document, render_sections

__all__ = ["write_report", "load_result", "REPORT_HTML", "REPORT_DIR"]

REPORT_HTML = "report.html"
REPORT_DIR = "report"


def load_result(result_dir: str | Path) -> ExpertsResult:
    """The ``ExpertsResult`` of ``result_dir/experts.json``; ``InvalidInput("DIR", ...)`` otherwise."""
    return read_result(result_dir, "experts.json", ExpertsResult, "experts")


def write_report(result_dir: str | Path, result: ExpertsResult | None = None) -> Path:
    """Write the report into ``result_dir`` and return the path of ``report.html``.

    ``result`` defaults to ``result_dir/experts.json``; pass it to report an in-memory result (the
    runner does, into its temporary folder before the rename). Figures are drawn into a temporary
    folder that then replaces ``report/``; the page is written last (itself atomically).
    """
    from neuroscribe.service.experts.report_sections import SECTIONS

    root = Path(result_dir)
    if result is None:
        result = load_result(root)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{REPORT_DIR}.tmp-", dir=root))
    except OSError as e:
        raise InvalidInput("DIR", f"cannot write the report into {root}: {e.strerror or e}") from None
    final = root / REPORT_DIR
    try:
        sections = [s for s in (build(result, tmp) for build in SECTIONS) if s is not None]
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    page = _page(result, [_relocate(s, tmp, final) for s in sections], root)
    out = root / REPORT_HTML
    write_text(out, page)
    return out


def _page(result: ExpertsResult, sections: list, root: Path) -> str:
    """The whole page; figure and file links are relative to ``root`` (the result folder)."""
    p = result.provenance
    title = f"neuroscribe experts — {p.model}" + (f" @ {p.requested_revision or p.revision}" if (p.requested_revision or p.revision) else "")
    names = ", ".join(c.concept for c in result.concepts)
    intro = (f"<p>{len(result.concepts)} concepts ({esc(names)}); site <code>{esc(p.site)}</code>, "
             f"{esc(p.pooling.value)} pooling, layers {esc(', '.join(map(str, result.layers)))} × "
             f"{esc(result.units_per_layer)} units; expert: AP ≥ tau = {esc(f'{result.tau:g}')}.</p>")
    glance = glance_section(experts_glance(result), n_warnings=len(result.warnings))
    return render_document(title, intro, glance + render_sections(sections, root), version=p.neuroscribe_version,
                           source="experts.json")


def _relocate(section, tmp: Path, final: Path):
    from dataclasses import replace

    figs = tuple(replace(f, png=final / f.png.relative_to(tmp), csv=final / f.csv.relative_to(tmp)) for f in section.figures)
    files = tuple(f.replace(tmp.name + "/", REPORT_DIR + "/", 1) for f in section.files)
    return replace(section, figures=figs, files=files)
