"""``neuroscribe rank`` (embedded) and ``neuroscribe submit rank`` (through the service): the
options of a rank job and the ``RankJob`` they build. Registered by ``service.cli``."""

from __future__ import annotations

from pathlib import Path

import click

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import Pooling, RankJob, SubjectModelSpec
from neuroscribe.service.cli_atlas import index_after_run
from neuroscribe.service.cli_common import apply_options, run_options, MODEL_FIELDS, as_field, dataset_ref, doc as _doc, local_job, silence_libraries, user_errors
from neuroscribe.service.cli_service import submit_and_print, submit_options
from neuroscribe.settings import Settings
from neuroscribe.jobs.rank import METHODS, InterventionSpec, ProbingSpec, RankingSpec
from neuroscribe.service.describe.cli import parse_label_names

__all__ = ["register", "rank_job_options", "build_rank_job", "load_rank_dataset", "parse_label_map", "RANK_FIELDS"]

# an error's field (of RankJob, or of a check) -> the option it comes from, where the names differ
# (a field named like its option, e.g. layer, ks, methods, needs no entry): see cli_common.user_errors
RANK_FIELDS = {
    **MODEL_FIELDS,
    "dataset.*": "dataset", "texts": "dataset",
    # a label problem is the label column's, or the file's when its labels are fixed (.txt, amazon)
    "label": ("label_col", "dataset"), "labels": ("label_col", "dataset"), "dataset.labels": ("label_col", "dataset"),
    "word_index": "word_col", "dataset.word_index": "word_col", "dataset.label_names": "label_names",
    "ranking.linear_tol": "linear_tol", "ranking.linear_max_iter": "linear_max_iter", "tol": "linear_tol",
    "max_iter": "linear_max_iter",
    "dataset.continuations": "continuations", "dataset.label_texts": "label_texts",
    "probing.probe": "probe", "probing.seeds": "seeds",
    "interventions.modes": "modes", "interventions.positions": "edit_positions", "positions": "edit_positions",
    "interventions.beta": "beta", "interventions.n_random": "n_random",
    "interventions.max_examples": "max_examples", "interventions.*": "interventions",
}


def parse_label_map(values: tuple[str, ...], field: str) -> dict[str, str] | None:
    """``--continuation '1= It was great.'`` (repeatable) -> {"1": " It was great."} (text kept as given)."""
    if not values:
        return None
    out: dict[str, str] = {}
    for v in values:
        label, sep, text = v.partition("=")
        if not sep or not label.strip() or not text.strip():
            raise InvalidInput(field, f"{v!r} is not LABEL=TEXT")
        if label.strip() in out:
            raise InvalidInput(field, f"label {label.strip()!r} is given twice")
        out[label.strip()] = text
    return out


