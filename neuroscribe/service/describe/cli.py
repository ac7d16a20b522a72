"""``neuroscribe describe`` (embedded) and ``neuroscribe submit describe`` (through the service):
the options of a describe job and the ``DescribeJob`` they build. Registered by ``service.cli``."""

from __future__ import annotations

from pathlib import Path

import click

from neuroscribe.jobs.describe import VocabularySpec
from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import DescribeJob, GeneratorSpec, Pooling, SubjectModelSpec
from neuroscribe.service.cli_atlas import index_after_run
from neuroscribe.service.cli_common import apply_options, run_options, MODEL_FIELDS, as_field, dataset_ref, doc as _doc, local_job, parse_layers, silence_libraries, user_errors
from neuroscribe.service.cli_service import submit_and_print, submit_options
from neuroscribe.settings import Settings

__all__ = ["register", "describe_job_options", "build_describe_job", "load_describe_dataset", "parse_label_names",
           "DESCRIBE_FIELDS"]

# an error's field (of DescribeJob, or of a check) -> the option it comes from, where the names differ
# (a field named like its option, e.g. threshold, ks, text_col, needs no entry): see cli_common.user_errors
DESCRIBE_FIELDS = {
    **MODEL_FIELDS, "layers": "layers",
    "dataset.*": "dataset", "dataset.label_names": "label_names", "dataset.label_word_match": "label_word_match",
    # a label problem is the label column's, or the file's when its labels are fixed (.txt, amazon)
    "label": ("label_col", "dataset"), "labels": ("label_col", "dataset"), "dataset.labels": ("label_col", "dataset"),
    "top_k_percent": "top_percent", "min_valid": "min_valid", "min_valid_fraction": "min_valid_fraction",
    "vocabulary.min_cluster_size": "min_cluster_size", "vocabulary.min_samples": "min_samples",
    "vocabulary.selection": "cluster_selection", "vocabulary.reduce_to": "reduce_to",
    "generator.*": "generator", "generator.batch_size": "gen_batch_size", "generator.threads": "gen_threads",
}


def parse_label_names(values: tuple[str, ...]) -> dict[str, str]:
    """``--label-name 1=positive --label-name 0=negative`` -> {"1": "positive", "0": "negative"}."""
    out: dict[str, str] = {}
    for v in values:
        label, sep, name = v.partition("=")
        if not sep or not label.strip() or not name.strip():
            raise InvalidInput("label_names", f"{v!r} is not LABEL=NAME (e.g. 1=positive)")
        if label.strip() in out:
            raise InvalidInput("label_names", f"label {label.strip()!r} is named twice")
        out[label.strip()] = name.strip()
    return out


