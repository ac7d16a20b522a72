"""The describe job embedded: every stage in this process, then the result folder
(``service.describe.files`` lists its files)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from neuroscribe import __version__
from neuroscribe.jobs import DescribeJob, DescribeResult
from neuroscribe.service import runtime
from neuroscribe.service.artefacts import atomic_output_dir, check_output_dir
from neuroscribe.service.describe.files import write_describe_files
from neuroscribe.settings import Settings

__all__ = ["run_describe_job"]


def run_describe_job(job: DescribeJob, out: str | Path, *, force: bool = False, progress: bool = True,
                     backend=None, embed=None, settings: Settings | None = None,
                     log: Callable[[str], None] = print) -> DescribeResult:
    """Run a describe job end to end and write DIR. Errors in the job (unknown model, layers out
    of range, cls pooling without [CLS], an unwritable DIR) are raised before any generation."""
    from neuroscribe.workers.describe.stages import (analysis_stage, check_describe_subject, descriptors_stage,
                                            exemplars_stage, vocabulary_stage)

    settings = Settings.from_env() if settings is None else settings
    runtime.configure(settings)
    out = check_output_dir(out, force=force)
    t0 = time.perf_counter()
    spec = job.model
    # site, layers, pooling from the config and tokenizer: before any weights, generation or forward pass
    check_describe_subject(job, runtime.peek_subject(spec))
    if backend is None:
        log(f"generator {job.generator.backend}:{job.generator.model} (loaded at the first request the cache cannot answer)")
        backend = runtime.make_generator(job.generator, settings)
    n = len(job.dataset.texts)
    log(f"writing descriptors of {n} sentences")
    descriptors = descriptors_stage(job, backend, progress=progress)
    t_gen = time.perf_counter()
    log("clustering the descriptors into a vocabulary")
    vocab = vocabulary_stage(job, descriptors, embed=embed)
    t_voc = time.perf_counter()
    log(f"exemplars: top {job.top_k_percent:g}% of {n} sentences per unit ({spec.site}, {spec.pooling.value} pooling)")
    log(f"loading subject model {spec.name}" + (f"@{spec.revision}" if spec.revision else ""))
    subject = runtime.load_subject(spec, settings)
    exemplars = exemplars_stage(job, subject, vocab, progress=progress, window=max(1, settings.exemplar_window))
    from neuroscribe.workers.describe.calibration_sample import calibration_sample
    from neuroscribe.workers.describe.explanations import explain_stage
    from neuroscribe.workers.describe.token_evidence import token_evidence_stage

    sample = calibration_sample(job, subject, vocab.halves)  # contrast for the explanations (None: not asked)
    t_ex = time.perf_counter()
    if job.token_evidence:
        log("token evidence: per-token activations of every unit's exemplars and quantile samples")
    evidence = token_evidence_stage(job, subject, exemplars, progress=progress)
    t_ev = time.perf_counter()
    result = analysis_stage(job, descriptors, vocab, exemplars, neuroscribe_version=__version__)
    t_an = time.perf_counter()
    if job.explain_units:
        log(f"explanations: up to {job.explain_units} units, {job.detection_sentences} + {job.detection_sentences} "
            "held-out sentences each")
    result = explain_stage(job, result, vocab.halves, exemplars, sample, backend, embed, progress=progress)
    timings = {"descriptors_s": t_gen - t0, "vocabulary_s": t_voc - t_gen, "exemplars_s": t_ex - t_voc,
               **({"token_evidence_s": t_ev - t_ex} if evidence is not None else {}), "analysis_s": t_an - t_ev}
    if job.explain_units:
        timings["explain_s"] = time.perf_counter() - t_an
    with atomic_output_dir(out, force=force) as tmp:
        summary = write_describe_files(tmp, job, descriptors, vocab, result, out, timings, log, evidence=evidence)
    log(summary)
    return result
