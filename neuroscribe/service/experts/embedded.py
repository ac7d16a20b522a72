"""The embedded runner: one process, no server. Calls the stages of ``workers.stages`` in turn and
writes the result folder atomically.

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
import time
from pathlib import Path
from typing import Callable

import numpy as np

from neuroscribe import __version__
from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import ExpertsJob, ExpertsResult
from neuroscribe.service.artefacts import atomic_output_dir, check_output_dir, write_json, write_text
from neuroscribe.service.experts.summary import format_summary

__all__ = ["run_experts_job", "default_cache_dir", "check_subject", "check_suite", "run_suite",
           "write_result_files", "needs_subject_for_suite", "make_generator"]


def default_cache_dir() -> Path:
    """``$NEUROSCRIBE_CACHE``, else ``~/.cache/neuroscribe``."""
    return Path(os.environ.get("NEUROSCRIBE_CACHE") or Path.home() / ".cache" / "neuroscribe")


def make_generator(job: ExpertsJob, cache_dir: Path | None):
    from neuroscribe.workers.generate import CachedBackend, make_backend

    backend = make_backend(job.generator)
    if cache_dir is None:
        return backend
    # save after every batch, so an interrupted run loses at most one batch of generations
    return CachedBackend(backend, cache_dir / "generations", chunk_size=job.generator.batch_size)


def run_experts_job(
    job: ExpertsJob,
    out: str | Path,
    *,
    force: bool = False,
    progress: bool = True,
    backend=None,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> ExpertsResult:
    """Run an experts job end to end and write DIR. Errors in the job (unknown model or
    revision, missing site, bad layers, an unwritable DIR) are raised before any generation."""
    from neuroscribe.workers.activations import load_subject_model
    from neuroscribe.workers.experts.stages import activations_stage, experts_stage, sentences_stage

    out = check_output_dir(out, force=force)
    t0 = time.perf_counter()
    spec = job.model
    log(f"loading subject model {spec.name}" + (f"@{spec.revision}" if spec.revision else ""))
    subject = load_subject_model(
        spec.name, revision=spec.revision, device=spec.device, trust_remote_code=spec.trust_remote_code
    )
    check_subject(job, subject)  # SiteNotFound, bad layers: before any generation
    check_suite(job, log)  # sweep targets resolved, enough word pairs: before any generation

    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    if job.sentences is None and backend is None:
        log(f"loading generator {job.generator.backend}:{job.generator.model}")
        backend = make_generator(job, cache_dir)
    log("writing sentences" if job.sentences is None else f"using {len(job.sentences)} given sentences")
    sentences = sentences_stage(job, backend, progress=progress)
    t_gen = time.perf_counter()
    log(f"capturing responses of {len(sentences.records)} sentences ({spec.site}, {spec.pooling.value} pooling)")
    acts = activations_stage(job, subject, sentences.records, cache_dir=cache_dir / "responses", progress=progress)
    if acts.from_cache:
        log("responses read from the cache: no forward pass needed")
    t_act = time.perf_counter()
    experts = experts_stage(job, sentences, acts, neuroscribe_version=__version__)
    t_exp = time.perf_counter()
    result = run_suite(job, subject, sentences, acts, experts, cache_dir / "responses", progress, log)
    timings = {"sentences_s": t_gen - t0, "activations_s": t_act - t_gen, "experts_s": t_exp - t_act,
               "analyses_s": time.perf_counter() - t_exp}

    with atomic_output_dir(out, force=force) as tmp:
        summary = write_result_files(tmp, job, sentences, acts, experts, result, out, timings, log)
    log(summary)
    return result


def check_subject(job: ExpertsJob, subject) -> None:
    """The job's site and layers exist in the loaded main model."""
    from neuroscribe.workers.activations import get_site

    spec = job.model
    get_site(subject.model_type, spec.site)
    if spec.layers is not None and (min(spec.layers) < 0 or max(spec.layers) >= subject.n_layers):
        raise InvalidInput("layers", f"{list(spec.layers)} out of range: the model has layers 0..{subject.n_layers - 1}")