_OPTIONS = [
    click.option("--model", default="minilm", show_default=True, help=_doc(SubjectModelSpec, "name")),
    click.option("--revision", default=None, help=_doc(SubjectModelSpec, "revision")),
    click.option("--dataset", "dataset", type=click.Path(path_type=Path), required=True, metavar="FILE",
                 help="Sentences to describe: .txt (one per line; 'TEXT<TAB>LABEL' lines carry labels, as in the "
                      "sentiment files), .tsv, .csv or .jsonl (columns named by --text-col / --label-col); or "
                      "'amazon', the packaged 1,000 Amazon review sentences (labels 1=positive, 0=negative). "
                      "`submit describe` also takes sha256:HEX, a dataset uploaded with `neuroscribe datasets upload`."),
    click.option("--text-col", default=None,
                 help="Column (tsv/csv) or key (jsonl) of the text [default: text]. Not for .txt files or "
                      "'amazon', whose columns are fixed."),
    click.option("--label-col", default=None,
                 help="Column or key of a reference label (e.g. sentiment), for precision@K / recall@K. Not for "
                      ".txt files ('TEXT<TAB>LABEL' lines) or 'amazon'."),
    click.option("--label-name", "label_names", multiple=True, metavar="LABEL=NAME",
                 help="The descriptor name a label stands for in the evaluation, e.g. --label-name 1=positive "
                      "--label-name 0=negative (repeatable; an unnamed label stands for itself). Named labels "
                      "stay out of clustering."),
    click.option("--label-word-match/--no-label-word-match", default=True, show_default=True,
                 help="A descriptor holding a label's name as a whole word (e.g. 'positive feedback' for 'positive') "
                      "also gives its sentence that name."),
    click.option("--layers", "layers", multiple=True, metavar="LIST", help="Layers to read, e.g. 0,2-4. Default: all."),
    click.option("--site", default="mlp_post", show_default=True, help=_doc(SubjectModelSpec, "site")),
    click.option("--pooling", type=click.Choice([p.value for p in Pooling]), default="mean", show_default=True,
                 help=_doc(SubjectModelSpec, "pooling") + " mean by measurement (most descriptions verified on the "
                      "held-out half; docs/methods.md#b3); cls, the paper's for BERT, needs a [CLS] token."),
    click.option("--top-percent", type=float, default=1.0, show_default=True, help=_doc(DescribeJob, "top_k_percent")),
    click.option("--threshold", type=float, default=50.0, show_default=True, help=_doc(DescribeJob, "threshold")),
    click.option("--min-valid", type=int, default=5, show_default=True, help=_doc(DescribeJob, "min_valid")),
    click.option("--min-valid-fraction", type=float, default=0.5, show_default=True,
                 help=_doc(DescribeJob, "min_valid_fraction")),
    click.option("--fdr", type=float, default=None, help=_doc(DescribeJob, "fdr")),
    click.option("--fdr-family", type=click.Choice(["tested", "all"]), default="tested", show_default=True,
                 help=_doc(DescribeJob, "fdr_family")),
    click.option("--min-cluster-size", type=int, default=5, show_default=True,
                 help=_doc(VocabularySpec, "min_cluster_size")),
    click.option("--min-samples", type=int, default=None, help=_doc(VocabularySpec, "min_samples")),
    click.option("--cluster-selection", type=click.Choice(["leaf", "eom"]), default="leaf", show_default=True,
                 help=_doc(VocabularySpec, "selection")),
    click.option("--reduce-to", type=int, default=None, help=_doc(VocabularySpec, "reduce_to")),
    click.option("--verify-fdr", type=float, default=0.05, show_default=True, help=_doc(DescribeJob, "verify_fdr")),
    click.option("--consistency/--no-consistency", default=True, show_default=True,
                 help=_doc(DescribeJob, "consistency")),
    click.option("--token-evidence/--no-token-evidence", default=True, show_default=True,
                 help=_doc(DescribeJob, "token_evidence")),
    click.option("--k", "ks", type=int, multiple=True, help="K of precision@K / recall@K (repeatable) [default: 1 2 3]."),
    click.option("--generator", default="llamacpp:smollm2", show_default=True, metavar="SPEC",
                 help="LLM that writes the descriptors: BACKEND[:MODEL][@BASE_URL] (llamacpp, transformers, vllm, "
                      "openai, fake)."),
    click.option("--samples", type=int, default=1, show_default=True, help=_doc(DescribeJob, "samples")),
    click.option("--min-votes", type=int, default=1, show_default=True, help=_doc(DescribeJob, "min_votes")),
    click.option("--retries", type=int, default=1, show_default=True, help=_doc(DescribeJob, "retries")),
    click.option("--explain-units", type=int, default=10, show_default=True, metavar="N",
                 help=_doc(DescribeJob, "explain_units")),
    click.option("--detection-sentences", type=int, default=5, show_default=True, metavar="N",
                 help=_doc(DescribeJob, "detection_sentences")),
    click.option("--gen-batch-size", type=int, default=16, show_default=True, help=_doc(GeneratorSpec, "batch_size")),
    click.option("--gen-threads", type=int, default=None, metavar="N",
                 help=_doc(GeneratorSpec, "threads") + " Above this machine's cores is an error."),
    *run_options("Seed for generation and the split."),
]


describe_job_options = apply_options(_OPTIONS)  # shared by the command and its `submit` twin


