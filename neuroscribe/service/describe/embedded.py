"""The describe job embedded: every stage in this process, then the result folder.

Result folder (DIR):
    job.json               the job without its sentences (they are in sentences.jsonl)
    descriptions.json      the DescribeResult: every unit's descriptors with f, base rate,
                           enrichment, p (q), its exemplar rows and responses, consistency, reference
    sentences.jsonl        per sentence: row, text, label, raw descriptors, vocabulary names (null: failed)
    vocabulary.json/.csv   clusters (name, size, count, members) and noise descriptors
    units.csv              one line per unit: layer, unit, descriptors, consistency, reference
    consistency.csv        per-unit Jaccard between the halves (empty: no descriptor on either side)
    evaluation.csv         K, precision@K, recall@K beside the paper's numbers (with labels)
    descriptions.html      one section per unit (``report/`` holds its figures, each PNG with a CSV)
    summary.txt
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from neuroscribe import __version__
from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import DescribeJob, DescribeResult
from neuroscribe.service.artefacts import atomic_output_dir, check_output_dir, csv_text as _csv, write_json, write_text
from neuroscribe.service.experts.summary import summary_tail
from neuroscribe.service.experts.embedded import default_cache_dir

__all__ = ["run_describe_job", "write_describe_files", "format_describe_summary", "make_descriptor_generator"]


def make_descriptor_generator(job: DescribeJob, cache_dir: Path | None):
    from neuroscribe.workers.generate import CachedBackend, make_backend

    backend = make_backend(job.generator)
    if cache_dir is None:
        return backend
    # saved after every batch: an interrupted run resumes where it stopped
    return CachedBackend(backend, Path(cache_dir) / "generations", chunk_size=job.generator.batch_size)


def _fmt(x) -> str:
    return "" if x is None else f"{x:.6g}" if isinstance(x, float) else str(x)


def format_describe_summary(result: DescribeResult, out: Path | None = None, timings: dict | None = None) -> str:
    d, v = result.descriptors, result.vocabulary
    lines = [f"neuroscribe describe: {result.provenance.model} on {result.dataset} ({result.n_sentences} sentences)",
             f"  descriptors: {d.n_distinct_descriptors} distinct, {d.n_failed} failed generations"
             + (f" ({', '.join(f'{k}: {n}' for k, n in sorted(d.failures.items()))})" if d.failures else ""),
             f"  vocabulary: {v.n_names} names ({v.n_clusters} clusters, {v.n_noise} unclustered)",
             f"  units: {result.n_described} of {result.n_units} described (k = {result.n_exemplars} exemplars, "
             f"t = {result.threshold:g}%" + (f", FDR {result.fdr:g}" if result.fdr else "") + ")"]
    c = result.consistency
    if c is not None:
        mean = "undefined" if c.mean is None else f"{c.mean:.3f}"
        lines.append(f"  consistency: mean Jaccard {mean} over {c.n_defined} units ({c.n_both_empty} empty on both "
                     f"halves, {c.n_one_side_empty} on one); paper 0.95")
    e = result.evaluation
    if e is not None:
        pr = ", ".join(f"P@{k} {_pct(p)} R@{k} {_pct(r)}" for k, p, r in zip(e.ks, e.precision, e.recall))
        lines.append(f"  evaluation vs labels ({e.n_units} units, recall over {e.n_recall_units}): {pr}; "
                     "paper P@2 75% R@2 50%")
        if e.baseline_sets:
            base = ", ".join(f"P@{k} {_pct(p)} R@{k} {_pct(r)}"
                             for k, p, r in zip(e.ks, e.baseline_precision, e.baseline_recall))
            lines.append(f"  chance: {e.baseline_sets} random exemplar sets ({e.baseline_n_units} described): {base}")
    lines += summary_tail(result.warnings, timings, out, "descriptions.html")
    return "\n".join(lines)


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def write_describe_files(tmp: Path, job: DescribeJob, descriptors, vocab, result: DescribeResult, out: Path | None,
                         timings: dict | None, log: Callable[[str], None]) -> str:
    """Every file of the result folder into ``tmp``; returns the summary."""
    texts, labels = job.dataset.texts, job.dataset.labels
    write_json(tmp / "job.json", job.model_dump(mode="json", exclude={"dataset": {"texts", "labels"}}))
    write_text(tmp / "descriptions.json", result.model_dump_json(indent=1) + "\n")
    rows = []
    for i, text in enumerate(texts):
        rows.append(json.dumps({"row": i, "text": text, "label": None if labels is None else labels[i],
                                "descriptors": descriptors.descriptors[i], "names": vocab.sets[i]},
                               ensure_ascii=False) + "\n")
    write_text(tmp / "sentences.jsonl", "".join(rows))
    vdict = vocab.vocabulary.to_dict(examples=10)
    write_json(tmp / "vocabulary.json", vocab.vocabulary.to_dict(examples=10**9))
    write_text(tmp / "vocabulary.csv", _csv(
        ["name", "kind", "distinct_descriptors", "count", "members"],
        [[c.name, "cluster", c.size, c.count, "; ".join(m for m, _ in c.members[:20])]
         for c in vocab.vocabulary.clusters]
        + [[d, "kept" if d in result.vocabulary.kept else "noise", 1, n, d] for d, n in vocab.vocabulary.noise]))
    write_text(tmp / "units.csv", _csv(
        ["layer", "unit", "n_descriptors", "descriptors", "consistency", "reference", "top_activation"],
        [[u.layer, u.unit, len(u.descriptors), "; ".join(f"{d.descriptor} ({d.f:.0f}%)" for d in u.descriptors),
          _fmt(u.consistency), "" if u.reference is None else "; ".join(u.reference), _fmt(u.activations[0])]
         for u in result.units]))
    if result.consistency is not None:
        write_text(tmp / "consistency.csv", _csv(["layer", "unit", "jaccard"],
                                                 [[u.layer, u.unit, _fmt(u.consistency)] for u in result.units]))
    if result.evaluation is not None:
        e = result.evaluation
        write_text(tmp / "evaluation.csv", _csv(
            ["k", "precision", "recall", "n_units", "n_recall_units", "random_sets_precision", "random_sets_recall",
             "paper_precision", "paper_recall"],
            [[k, _fmt(p), _fmt(r), e.n_units, e.n_recall_units, _fmt(bp), _fmt(br),
              _fmt(e.paper_precision_at_2) if k == 2 else "", _fmt(e.paper_recall_at_2) if k == 2 else ""]
             for k, p, r, bp, br in zip(e.ks, e.precision, e.recall, e.baseline_precision or (None,) * len(e.ks),
                                        e.baseline_recall or (None,) * len(e.ks))]))
    summary = format_describe_summary(result, out, timings)
    write_text(tmp / "summary.txt", summary + "\n")
    from neuroscribe.service.describe.page import write_describe_page

    write_describe_page(tmp, result, texts, labels, vdict)
    return summary


def run_describe_job(job: DescribeJob, out: str | Path, *, force: bool = False, progress: bool = True,
                     backend=None, embed=None, cache_dir: Path | None = None,
                     log: Callable[[str], None] = print) -> DescribeResult:
    """Run a describe job end to end and write DIR. Errors in the job (unknown model, layers out
    of range, cls pooling without [CLS], an unwritable DIR) are raised before any generation."""
    from neuroscribe.workers.activations import load_subject_model
    from neuroscribe.workers.activations.loading import peek_subject
    from neuroscribe.workers.describe.stages import (analysis_stage, check_describe_subject, descriptors_stage,
                                            exemplars_stage, vocabulary_stage)

    out = check_output_dir(out, force=force)
    t0 = time.perf_counter()
    spec = job.model
    # site, layers, pooling from the config and tokenizer: before any weights, generation or forward pass
    check_describe_subject(job, peek_subject(spec.name, revision=spec.revision,
                                             trust_remote_code=spec.trust_remote_code))
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    if backend is None:
        log(f"loading generator {job.generator.backend}:{job.generator.model}")
        backend = make_descriptor_generator(job, cache_dir)
    n = len(job.dataset.texts)
    log(f"writing descriptors of {n} sentences")
    descriptors = descriptors_stage(job, backend, progress=progress)
    t_gen = time.perf_counter()
    log("clustering the descriptors into a vocabulary")
    vocab = vocabulary_stage(job, descriptors, embed=embed)
    t_voc = time.perf_counter()
    log(f"exemplars: top {job.top_k_percent:g}% of {n} sentences per unit ({spec.site}, {spec.pooling.value} pooling)")
    log(f"loading subject model {spec.name}" + (f"@{spec.revision}" if spec.revision else ""))
    subject = load_subject_model(spec.name, revision=spec.revision, device=spec.device,
                                 trust_remote_code=spec.trust_remote_code)
    exemplars = exemplars_stage(job, subject, vocab, progress=progress)
    t_ex = time.perf_counter()
    result = analysis_stage(job, descriptors, vocab, exemplars, neuroscribe_version=__version__)
    timings = {"descriptors_s": t_gen - t0, "vocabulary_s": t_voc - t_gen, "exemplars_s": t_ex - t_voc,
               "analysis_s": time.perf_counter() - t_ex}
    with atomic_output_dir(out, force=force) as tmp:
        summary = write_describe_files(tmp, job, descriptors, vocab, result, out, timings, log)
    log(summary)
    return result


# packaged datasets: name -> (file in neuroscribe/data, default label names)
PACKAGED_DATASETS = {"amazon": ("amazon_cells_labelled.txt", {"1": "positive", "0": "negative"})}


def load_dataset_spec(path: Path, *, text_col: str, label_col: str | None, label_names: dict[str, str]):
    """A ``DatasetSpec`` from a file, or from a packaged dataset by name (``amazon``: the Amazon
    sentiment sentences, labels 1/0 named positive/negative unless ``label_names`` says otherwise).
    Errors name the field: dataset, text_col, label_col, label, label_names."""
    from importlib.resources import files

    from pydantic import ValidationError

    from neuroscribe.jobs.describe import DatasetSpec
    from neuroscribe.workers.datasets import load_dataset

    if str(path) in PACKAGED_DATASETS and not Path(path).exists():
        name, defaults = PACKAGED_DATASETS[str(path)]
        path = Path(str(files("neuroscribe") / "data" / name))
        label_names = label_names or dict(defaults)
    ds = load_dataset(path, text_col=text_col, label_col=label_col)
    if label_names and ds.labels is None:
        raise InvalidInput("label_names", f"{path} has no labels to name (give --label-col)")
    try:
        return DatasetSpec(name=Path(path).name, texts=tuple(ds.texts), labels=ds.labels, label_names=label_names)
    except ValidationError as e:
        first = e.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        loc = ".".join(str(x) for x in first["loc"])
        if not loc:  # a check across fields: its message starts with the field it names
            loc, _, msg = msg.partition(": ")
        raise InvalidInput(loc, msg) from None
