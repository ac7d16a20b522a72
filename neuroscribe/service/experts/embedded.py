"""The experts job embedded: one process, no server. Calls the stages of
``workers.experts.stages`` in turn, then the suite, and writes the result folder atomically
(``service.experts.files`` lists its files)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from neuroscribe import __version__
from neuroscribe.jobs import ExpertsJob, ExpertsResult
from neuroscribe.service import runtime
from neuroscribe.service.artefacts import atomic_output_dir, check_output_dir
from neuroscribe.service.experts.files import write_result_files
from neuroscribe.service.experts.suite import check_subject, check_suite, run_suite
from neuroscribe.settings import Settings

__all__ = ["run_experts_job"]


def run_experts_job(
    job: ExpertsJob,
    out: str | Path,
    *,
    force: bool = False,
    progress: bool = True,
    backend=None,
    settings: Settings | None = None,
    log: Callable[[str], None] = print,
) -> ExpertsResult:
    """Run an experts job end to end and write DIR. Errors in the job (unknown model or
    revision, missing site, bad layers, an unwritable DIR) are raised before any generation.
    ``settings``: the cache, device and LLM key (default: ``Settings.from_env()``)."""
    from neuroscribe.workers.experts.stages import activations_stage, experts_stage, sentences_stage

    settings = Settings.from_env() if settings is None else settings
    runtime.configure(settings)

    out = check_output_dir(out, force=force)
    t0 = time.perf_counter()
    spec = job.model
    check_subject(job, runtime.peek_subject(spec))  # SiteNotFound, bad layers: from the config, before any weights
    check_suite(job, log)  # sweep targets resolved, enough word pairs: before any generation
    log(f"loading subject model {spec.name}" + (f"@{spec.revision}" if spec.revision else ""))
    subject = runtime.load_subject(spec, settings)

    responses_cache = runtime.responses_cache(settings)
    if job.sentences is None and backend is None:
        log(f"generator {job.generator.backend}:{job.generator.model} (loaded at the first request the cache cannot answer)")
        backend = runtime.make_generator(job.generator, settings)
    log("writing sentences" if job.sentences is None else f"using {len(job.sentences)} given sentences")
    sentences = sentences_stage(job, backend, progress=progress)
    t_gen = time.perf_counter()
    log(f"capturing responses of {len(sentences.records)} sentences ({spec.site}, {spec.pooling.value} pooling)")
    acts = activations_stage(job, subject, sentences.records, cache_dir=responses_cache, progress=progress)
    if acts.from_cache:
        log("responses read from the cache: no forward pass needed")
    t_act = time.perf_counter()
    experts = experts_stage(job, sentences, acts, neuroscribe_version=__version__)
    t_exp = time.perf_counter()
    result = run_suite(job, subject, sentences, acts, experts, responses_cache, progress, log)
    timings = {"sentences_s": t_gen - t0, "activations_s": t_act - t_gen, "experts_s": t_exp - t_act,
               "analyses_s": time.perf_counter() - t_exp}

    with atomic_output_dir(out, force=force) as tmp:
        summary = write_result_files(tmp, job, sentences, acts, experts, result, out, timings, log)
    log(summary)
    return result
