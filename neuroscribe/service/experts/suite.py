"""The experts job's checks and its analysis suite, shared by the embedded run and the workers:
the subject's site and layers, the sweep targets and word pairs (before any generation), and the
suite (stability, human alignment, causal check, sweep) after the experts (docs/methods.md, A.3-A.7).
"""

from __future__ import annotations

from typing import Callable

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import ExpertsJob, ExpertsResult

__all__ = ["check_subject", "check_suite", "needs_subject_for_suite", "run_suite"]


def check_subject(job: ExpertsJob, subject) -> None:
    """The job's site and layers exist in the main model (a loaded one, or its config: ``peek_subject``)."""
    from neuroscribe.workers.activations import get_site

    spec = job.model
    get_site(subject.model_type, spec.site)
    if spec.layers is not None and (min(spec.layers) < 0 or max(spec.layers) >= subject.n_layers):
        raise InvalidInput("layers", f"{list(spec.layers)} out of range: the model has layers 0..{subject.n_layers - 1}")


def needs_subject_for_suite(job: ExpertsJob) -> bool:
    """Whether the analyses after the experts run the main model again (alignment, causal, sweep)."""
    return job.alignment is not None or job.causal is not None or bool(job.sweep)


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
