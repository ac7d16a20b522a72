"""The describe job's activate stage: streaming top-k% exemplars of every unit, in one delivery or in
shards of sentences that any activate worker takes (``service/queue/shards.py``).

With ``settings.shard_rows`` > 0 (``NEUROSCRIBE_SHARD_ROWS``) on the worker that first takes the
stage, a job of more sentences is split into fixed, contiguous row ranges of that many sentences:

    split   the stage's delivery: no model is loaded; the ranges are the shards' specs
    shard   captures its rows only and saves the mergeable state (``exemplar_shards.ExemplarShard``) in
            ``<job>/stage/shards/activate/<id>/``; its output names that folder and its rows
    reduce  merges every shard (``merge_exemplar_shards``: the same exemplars and statistics as one
            unsharded pass, whatever the order), then, with the model, the calibration sample and the
            token evidence, as the unsharded stage does, into ``<job>/stage/exemplars``

Either way the next stage gets the same hand-off and reads the same files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from neuroscribe.service import runtime
from neuroscribe.service.describe.stage_files import STAGE_DIR, read_stage_json
from neuroscribe.service.executor import StageContext

__all__ = ["activate", "SHARD_DIR"]

SHARD_DIR = f"{STAGE_DIR}/shards/activate"


def _vocabulary(ctx: StageContext):
    from neuroscribe.workers.describe.stages import VocabularyArtefact

    return VocabularyArtefact.from_json(read_stage_json(ctx, "vocabulary.json"))


def _publish(tmp: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _scratch(final: Path) -> Path:
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp


def _window(ctx: StageContext) -> int:
    return max(1, int(ctx.settings.exemplar_window))


def activate(ctx: StageContext) -> dict:
    """The stage's delivery (split it, or run it whole), one shard of it, or its reduce."""
    n = len(ctx.job.dataset.texts)
    if ctx.shard is None:
        rows = int(ctx.settings.shard_rows)
        if rows > 0 and n > rows:
            from neuroscribe.workers.describe.exemplar_shards import shard_ranges

            # whole windows of the one-pass run (its batches), so that the merge equals it bit for bit
            ranges = shard_ranges(n, rows_per_shard=rows, window=_window(ctx))
            if len(ranges) > 1:
                ctx.progress(0, n, f"split into {len(ranges)} shards of up to {len(ranges[0])} sentences")
                return {"handoff": ctx.handoff, "shards": [{"rows": [r.start, r.stop]} for r in ranges]}
        return _whole(ctx, n)
    if ctx.shard.get("id") == "reduce":
        return _reduce(ctx, n)
    return _one_shard(ctx)


def _whole(ctx: StageContext, n: int) -> dict:
    from neuroscribe.workers.describe.stages import exemplars_stage

    v = _vocabulary(ctx)
    subject = runtime.load_subject(ctx.job.model, ctx.settings, ctx.state)
    ctx.progress(0, n, "capturing responses")
    ex = exemplars_stage(ctx.job, subject, v, progress=False, window=_window(ctx))
    return _finish(ctx, subject, v, ex, n)


def _one_shard(ctx: StageContext) -> dict:
    from neuroscribe.workers.describe.exemplar_shards import partial_exemplars
    from neuroscribe.workers.describe.stages import exemplars_options

    sid = str(ctx.shard["id"])
    if not (sid.isdigit() and len(sid) <= 5):
        raise ValueError(f"not a shard id: {sid!r}")
    a, b = (int(x) for x in ctx.shard["spec"]["rows"])
    v = _vocabulary(ctx)
    subject = runtime.load_subject(ctx.job.model, ctx.settings, ctx.state)
    ctx.progress(0, b - a, f"capturing sentences {a}-{b}")
    part = partial_exemplars(subject, ctx.job.dataset.texts, (a, b), progress=False,
                             **exemplars_options(ctx.job, subject, v, window=_window(ctx)))
    final = ctx.artefacts / SHARD_DIR / sid
    tmp = _scratch(final)
    part.save(tmp)
    _publish(tmp, final)
    ctx.progress(b - a, b - a, f"sentences {a}-{b} captured")
    return {"handoff": {"dir": f"{SHARD_DIR}/{sid}", "rows": [a, b]}}


def _reduce(ctx: StageContext, n: int) -> dict:
    from neuroscribe.workers.describe.exemplar_shards import merge_exemplar_shards
    from neuroscribe.workers.describe.stages import exemplars_artefact

    outputs = ctx.shard.get("outputs") or {}
    ctx.progress(0, 1, f"merging {len(outputs)} shards")
    root = ctx.artefacts / SHARD_DIR
    folders = []
    for sid in sorted(outputs):
        if not (sid.isdigit() and len(sid) <= 5):
            raise ValueError(f"not a shard id: {sid!r}")
        if not (root / sid).is_dir():
            raise RuntimeError(f"shard {sid}'s files are missing: {root / sid}")
        folders.append(root / sid)
    merged = merge_exemplar_shards(folders)  # read one at a time
    v = _vocabulary(ctx)
    subject = runtime.load_subject(ctx.job.model, ctx.settings, ctx.state)
    out = _finish(ctx, subject, v, exemplars_artefact(ctx.job, subject, merged), n)
    shutil.rmtree(root, ignore_errors=True)  # merged and published: the shards' states are not needed
    return out


def _finish(ctx: StageContext, subject, v, ex, n: int) -> dict:
    """The calibration sample and the token evidence beside the exemplars, published at once."""
    from neuroscribe.workers.describe.calibration_sample import calibration_sample
    from neuroscribe.workers.describe.token_evidence import token_evidence_stage

    sample = calibration_sample(ctx.job, subject, v.halves)  # contrast for the explanations (None: not asked)
    evidence = token_evidence_stage(ctx.job, subject, ex, progress=False)
    final = ctx.artefacts / STAGE_DIR / "exemplars"
    tmp = _scratch(final)
    ex.save(tmp)
    if sample is not None:
        sample.save(tmp)
    if evidence is not None:
        evidence.save(tmp)
    _publish(tmp, final)
    ctx.progress(n, n, f"{ex.rows.shape[0]} units, {ex.k} exemplars each")
    return {"handoff": {"exemplars": f"{STAGE_DIR}/exemplars", "k": ex.k}}