_OPTIONS = [
    click.option("--model", default="minilm", show_default=True, help=_doc(SubjectModelSpec, "name")),
    click.option("--revision", default=None, help=_doc(SubjectModelSpec, "revision")),
    click.option("--dataset", type=click.Path(path_type=Path), required=True, metavar="FILE",
                 help="Labelled examples: .tsv, .csv or .jsonl with a text and a label column, .txt with "
                      "'TEXT<TAB>LABEL' lines, or 'amazon' (the packaged sentiment sentences). `submit rank` also "
                      "takes sha256:HEX, a dataset uploaded with `neuroscribe datasets upload --kind rank`."),
    click.option("--text-col", default=None,
                 help="Column (tsv/csv) or key (jsonl) of the text [default: text]. Not for .txt files or "
                      "'amazon', whose columns are fixed."),
    click.option("--label-col", default=None,
                 help="Column (tsv/csv) or key (jsonl) of the label [default: label]. Not for .txt files "
                      "('TEXT<TAB>LABEL' lines) or 'amazon'."),
    click.option("--word-col", default=None, help="Column of the target word's index (0-based, whitespace words): "
                                                  "a token-level attribute; the response is read at that word."),
    click.option("--layer", type=int, default=None, help="The layer whose units are ranked [default: the last]."),
    click.option("--k", "ks", type=int, multiple=True, help="A top-k size (repeatable) [default: 10 50]."),
    click.option("--methods", default=",".join(METHODS), show_default=True,
                 help="Comma-separated rankings: " + ", ".join(METHODS) + "."),
    click.option("--site", default="mlp_post", show_default=True, help=_doc(SubjectModelSpec, "site")),
    click.option("--pooling", type=click.Choice([p.value for p in Pooling]), default="mean", show_default=True,
                 help=_doc(SubjectModelSpec, "pooling") + " (sentence-level attributes)"),
    click.option("--rank-fraction", type=float, default=0.5, show_default=True,
                 help="Share of each class the rankings are computed on; probing and interventions use the rest."),
    click.option("--same-examples", is_flag=True,
                 help="Rank, probe and intervene on the same examples (biased: top units look better, bottom units "
                      "worse than chance); for comparison with papers that did so."),
    click.option("--label-name", "label_names", multiple=True, metavar="LABEL=NAME",
                 help="A readable name for a label, e.g. '1=positive' (repeatable); shown beside the label."),
    click.option("--linear-tol", type=float, default=1e-4, show_default=True, help=_doc(RankingSpec, "linear_tol")),
    click.option("--linear-max-iter", type=int, default=20000, show_default=True,
                 help=_doc(RankingSpec, "linear_max_iter")),
    click.option("--stability/--no-stability", default=True, show_default=True, help=_doc(RankingSpec, "stability")),
    click.option("--probe", type=click.Choice(["logreg", "linear_svm", "mlp"]), default="logreg", show_default=True,
                 help="The evaluation probe, separate from the rankings' own."),
    click.option("--seeds", type=int, default=5, show_default=True, help=_doc(ProbingSpec, "seeds")),
    click.option("--interventions/--no-interventions", default=True, show_default=True,
                 help="Measure used information by interventions on the top-k units against random-k."),
    click.option("--modes", default="zero,mean,translate", show_default=True, help="Intervention modes."),
    click.option("--edit-positions", default="all", show_default=True, metavar="all|attribute",
                 help="Where the units are edited, comma-separated, each reported on its own rows: 'all' (every "
                      "position) and/or 'attribute' (only the tokens of each example's target word, as the paper "
                      "does; token-level data, --word-col), e.g. 'all,attribute'."),
    click.option("--beta", type=float, default=8.0, show_default=True, help=_doc(InterventionSpec, "beta")),
    click.option("--n-random", type=int, default=20, show_default=True, help=_doc(InterventionSpec, "n_random")),
    click.option("--max-examples", type=int, default=200, show_default=True,
                 help=_doc(InterventionSpec, "max_examples")),
    click.option("--continuation", "continuations", multiple=True, metavar="LABEL=TEXT",
                 help="Decoders: a label-bearing continuation per label, e.g. '1= It was great.' (repeatable)."),
    click.option("--label-text", "label_texts", multiple=True, metavar="LABEL=TEXT",
                 help="Sentence encoders: a description per label for the zero-shot choice, e.g. "
                      "'1=A positive review.' [default for labels 0/1: a positive / negative review]."),
    *run_options("Seed for splits, random-k and draws."),
]


rank_job_options = apply_options(_OPTIONS)  # shared by the command and its `submit` twin