def build_describe_job(*, model, revision, dataset, text_col, label_col, label_names, label_word_match, layers, site,
                       pooling,
                       top_percent, threshold, fdr, fdr_family, min_cluster_size, min_samples, cluster_selection, reduce_to,
                       consistency, ks, generator, gen_batch_size, gen_threads=None, batch_size, max_length, device, seed,
                       trust_remote_code, min_valid=5, min_valid_fraction=0.5, verify_fdr=0.05, samples=1,
                       min_votes=1, retries=1, explain_units=10, detection_sentences=5,
                       token_evidence=True) -> DescribeJob:
    """The ``DescribeJob`` of the command line; every error names its field, before any model runs.
    ``text_col`` / ``label_col``: None when not given (a .txt file or 'amazon' takes neither)."""
    data = dataset_ref(dataset, text_col=text_col, label_col=label_col, label_names=label_names,
                       label_word_match=not label_word_match) or load_describe_dataset(
        dataset, text_col=text_col, label_col=label_col, label_names=label_names, label_word_match=label_word_match)
    # the specs as dicts: the job validates them, so an error names its path (model.batch_size...)
    subject = dict(name=model, revision=revision, site=site, pooling=pooling, layers=parse_layers(layers),
                   batch_size=batch_size, max_length=max_length, device=device, trust_remote_code=trust_remote_code)
    with as_field("generator"):
        gen = (GeneratorSpec.from_string(generator, batch_size=gen_batch_size, threads=gen_threads) if generator
               else GeneratorSpec())
    vocab = dict(min_cluster_size=min_cluster_size, min_samples=min_samples, selection=cluster_selection,
                 reduce_to=reduce_to)
    extra = {"ks": tuple(ks)} if ks else {}
    return DescribeJob(dataset=data, model=subject, generator=gen, vocabulary=vocab, top_k_percent=top_percent,
                       threshold=threshold, fdr=fdr, fdr_family=fdr_family, consistency=consistency, seed=seed,
                       min_valid=min_valid, min_valid_fraction=min_valid_fraction, verify_fdr=verify_fdr,
                       samples=samples, min_votes=min_votes, retries=retries, explain_units=explain_units,
                       detection_sentences=detection_sentences, token_evidence=token_evidence, **extra)


def load_describe_dataset(dataset, *, text_col=None, label_col=None, label_names=(), label_word_match=True):
    """The ``DatasetSpec`` of ``--dataset FILE`` and the options that shape it (job or upload)."""
    from neuroscribe.service.describe.dataset import load_dataset_spec

    data = load_dataset_spec(dataset, text_col=text_col, label_col=label_col,
                             label_names=parse_label_names(tuple(label_names)))
    return data.model_copy(update={"label_word_match": label_word_match})


def register(cli: click.Group, submit: click.Group) -> None:
    @cli.command("describe")
    @describe_job_options
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                  help="Where finished LLM generations are kept, so a re-run resumes and regenerates nothing "
                       "[default: $NEUROSCRIBE_CACHE or ~/.cache/neuroscribe].")
    @click.option("--out", "out", type=click.Path(path_type=Path), required=True, metavar="DIR",
                  help="Folder for the results; written under a temporary name, then renamed.")
    @click.option("--force", is_flag=True, help="Replace DIR if it exists and is not empty.")
    @click.option("--quiet", is_flag=True, help="No progress bars.")
    @user_errors(fields=DESCRIBE_FIELDS)
    def describe_cmd(cache_dir, out, force, quiet, **options):
        """Describe the neurons of a model with LLM-written descriptors of a dataset's sentences
        (Mondal et al. 2024): each unit gets the descriptors held by >= --threshold % of its top
        --top-percent % distinct sentences on which it fires (at least --min-valid of them, and
        --min-valid-fraction of k), with base rates, enrichment and hypergeometric p-values; the
        split-half consistency; precision@K / recall@K against the labels when the dataset has them.
        Writes DIR/descriptions.json, the vocabulary, the tables and DIR/descriptions.html."""
        from neuroscribe.service.describe.embedded import run_describe_job

        if quiet:
            silence_libraries()
        job = local_job(build_describe_job(**options), "describe")
        settings = Settings.from_env(cache_dir=cache_dir)
        run_describe_job(job, out, force=force, progress=not quiet, settings=settings)
        index_after_run(out, settings, quiet)

    @submit.command("describe")
    @describe_job_options
    @submit_options
    @user_errors(fields=DESCRIBE_FIELDS)
    def submit_describe_cmd(url, api_key, idempotency_key, wait_, **options):
        """Submit a describe job: the same options as `neuroscribe describe`, run by the service's
        workers (generate -> cluster -> activate -> analyse -> explain). The sentences travel inside the job,
        or --dataset sha256:HEX names a dataset uploaded before (`neuroscribe datasets upload`).
        Prints the job id (and, with --wait, waits for the result)."""
        submit_and_print(build_describe_job(**options), url, api_key, idempotency_key, wait_)
