"""The experts job's result folder, written by the embedded run and by the analyse stage alike.

Result folder (DIR):
    job.json          the job as run (JSON of ``neuroscribe.jobs.ExpertsJob``, sentences omitted)
    sentences.jsonl   the sentences used: one ``SentenceRecord`` per line (style, prompt version,
                      generator and sampling when generated)
    responses/        the responses (see ``neuroscribe.workers.activations.store``)
    ap.csv            the full AP matrix: one row per unit (layer, unit), one column per concept
    experts.json      ``ExpertsResult``: per concept its experts (layer/unit/AP), counts per layer,
                      top-N units, tau, generation drop counts, provenance; and the suite's reports
                      when the job asks for them: stability (default on), human alignment, sweep
                      (expert counts per model / revision / random init), causal check
    summary.txt       the short human summary printed at the end
    report.html       the report page, figures in report/ (see ``neuroscribe.service.experts.report``)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from neuroscribe.jobs import ExpertsJob, ExpertsResult
from neuroscribe.service.artefacts import write_json, write_text
from neuroscribe.service.experts.summary import format_summary

__all__ = ["write_result_files"]


def write_result_files(tmp: Path, job: ExpertsJob, sentences, acts, experts, result: ExpertsResult, out: Path,
                       timings: dict | None, log: Callable[[str], None]) -> str:
    """Everything of the result folder into ``tmp`` (renamed to ``out`` by the caller); the summary."""
    from neuroscribe.workers.activations import save_responses

    write_json(tmp / "job.json", job.model_dump(mode="json", exclude={"sentences"}))
    write_text(tmp / "sentences.jsonl", "".join(r.model_dump_json() + "\n" for r in sentences.records))
    save_responses(acts.responses, tmp / "responses")
    _write_ap_csv(tmp / "ap.csv", experts.unit_layers, experts.unit_index, experts.ap, [c.name for c in job.concepts])
    write_text(tmp / "experts.json", result.model_dump_json(indent=2) + "\n")
    write_text(tmp / "summary.txt", format_summary(result, None, timings) + "\n")  # no machine path in the folder
    summary = format_summary(result, out, timings)
    _write_report(tmp, result, log)
    return summary


def _write_report(tmp: Path, result: ExpertsResult, log: Callable[[str], None]) -> None:
    """report.html + report/ inside the result; a failure to draw it never costs the job's results."""
    from neuroscribe.service.experts.report import write_report

    try:
        write_report(tmp, result)
    except Exception as e:  # noqa: BLE001 - the report is rebuilt later with `neuroscribe report DIR`
        log(f"warning: the report could not be written ({type(e).__name__}: {e}); "
            "run `neuroscribe report DIR` to retry")


def _write_ap_csv(path: Path, layers: np.ndarray, units: np.ndarray, ap: np.ndarray, concepts: list[str]) -> None:
    import csv

    part = path.with_name(path.name + ".part")
    with part.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["layer", "unit", *concepts])
        for i in range(ap.shape[0]):
            w.writerow([int(layers[i]), int(units[i]), *(repr(float(v)) for v in ap[i])])
    os.replace(part, path)
