"""The page of a ``neuroscribe describe`` result (docs/methods.md#b): ``DIR/descriptions.html``.

One self-contained HTML file (the report kit's page shell: inline CSS, PNGs as base64 data URIs,
nothing from the network; every string from the user or the result escaped) and ``DIR/report/``
with its figures, each ``NAME.png`` beside ``NAME.csv`` (the numbers it plots; ``describe.figures``).

Top to bottom: title, the results at a glance (``describe.glance``: verified descriptions, units
described, P@K, consistency and explanations, each beside its baseline), warnings, summary,
consistency, evaluation, vocabulary, explanations (when asked: docs/methods.md#b7), the units (one
sortable, filterable table of the described units, each linking to its atlas page; the others
counted in one line: ``describe.unit_table``), then the provenance (``describe.sections``).

``write_describe_page`` is what the job calls; ``rebuild_describe_page`` writes the same page again
from a finished result folder (``neuroscribe report DIR``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import DescribeResult
from neuroscribe.service.artefacts import write_text
from neuroscribe.service.describe.glance import describe_glance
from neuroscribe.service.describe.sections import (
    consistency_section,
    describe_provenance,
    evaluation_section,
    summary_section,
    vocabulary_section,
)
from neuroscribe.service.describe.explanation_view import explanation_section
from neuroscribe.service.describe.unit_table import UNIT_CSS, UNIT_SCRIPT, units_section
from neuroscribe.service.report.folder import read_result, replace_page
from neuroscribe.service.report.glance import glance_section
from neuroscribe.service.report.html import esc, render_document, render_section, render_sections, warnings_block
from neuroscribe.workers.textfiles import read_lines

__all__ = ["write_describe_page", "rebuild_describe_page", "DESCRIPTIONS_HTML", "REPORT_DIR",
           "PAGE_VOCABULARY_EXAMPLES"]

DESCRIPTIONS_HTML = "descriptions.html"
REPORT_DIR = "report"
SENTENCE_BUDGET = 400_000  # characters of exemplar sentences on one page (default cut)
MIN_SENTENCE_CHARS, MAX_SENTENCE_CHARS = 60, 240
# members per cluster in the vocabulary the job gives the page (``Vocabulary.to_dict(examples=10)``;
# vocabulary.json holds them all)
PAGE_VOCABULARY_EXAMPLES = 10


def _count(n: int) -> str:
    return f"{n:,}"


def write_describe_page(out_dir: Path, result: DescribeResult, texts: Sequence[str], labels: Sequence[str] | None,
                        vocabulary: dict, *, max_exemplars: int = 1, max_sentence_chars: int | None = None) -> Path:
    """Write ``out_dir/descriptions.html`` and its figures into ``out_dir/report/``; returns the page's path.

    ``texts[row]`` (and ``labels[row]``) are the sentences the exemplar rows index; ``vocabulary`` is
    shaped like ``Vocabulary.to_dict(examples=...)``. Each described unit shows its first
    ``max_exemplars`` exemplars (the atlas page has them all), each sentence cut at
    ``max_sentence_chars`` characters (the full texts are in sentences.jsonl). The default cut
    spends about ``SENTENCE_BUDGET`` characters on sentences in all (240 per sentence for up to
    ~1,600 described units, down to 60), so the page stays light whatever the sentences' length:
    ~0.25 MB for 400 described units of 9,216, a few MB if all of them were described.
    """
    root = Path(out_dir)
    fig_dir = root / REPORT_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    max_exemplars = max(0, int(max_exemplars))
    if max_sentence_chars is None:
        shown = max(1, sum(1 for u in result.units if u.descriptors) * max_exemplars)
        max_sentence_chars = min(MAX_SENTENCE_CHARS, max(MIN_SENTENCE_CHARS, SENTENCE_BUDGET // shown))
    max_chars = max(2, int(max_sentence_chars))
    sections = [summary_section(result), consistency_section(result, fig_dir)]
    ev = evaluation_section(result, fig_dir)
    if ev is not None:
        sections.append(ev)
    sections.append(vocabulary_section(result, vocabulary))
    ex = explanation_section(result)
    if ex is not None:
        sections.append(replace(ex, anchor=ex.anchor or "explanations"))
    p = result.provenance
    rev = p.requested_revision or p.revision
    title = f"neuroscribe describe — {p.model}" + (f" @ {rev}" if rev else "") + f" on {result.dataset}"
    intro = (f"<p>Neuron descriptions (Mondal et al. 2024): {_count(result.n_sentences)} sentences of "
             f"<code>{esc(result.dataset)}</code>; site <code>{esc(p.site)}</code>, {esc(p.pooling.value)} pooling, "
             f"layers {esc(', '.join(map(str, result.layers)))} × {_count(result.units_per_layer)} units; a unit "
             f"gets a descriptor held by ≥ t = {result.threshold:g}% of its top {result.top_k_percent:g}% "
             f"sentences (k = {_count(result.n_exemplars)}).</p>")
    body = (glance_section(describe_glance(result), n_warnings=len(result.warnings))
            + warnings_block(result.warnings) + render_sections(sections, root)
            + units_section(result, root, texts, labels, max_exemplars, max_chars)
            + render_section(describe_provenance(result, root), root))
    page = render_document(title, intro, body, version=p.neuroscribe_version, source="descriptions.json",
                           css=UNIT_CSS, script=UNIT_SCRIPT)
    out = root / DESCRIPTIONS_HTML
    write_text(out, page)
    return out


# --------------------------------------------------------------------------- from a result folder


def rebuild_describe_page(result_dir: str | Path) -> Path:
    """Write ``descriptions.html`` and ``report/`` of a finished describe result folder again, as the
    job wrote them: the result from ``descriptions.json``, the sentences and labels from
    ``sentences.jsonl``, the vocabulary from ``vocabulary.json``. Returns the page's path;
    ``InvalidInput("DIR", ...)`` when a file is missing or unreadable."""
    root = Path(result_dir)
    result = read_result(root, "descriptions.json", DescribeResult, "describe")
    texts, labels = _read_sentences(root / "sentences.jsonl")
    vocabulary = _read_vocabulary(root / "vocabulary.json")
    return replace_page(root, REPORT_DIR, lambda: write_describe_page(root, result, texts, labels, vocabulary))


def _read_sentences(path: Path) -> tuple[list[str], list[str] | None]:
    """Texts and labels by row (labels ``None`` when no sentence has one, as in a job without labels)."""
    try:
        lines = read_lines(path)
    except OSError as e:
        raise InvalidInput("DIR", f"cannot read {path}: {e.strerror or e}") from None
    by_row: dict[int, tuple[str, object]] = {}
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            by_row[int(rec["row"])] = (str(rec["text"]), rec.get("label"))
        except (ValueError, TypeError, KeyError) as e:
            raise InvalidInput("DIR", f"{path} line {i} is not a sentence record ({e})") from None
    if sorted(by_row) != list(range(len(by_row))):
        raise InvalidInput("DIR", f"{path}: the rows are not 0 .. {len(by_row) - 1}")
    texts = [by_row[i][0] for i in range(len(by_row))]
    labels = [by_row[i][1] for i in range(len(by_row))]
    return texts, (None if all(lab is None for lab in labels) else labels)


def _read_vocabulary(path: Path) -> dict:
    """``vocabulary.json`` cut to the members per cluster the job shows (``PAGE_VOCABULARY_EXAMPLES``)."""
    try:
        vocabulary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InvalidInput("DIR", f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(vocabulary, dict):
        raise InvalidInput("DIR", f"{path} is not a vocabulary (a JSON object)")
    clusters = [{**c, "members": list(c.get("members") or [])[:PAGE_VOCABULARY_EXAMPLES]}
                if isinstance(c, dict) else c for c in vocabulary.get("clusters") or []]
    return {**vocabulary, "clusters": clusters}
