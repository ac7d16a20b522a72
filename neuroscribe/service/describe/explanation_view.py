"""How a describe result's explanations (docs/methods.md#b7) are shown: lines of the summary,
``explanations.csv`` and a section of the page. Every score stands beside the same score of the
shuffled explanations, with its bootstrap interval and the interval of the paired difference."""

from __future__ import annotations

from pathlib import Path

from neuroscribe.jobs import DescribeResult
from neuroscribe.jobs.explanations import ScoreSummary, UnitExplanation
from neuroscribe.service.artefacts import csv_text, write_text
from neuroscribe.service.report.html import Section, esc, table

__all__ = ["explanation_lines", "write_explanations_csv", "explanation_section", "EXPLANATIONS_CSV"]

EXPLANATIONS_CSV = "explanations.csv"
_HEADER = ["layer", "unit", "verified", "explanation", "failure", "n_firing_shown", "n_contrast_shown",
           "detection_balanced_accuracy", "detection_tpr", "detection_tnr", "detection_n_pos", "detection_n_neg",
           "detection_unparsed", "shuffled_from", "shuffled_explanation", "shuffled_detection_balanced_accuracy",
           "embedding_auroc", "shuffled_embedding_auroc", "embedding_n_pos", "embedding_n_neg"]


def _f(x) -> str:
    return "" if x is None else f"{x:.3f}"


def _ci(ci) -> str:
    return "" if ci is None else f" [{ci[0]:.2f}–{ci[1]:.2f}]"


def _score(name: str, s: ScoreSummary | None) -> str:
    if s is None or s.mean is None:
        return f"{name}: no unit scored"
    line = f"{name} {s.mean:.2f}{_ci(s.ci)}"
    if s.shuffled_mean is not None:
        line += (f" vs shuffled {s.shuffled_mean:.2f}{_ci(s.shuffled_ci)}, difference {s.difference_mean:+.2f}"
                 + ("" if s.difference_ci is None else f" [{s.difference_ci[0]:+.2f} to {s.difference_ci[1]:+.2f}]"))
    return f"{line} over {s.n_units} units: {s.verdict}"


def explanation_lines(result: DescribeResult) -> list[str]:
    """The summary's lines on the explanations ([] when the job asked for none)."""
    r = getattr(result, "explanations", None)
    if r is None:
        return []
    failed = f", {sum(r.failures.values())} failed ({', '.join(f'{k}: {n}' for k, n in sorted(r.failures.items()))})" \
        if r.failures else ""
    unparsed = sum(r.detection_failures.values())
    n_verified = sum(u.verified for u in r.units)
    return [f"  explanations ({r.prompt_version}): {r.n_explained} of {r.n_selected} units explained ({n_verified} "
            f"verified){failed}; scored on held-out sentences never shown, beside a shuffled explanation (another "
            f"unit's)",
            f"    detection ({r.detection_sentences} + {r.detection_sentences} sentences per unit, {r.n_detection_requests}"
            f" questions, {unparsed} unparsed): " + _score("balanced accuracy", r.detection)
            + " [yes/no answers: AUROC = balanced accuracy]",
            f"    embedding (MiniLM cosine, {r.n_embedding_sentences} held-out sentences): "
            + _score("AUROC", r.embedding),
            f"    [intervals: {100 * r.confidence:g}% bootstrap over units, {r.bootstrap} resamples; chance 0.5]"]


def _row(u: UnitExplanation) -> list:
    d, sd = u.detection, u.shuffled_detection
    return [u.layer, u.unit, int(u.verified), u.explanation or "", u.failure or "", u.n_firing_shown,
            u.n_contrast_shown, _f(d and d.balanced_accuracy), _f(d and d.true_positive_rate),
            _f(d and d.true_negative_rate), d.n_pos if d else "", d.n_neg if d else "", d.n_unparsed if d else "",
            "" if u.shuffled_from is None else f"{u.shuffled_from[0]}:{u.shuffled_from[1]}",
            u.shuffled_explanation or "", _f(sd and sd.balanced_accuracy), _f(u.embedding_auroc),
            _f(u.shuffled_embedding_auroc), u.embedding_n_pos, u.embedding_n_neg]


def write_explanations_csv(folder: Path, result: DescribeResult) -> None:
    r = getattr(result, "explanations", None)
    if r is not None:
        write_text(Path(folder) / EXPLANATIONS_CSV, csv_text(_HEADER, [_row(u) for u in r.units]))


def _cell(s: ScoreSummary | None, which: str) -> str:
    if s is None:
        return "—"
    mean, ci = {"mean": (s.mean, s.ci), "shuffled": (s.shuffled_mean, s.shuffled_ci),
                "difference": (s.difference_mean, s.difference_ci)}[which]
    return "—" if mean is None else f"{mean:+.3f}{_ci(ci)}" if which == "difference" else f"{mean:.3f}{_ci(ci)}"


def explanation_section(result: DescribeResult) -> Section | None:
    r = getattr(result, "explanations", None)
    if r is None:
        return None
    runs = table(("score", "explanations", "shuffled explanations", "difference (paired)", "units", "verdict"),
                 [(name, _cell(s, "mean"), _cell(s, "shuffled"), _cell(s, "difference"), s.n_units if s else 0,
                   s.verdict if s else "") for name, s in (("detection balanced accuracy", r.detection),
                                                          ("embedding AUROC", r.embedding))], {1, 2, 3, 4})
    units = table(("unit", "explanation", "detection", "shuffled", "embedding", "shuffled", "n (detection / embedding)"),
                  [(f"{u.layer}:{u.unit}" + (" ✓" if u.verified else ""),
                    u.explanation or f"(failed: {u.failure})",
                    _f(u.detection and u.detection.balanced_accuracy),
                    _f(u.shuffled_detection and u.shuffled_detection.balanced_accuracy), _f(u.embedding_auroc),
                    _f(u.shuffled_embedding_auroc),
                    (f"{u.detection.n_pos}+{u.detection.n_neg} / " if u.detection else "")
                    + f"{u.embedding_n_pos}+{u.embedding_n_neg}") for u in r.units], {2, 3, 4, 5})
    body = (f"<p>{r.n_explained} of {r.n_selected} units explained in one sentence by the LLM from calibration "
            f"sentences they fire on and do not ({esc(r.prompt_version)}); each explanation scored on held-out "
            "sentences it was not made from, beside another unit's explanation on the same sentences (shuffled). "
            f"Detection: the LLM says yes/no for {r.detection_sentences} firing and {r.detection_sentences} "
            f"non-firing sentences per unit ({esc(r.auroc_note)}). Embedding: AUROC of the MiniLM cosine over "
            f"{r.n_embedding_sentences} held-out sentences. Intervals: {100 * r.confidence:g}% bootstrap over "
            f"units. ✓: a description verified on the held-out half.</p>" + runs + units)
    return Section("Explanations scored on held-out sentences", body=body, files=(EXPLANATIONS_CSV,))
