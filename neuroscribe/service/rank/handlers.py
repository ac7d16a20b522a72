"""The rank job's stage handlers (``neuroscribe worker STAGE``): the same pure stages as the
embedded runner (``workers.rank_stages``):

    <job>/stage/rank_responses.npy, rank_subject.json   (activate: the layer's responses)
    <job>/result/                                       (analyse: rankings, probing, interventions,
                                                         agreement; the result folder)
"""

from __future__ import annotations

import json
import os

import numpy as np

from neuroscribe import __version__
from neuroscribe.service import runtime
from neuroscribe.service.artefacts import atomic_output_dir, write_json
from neuroscribe.service.executor import StageContext
from neuroscribe.service.rank.files import rank_cache_dir, subject_info, write_rank_files

__all__ = ["HANDLERS", "activate", "analyse"]

STAGE_DIR = "stage"
RESULT_DIR = "result"


def _plan(ctx: StageContext):
    from neuroscribe.workers.rank.stages import check_rank_subject

    return check_rank_subject(ctx.job, runtime.peek_subject(ctx.job.model))


def activate(ctx: StageContext) -> dict:
    """Responses of the ranked layer to every example."""
    from neuroscribe.workers.rank.stages import responses_stage
    plan = _plan(ctx)
    subject = runtime.load_subject(ctx.job.model, ctx.settings, ctx.state)
    n = len(ctx.job.dataset.texts)
    ctx.progress(0, n, f"responses of layer {plan.layer}")
    X, key, hit = responses_stage(ctx.job, subject, plan, progress=False, cache_dir=rank_cache_dir(ctx.settings))
    folder = ctx.artefacts / STAGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".rank_responses.tmp-{os.getpid()}.npy"
    np.save(tmp, X, allow_pickle=False)
    os.replace(tmp, folder / "rank_responses.npy")
    write_json(folder / "rank_subject.json", {**subject_info(subject, ctx.job.model.site), "responses_key": key,
                                              "responses_cached": hit})
    ctx.progress(n, n, f"{X.shape[1]} units")
    return {"handoff": {"responses": f"{STAGE_DIR}/rank_responses.npy", "layer": plan.layer}}


def analyse(ctx: StageContext) -> dict:
    """Rankings, probing, interventions (the model is loaded here), agreement, the result folder."""
    from neuroscribe.workers.rank.stages import analysis_stage

    plan = _plan(ctx)
    folder = ctx.artefacts / STAGE_DIR
    try:
        X = np.load(folder / "rank_responses.npy", allow_pickle=False)
        info = json.loads((folder / "rank_subject.json").read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RuntimeError(f"the activate stage's files are missing: {e.filename}") from None
    ctx.progress(0, 1, "rankings, probing, interventions")
    result, extras = analysis_stage(ctx.job, plan, X, info, neuroscribe_version=__version__,
                                    device=runtime.device_for(ctx.job.model, ctx.settings),
                                    cache_dir=rank_cache_dir(ctx.settings))
    out = ctx.artefacts / RESULT_DIR
    with atomic_output_dir(out, force=True) as tmp:
        write_rank_files(tmp, ctx.job, result, out, None, extras)
    ctx.progress(1, 1, "done")
    return {"result": result.model_dump(mode="json")}


HANDLERS = {"activate": activate, "analyse": analyse}