def build_rank_job(*, model, revision, dataset, text_col, label_col, word_col, layer, ks, methods, site, pooling,
                   rank_fraction, same_examples, probe, seeds, interventions, modes, beta, n_random, max_examples,
                   continuations, label_texts, batch_size, max_length, device, seed, trust_remote_code,
                   label_names=(), linear_tol=1e-4, linear_max_iter=20000, stability=True,
                   edit_positions="all") -> RankJob:
    """The ``RankJob`` of the command line; every error names its field, before any model runs.
    ``text_col`` / ``label_col`` / ``word_col``: None when not given (text / label for tables; a
    .txt file or 'amazon' takes none)."""
    shaping = dict(text_col=text_col, label_col=label_col, word_col=word_col, continuations=continuations,
                   label_texts=label_texts, label_names=label_names)
    data = dataset_ref(dataset, **shaping) or load_rank_dataset(dataset, **shaping)
    # the specs as dicts: the job validates them, so an error names its path (interventions.n_random...)
    subject = dict(name=model, revision=revision, site=site, pooling=pooling, batch_size=batch_size,
                   max_length=max_length, device=device, trust_remote_code=trust_remote_code)
    method_list = tuple(m.strip() for m in methods.split(",") if m.strip())
    unknown = sorted(set(method_list) - set(METHODS))
    if unknown:
        raise InvalidInput("methods", f"unknown {unknown} (choose from {', '.join(METHODS)})")
    spec = None
    if interventions:
        spec = dict(modes=tuple(m.strip() for m in modes.split(",") if m.strip()), beta=beta,
                    n_random=n_random, max_examples=max_examples,
                    positions=tuple(p.strip() for p in edit_positions.split(",") if p.strip()))
    extra_k = {"ks": tuple(ks)} if ks else {}
    return RankJob(dataset=data, model=subject, layer=layer, methods=method_list,
                   rank_fraction=None if same_examples else rank_fraction,
                   probing=dict(probe=probe, seeds=seeds), interventions=spec, seed=seed,
                   ranking=dict(linear_tol=linear_tol, linear_max_iter=linear_max_iter, stability=stability), **extra_k)


def load_rank_dataset(dataset, *, text_col=None, label_col=None, word_col=None, continuations=(), label_texts=(),
                      label_names=()):
    """The ``AttributeDataSpec`` of ``--dataset FILE`` and the options that shape it (job or upload)."""
    from neuroscribe.workers.rank.attributes import load_attribute_data

    data = load_attribute_data(dataset, text_col=text_col, label_col=label_col, word_col=word_col)
    extra = {"continuations": parse_label_map(continuations, "continuations"),
             "label_texts": parse_label_map(label_texts, "label_texts"),
             "label_names": parse_label_names(tuple(label_names)) or None}
    with as_field("dataset"):  # dataset.continuations, dataset.label_texts...
        return type(data)(**{**data.model_dump(), **{k: v for k, v in extra.items() if v is not None}})


def register(cli: click.Group, submit: click.Group) -> None:
    @cli.command("rank")
    @rank_job_options
    @click.option("--out", "out", type=click.Path(path_type=Path), required=True, metavar="DIR",
                  help="Folder for the results; written under a temporary name, then renamed.")
    @click.option("--force", is_flag=True, help="Replace DIR if it exists and is not empty.")
    @click.option("--quiet", is_flag=True, help="No progress bars.")
    @user_errors(fields=RANK_FIELDS)
    def rank_cmd(out, force, quiet, **options):
        """Rank the units of a layer for an attribute (Antverg & Belinkov 2022): linear (elastic-net
        probe), gaussian (greedy selection), probeless (class mean differences), ap (one-vs-rest) and
        random; judge each ranking by a separate probe on its top-, bottom- and random-k units (and
        by its own probe, to show the confound), and by interventions on the top-k units against
        random-k. Writes DIR/rankings.json, the tables and DIR/rankings.html."""
        from neuroscribe.service.rank.embedded import run_rank_job

        if quiet:
            silence_libraries()
        settings = Settings.from_env()
        run_rank_job(local_job(build_rank_job(**options), "rank"), out, force=force, progress=not quiet,
                     settings=settings)
        index_after_run(out, settings, quiet)

    @submit.command("rank")
    @rank_job_options
    @submit_options
    @user_errors(fields=RANK_FIELDS)
    def submit_rank_cmd(url, api_key, idempotency_key, wait_, **options):
        """Submit a rank job: the same options as `neuroscribe rank`, run by the service's workers
        (activate -> analyse). The examples travel inside the job, or --dataset sha256:HEX names a dataset
        uploaded before (`neuroscribe datasets upload --kind rank`). Prints the job id."""
        submit_and_print(build_rank_job(**options), url, api_key, idempotency_key, wait_)