def needs_subject_for_suite(job: ExpertsJob) -> bool:
    """Whether the analyses after the experts run the main model again (alignment, causal, sweep)."""
    return job.alignment is not None or job.causal is not None or bool(job.sweep)


def write_result_files(tmp: Path, job: ExpertsJob, sentences, acts, experts, result: ExpertsResult, out: Path,
                       timings: dict | None, log: Callable[[str], None]) -> str:
    """Everything of the result folder into ``tmp`` (renamed to ``out`` by the caller); the summary."""
    from neuroscribe.workers.activations import save_responses

    write_json(tmp / "job.json", job.model_dump(mode="json", exclude={"sentences"}))
    write_text(tmp / "sentences.jsonl", "".join(r.model_dump_json() + "\n" for r in sentences.records))
    save_responses(acts.responses, tmp / "responses")
    _write_ap_csv(tmp / "ap.csv", experts.unit_layers, experts.unit_index, experts.ap, [c.name for c in job.concepts])
    write_text(tmp / "experts.json", result.model_dump_json(indent=2) + "\n")
    summary = format_summary(result, out, timings)
    write_text(tmp / "summary.txt", summary + "\n")
    _write_report(tmp, result, log)
    return summary


def check_suite(job: ExpertsJob, log: Callable[[str], None]) -> None:
    """The suite's checks that need no sentences: every sweep target resolves (revision included)
    and fits the layers; the word pairs hold >= 3 pairs among the concepts."""
    from neuroscribe.workers.experts.alignment import check_pairs
    from neuroscribe.workers.experts.suite_stages import word_pairs
    from neuroscribe.workers.experts.sweep import check_targets

    if job.sweep:
        log(f"checking the {len(job.sweep)} other model(s) of the sweep")
        check_targets(job)
    if job.alignment is not None:
        n = check_pairs(word_pairs(job), [c.name for c in job.concepts], dataset=job.alignment.dataset)
        log(f"human alignment: {n} {job.alignment.dataset} pairs among the concepts")


def run_suite(job, subject, sentences, acts, experts, responses_cache, progress, log) -> ExpertsResult:
    """Stability, alignment, causal check and sweep, as the job asks; their reports in the result."""
    from neuroscribe.workers.experts.suite_stages import alignment_stage, causal_stage, stability_stage
    from neuroscribe.workers.experts.sweep import run_sweep

    update: dict = {}
    warnings: list[str] = []
    if job.stability is not None:
        log("stability: K-fold and (n+, n-, tau) subsample sweep")
        update["stability"] = stability_stage(job, sentences, acts, progress=progress)
    if job.alignment is not None:
        log(f"human alignment on {job.alignment.dataset}")
        try:
            update["alignment"] = alignment_stage(job, subject, sentences, acts, experts, cache_dir=responses_cache,
                                                  progress=progress)
        except InvalidInput as e:  # e.g. similarities undefined on too many pairs: keep everything else
            warnings.append(f"human alignment not computed: {e}")
    if job.causal is not None:
        update["causal"] = causal_stage(job, subject, sentences, acts, experts, log=log)
    if job.sweep:
        report = run_sweep(job, sentences.records, main=subject, main_acts=acts, cache_dir=responses_cache,
                           progress=progress, log=log)
        update["sweep"] = report
        for group in report.identical_weights:
            warnings.append(f"identical weights: {', '.join(group)} have the same weight files (sha256); "
                            "a checkpoint may have been served under the wrong revision")
    for w in warnings:
        log(f"warning: {w}")
    if warnings:
        update["warnings"] = tuple(warnings)
    # validate the assembled result (model_copy(update=...) would not)
    return ExpertsResult.model_validate({**experts.result.model_dump(), **{k: v.model_dump() if hasattr(v, "model_dump")
                                                                           else v for k, v in update.items()}})


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
