"""The describe job's stage handlers (``neuroscribe worker STAGE``): the same pure stages as the
embedded runner (``workers.describe_stages``), their artefacts in the job's folder, each file
written under a temporary name and renamed (a stage that runs again after a crash overwrites
whole files only):

    <job>/stage/descriptors.json      (generate: descriptors of every sentence)
    <job>/stage/vocabulary.json       (cluster: vocabulary, per-sentence names, the halves)
    <job>/stage/exemplars/            (activate: exemplar rows and responses per unit, the calibration sample,
                                       the token evidence: token_evidence.npz/.json; in shards of
                                       sentences when the worker's settings say so: activate.py)
    <job>/stage/analysis.json         (analyse: the DescribeResult without explanations)
    <job>/result/                     (explain: explanations scored on the held-out half, docs/methods.md#b7,
                                       then the result folder, as `neuroscribe describe` writes it)
"""

from __future__ import annotations

from neuroscribe import __version__
from neuroscribe.service import runtime
from neuroscribe.service.artefacts import atomic_output_dir, write_json
from neuroscribe.service.describe.activate import activate
from neuroscribe.service.describe.files import write_describe_files
from neuroscribe.service.describe.stage_files import STAGE_DIR, read_stage_json
from neuroscribe.service.executor import StageContext

__all__ = ["HANDLERS", "generate", "cluster", "activate", "analyse", "explain"]

RESULT_DIR = "result"


def generate(ctx: StageContext) -> dict:
    """Check the model (config and tokenizer only), then write the descriptors."""
    from neuroscribe.workers.describe.stages import check_describe_subject, descriptors_stage

    job = ctx.job
    check_describe_subject(job, runtime.peek_subject(job.model))
    backend = runtime.generator_for(job.generator, ctx.settings, ctx.state)
    n = len(job.dataset.texts)
    ctx.progress(0, n, "writing descriptors")
    d = descriptors_stage(job, backend, progress=False)
    (ctx.artefacts / STAGE_DIR).mkdir(parents=True, exist_ok=True)
    write_json(ctx.artefacts / STAGE_DIR / "descriptors.json", d.to_json())
    ctx.progress(n, n, f"{n - sum(x is None for x in d.descriptors)} of {n} described")
    return {"handoff": {"descriptors": f"{STAGE_DIR}/descriptors.json", "failures": d.failures}}


def cluster(ctx: StageContext) -> dict:
    """The vocabulary (sentence-transformers + HDBSCAN) and the split in halves."""
    from neuroscribe.workers.describe.stages import DescriptorsArtefact, vocabulary_stage

    d = DescriptorsArtefact.from_json(read_stage_json(ctx, "descriptors.json"))
    ctx.progress(0, 1, "clustering descriptors")
    embed = ctx.state.get("embedder")
    if embed is None:
        from neuroscribe.workers.describe.vocabulary import minilm_embedder

        embed = ctx.state["embedder"] = minilm_embedder()
    v = vocabulary_stage(ctx.job, d, embed=embed)
    write_json(ctx.artefacts / STAGE_DIR / "vocabulary.json", v.to_json())
    n_names = len(set(v.vocabulary.mapping.values()))
    ctx.progress(1, 1, f"{n_names} vocabulary names")
    return {"handoff": {"vocabulary": f"{STAGE_DIR}/vocabulary.json", "n_names": n_names}}


def analyse(ctx: StageContext) -> dict:
    """Assignment, consistency, evaluation: the DescribeResult without explanations."""
    from neuroscribe.workers.describe.stages import DescriptorsArtefact, ExemplarsArtefact, VocabularyArtefact, analysis_stage

    job = ctx.job
    d = DescriptorsArtefact.from_json(read_stage_json(ctx, "descriptors.json"))
    v = VocabularyArtefact.from_json(read_stage_json(ctx, "vocabulary.json"))
    ex = ExemplarsArtefact.load(ctx.artefacts / STAGE_DIR / "exemplars")
    ctx.progress(0, 1, "assigning descriptors")
    result = analysis_stage(job, d, v, ex, neuroscribe_version=__version__)
    write_json(ctx.artefacts / STAGE_DIR / "analysis.json", result.model_dump(mode="json"))
    ctx.progress(1, 1, f"{result.n_described} of {result.n_units} units described")
    return {"handoff": {"analysis": f"{STAGE_DIR}/analysis.json", "n_described": result.n_described}}


def explain(ctx: StageContext) -> dict:
    """Explanations of the verified and top-firing units scored on the held-out half (with the
    job's generator and the packaged MiniLM), then the result folder; the result is the DescribeResult."""
    from neuroscribe.jobs import DescribeResult
    from neuroscribe.workers.describe.calibration_sample import CalibrationSample
    from neuroscribe.workers.describe.stages import DescriptorsArtefact, ExemplarsArtefact, VocabularyArtefact
    from neuroscribe.workers.describe.token_evidence import TokenEvidence

    job = ctx.job
    d = DescriptorsArtefact.from_json(read_stage_json(ctx, "descriptors.json"))
    v = VocabularyArtefact.from_json(read_stage_json(ctx, "vocabulary.json"))
    result = DescribeResult.model_validate(read_stage_json(ctx, "analysis.json"))
    if job.explain_units:
        from neuroscribe.workers.describe.explanations import explain_stage

        folder = ctx.artefacts / STAGE_DIR / "exemplars"
        backend = runtime.generator_for(job.generator, ctx.settings, ctx.state)
        embed = ctx.state.get("embedder")
        if embed is None:
            from neuroscribe.workers.describe.vocabulary import minilm_embedder

            embed = ctx.state["embedder"] = minilm_embedder()
        ctx.progress(0, 1, f"explaining up to {job.explain_units} units")
        result = explain_stage(job, result, v.halves, ExemplarsArtefact.load(folder), CalibrationSample.load(folder),
                               backend, embed, progress=False)
    out = ctx.artefacts / RESULT_DIR
    with atomic_output_dir(out, force=True) as tmp:
        write_describe_files(tmp, job, d, v, result, out, None, lambda _m: None,
                             evidence=TokenEvidence.load(ctx.artefacts / STAGE_DIR / "exemplars"))
    ctx.progress(1, 1, "done")
    return {"result": result.model_dump(mode="json")}


HANDLERS = {"generate": generate, "cluster": cluster, "activate": activate, "analyse": analyse, "explain": explain}
