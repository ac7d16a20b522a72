"""The rank job embedded: responses, rankings, probing, interventions and agreement in this
process, then the result folder (``service.rank.files`` lists its files)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from neuroscribe import __version__
from neuroscribe.jobs import RankJob, RankResult
from neuroscribe.service import runtime
from neuroscribe.service.artefacts import atomic_output_dir, check_output_dir
from neuroscribe.service.rank.files import rank_cache_dir, subject_info, write_rank_files
from neuroscribe.settings import Settings

__all__ = ["run_rank_job"]


def run_rank_job(job: RankJob, out: str | Path, *, force: bool = False, progress: bool = True,
                 settings: Settings | None = None, log: Callable[[str], None] = print) -> RankResult:
    """Run a rank job end to end and write DIR. The dataset was checked when the job was built;
    layer, site, k and the intervention task are checked from the config and tokenizer before any
    weights load."""
    from neuroscribe.workers.rank.stages import analysis_stage, check_rank_subject, responses_stage

    settings = Settings.from_env() if settings is None else settings
    runtime.configure(settings)
    out = check_output_dir(out, force=force)
    spec = job.model
    t0 = time.perf_counter()
    plan = check_rank_subject(job, runtime.peek_subject(spec))
    log(f"loading subject model {spec.name}" + (f"@{spec.revision}" if spec.revision else ""))
    subject = runtime.load_subject(spec, settings)
    log(f"responses of layer {plan.layer} to {len(job.dataset.texts)} examples ({spec.site}, "
        + ("target word" if job.dataset.word_index is not None else f"{spec.pooling.value} pooling") + ")")
    cache_dir = rank_cache_dir(settings)
    X, key, hit = responses_stage(job, subject, plan, progress=progress, cache_dir=cache_dir)
    if hit:
        log("responses read from the rank cache")
    t_resp = time.perf_counter()
    info = {**subject_info(subject, spec.site), "responses_key": key, "responses_cached": hit}
    result, extras = analysis_stage(job, plan, X, info, neuroscribe_version=__version__,
                                    device=runtime.device_for(spec, settings), log=log, cache_dir=cache_dir)
    timings = {"responses_s": t_resp - t0, "analysis_s": time.perf_counter() - t_resp}
    with atomic_output_dir(out, force=force) as tmp:
        summary = write_rank_files(tmp, job, result, out, timings, extras)
    log(summary)
    return result
