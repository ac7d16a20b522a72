"""The experts job's stage handlers (``neuroscribe worker STAGE``; ``service.registry.HANDLERS``
dispatches each job to its kind's handlers).

Each calls the same pure stages as the embedded run (``workers.experts.stages``, then
``service.experts.suite`` and ``service.experts.files``; the cache, generator and subject come from
``service.runtime``), so a job through the queues gives the embedded run's result on the same
sentences. Files go to the job's folder under the artefacts root (a volume shared by the
stages' machines), each written under a temporary name and renamed, so a stage that runs again
after a crash overwrites whole files only:

    <job>/stage/sentences.jsonl, <job>/stage/sentences_meta.json   (generate)
    <job>/stage/responses/                                          (activate)
    <job>/result/                                                   (analyse: the result folder)

Models and generators are loaded once per executor process (``ctx.state``) and reused by later
jobs that ask for the same one.
"""

from __future__ import annotations

import json
import os
import shutil

from neuroscribe import __version__
from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import SentenceRecord
from neuroscribe.service import runtime
from neuroscribe.service.artefacts import atomic_output_dir, write_json, write_text
from neuroscribe.service.executor import StageContext
from neuroscribe.service.experts.files import write_result_files
from neuroscribe.service.experts.suite import check_subject, check_suite, needs_subject_for_suite, run_suite
from neuroscribe.workers.textfiles import read_lines

__all__ = ["HANDLERS", "generate", "activate", "analyse"]

STAGE_DIR = "stage"
RESULT_DIR = "result"


def generate(ctx: StageContext) -> dict:
    """Write (or take the job's own) sentences: ``stage/sentences.jsonl`` + ``sentences_meta.json``."""
    from neuroscribe.workers.experts.stages import sentences_stage

    job = ctx.job
    check_subject(job, runtime.peek_subject(job.model))  # model, site, layers: from the config
    check_suite(job, log=lambda _m: None)  # sweep targets, word pairs: before generating
    backend = None if job.sentences is not None else runtime.generator_for(job.generator, ctx.settings, ctx.state)
    ctx.progress(0, None, "writing sentences")
    s = sentences_stage(job, backend, progress=False)
    folder = ctx.artefacts / STAGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "sentences.jsonl", "".join(r.model_dump_json() + "\n" for r in s.records))
    write_json(folder / "sentences_meta.json", {"drops": s.drops, "generator": s.generator,
                                                "prompt_version": s.prompt_version})
    ctx.progress(len(s.records), len(s.records), f"{len(s.records)} sentences")
    return {"handoff": {"sentences": f"{STAGE_DIR}/sentences.jsonl", "n_sentences": len(s.records)}}


def _sentences(ctx: StageContext):
    from neuroscribe.workers.experts.stages import SentencesArtefact

    folder = ctx.artefacts / STAGE_DIR
    try:
        records = [SentenceRecord.model_validate_json(line)
                   for line in read_lines(folder / "sentences.jsonl") if line]
        meta = json.loads((folder / "sentences_meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RuntimeError(f"the generate stage's files are missing: {e.filename}") from None
    return SentencesArtefact(records, meta["drops"], meta["generator"], meta["prompt_version"])


def activate(ctx: StageContext) -> dict:
    """Responses of the main model to the sentences: ``stage/responses/`` (through the cache)."""
    from neuroscribe.workers.activations import save_responses
    from neuroscribe.workers.experts.stages import activations_stage

    sentences = _sentences(ctx)
    subject = runtime.load_subject(ctx.job.model, ctx.settings, ctx.state)
    check_subject(ctx.job, subject)
    ctx.progress(0, len(sentences.records), "capturing responses")
    acts = activations_stage(ctx.job, subject, sentences.records, cache_dir=runtime.responses_cache(ctx.settings),
                             progress=False)
    final = ctx.artefacts / STAGE_DIR / "responses"
    tmp = final.with_name(f".responses.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_responses(acts.responses, tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_json(ctx.artefacts / STAGE_DIR / "environment.json", acts.environment)
    ctx.progress(len(sentences.records), len(sentences.records), "responses captured")
    return {"handoff": {"responses": f"{STAGE_DIR}/responses", "from_cache": acts.from_cache}}


def analyse(ctx: StageContext) -> dict:
    """Experts, the analysis suite and the result folder ``result/``; the result is the ExpertsResult."""
    from neuroscribe.workers.activations import load_responses
    from neuroscribe.workers.experts.stages import ActivationsArtefact, experts_stage

    job = ctx.job
    sentences = _sentences(ctx)
    resp = load_responses(ctx.artefacts / STAGE_DIR / "responses", mmap=False)
    env = json.loads((ctx.artefacts / STAGE_DIR / "environment.json").read_text(encoding="utf-8"))
    texts = list(dict.fromkeys(r.text for r in sentences.records))
    if resp.meta.n_sentences != len(texts):
        raise InvalidInput("responses", f"{resp.meta.n_sentences} rows for {len(texts)} sentences")
    acts = ActivationsArtefact(texts, resp, env, bool((ctx.handoff or {}).get("from_cache")))
    ctx.progress(0, 2, "experts")
    experts = experts_stage(job, sentences, acts, neuroscribe_version=__version__)
    subject = runtime.load_subject(job.model, ctx.settings, ctx.state) if needs_subject_for_suite(job) else None
    ctx.progress(1, 2, "analyses")
    result = run_suite(job, subject, sentences, acts, experts, runtime.responses_cache(ctx.settings), False,
                       lambda _m: None)
    out = ctx.artefacts / RESULT_DIR
    with atomic_output_dir(out, force=True) as tmp:
        write_result_files(tmp, job, sentences, acts, experts, result, out, None, lambda _m: None)
    ctx.progress(2, 2, "done")
    return {"result": result.model_dump(mode="json")}


HANDLERS = {"generate": generate, "activate": activate, "analyse": analyse}
