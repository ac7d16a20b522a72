"""``neuroscribe experts`` (embedded) and ``neuroscribe submit experts`` (through the service): the
options of an experts job and the ``ExpertsJob`` they build. Registered from ``service.registry``."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import ConceptSpec, ExpertsJob, GeneratorSpec, Pooling, SamplingSpec, SubjectModelSpec
from neuroscribe.jobs.experts_suite import AlignmentSpec, CausalSpec, PairSpec, StabilitySpec, SweepTarget
from neuroscribe.service.cli_atlas import index_after_run
from neuroscribe.service.cli_common import (MODEL_FIELDS, apply_options, as_field, doc as _doc, parse_layers,
                                            run_options, silence_libraries, user_errors, validation_message)
from neuroscribe.service.cli_service import submit_and_print, submit_options
from neuroscribe.settings import Settings

__all__ = ["register", "experts_job_options", "build_experts_job", "sweep_from_options", "EXPERTS_FIELDS"]

# an error's field (of ExpertsJob, or of a check) -> the option it comes from, where the names differ
# (a field named like its option, e.g. tau, n_pos, seed, needs no entry): see cli_common.user_errors
EXPERTS_FIELDS = {
    **MODEL_FIELDS, "model": "models", "model.name": "models", "model.revision": "revisions",
    "revision": "revisions", "layers": "layers",
    "concept": "concepts", "concepts.*": "concepts", "sentences": "sentences_file", "sentences.*": "sentences_file",
    "generator.*": "generator", "generator.batch_size": "gen_batch_size", "generator.threads": "gen_threads",
    "generator.sampling.temperature": "temperature", "generator.sampling.max_new_tokens": "max_new_tokens",
    "generator.trust_remote_code": "trust_remote_code",
    "stability.folds": "folds", "stability.taus": "stability_taus", "stability.repeats": "stability_repeats",
    "stability.n_pos": "n_pos", "stability.n_neg": "n_neg", "stability.*": "stability",
    "alignment": ("word_pairs_file", "men_concepts"), "alignment.*": ("word_pairs_file", "men_concepts"),
    "causal.n_random": "causal_random", "causal.*": "causal",
    "sweep": "models", "sweep.*": "models", "sweep.*.revision": "revisions", "sweep.*.model": "models",
    "sweep.*.layers": "layers",
}


_EXPERTS_JOB_OPTIONS = [
    click.option("--model", "models", multiple=True, default=("minilm",), show_default=True,
                  help=_doc(SubjectModelSpec, "name") + " Repeat for a sweep over model sizes."),
    click.option("--revision", "revisions", multiple=True,
                  help=_doc(SubjectModelSpec, "revision") + " Repeat for a sweep over checkpoints (every --model "
                       "at every --revision). The last model at the last revision is the main one: experts, "
                       "stability, alignment and causal check are computed on it; the sweep counts experts on all."),
    click.option("--random-init", is_flag=True,
                  help="Add to the sweep a randomly initialised copy (seeded) of each model's architecture."),
    click.option("--concept", "concepts", multiple=True, metavar="NAME[:CATEGORY]",
                  help="A concept to analyse; repeat for several (e.g. --concept cat:animal --concept bus)."),
    click.option("--sentences", "sentences_file", type=click.Path(path_type=Path), default=None,
                  help='Bring your own sentences: a JSONL file, one {"text", "concept", "label"} per line '
                       "(label 1 = positive, 0 = negative). No LLM is used then."),
    click.option("--tau", type=float, default=0.9, show_default=True, help=_doc(ExpertsJob, "tau")),
    click.option("--layers", "layers", multiple=True, metavar="LIST",
                  help="Layers to read, e.g. 0,2-4 (repeatable). Default: all."),
    click.option("--site", default="mlp_post", show_default=True, help=_doc(SubjectModelSpec, "site")),
    click.option("--pooling", type=click.Choice([p.value for p in Pooling]), default="max", show_default=True,
                  help=_doc(SubjectModelSpec, "pooling")),
    click.option("--n-pos", type=int, default=20, show_default=True, help=_doc(ExpertsJob, "n_pos")),
    click.option("--n-neg", type=int, default=20, show_default=True, help=_doc(ExpertsJob, "n_neg")),
    click.option("--top-n", type=int, default=10, show_default=True, help=_doc(ExpertsJob, "top_n")),
    click.option("--stability/--no-stability", default=True, show_default=True,
                  help="K-fold stability of the experts and the (n+, n-, tau) subsample sweep."),
    click.option("--folds", type=int, default=3, show_default=True, help=_doc(StabilitySpec, "folds")),
    click.option("--stability-tau", "stability_taus", type=float, multiple=True, metavar="TAU",
                  help="A tau of the stability sweep (repeatable) [default: 0.6 0.7 0.8 0.9 0.95]."),
    click.option("--stability-repeats", type=int, default=5, show_default=True, help=_doc(StabilitySpec, "repeats")),
    click.option("--align", is_flag=True,
                  help="Human alignment: Spearman rho between concept similarities (experts, and hidden-state "
                       "baselines) and the packaged MEN ratings, over the pairs among the concepts."),
    click.option("--word-pairs", "word_pairs_file", type=click.Path(path_type=Path), default=None, metavar="FILE",
                  help="Human alignment on your own ratings: lines 'word1 word2 score' (implies --align)."),
    click.option("--men-concepts", type=int, default=None, metavar="N",
                  help="Add N concepts chosen from the word pairs (packaged MEN or --word-pairs) so that many "
                       "pairs fall among them (implies --align)."),
    click.option("--causal", is_flag=True,
                  help="Causal check (decoder models): fix each concept's experts to their median positive "
                       "response; change in log P(concept word) against as many random units."),
    click.option("--causal-random", type=int, default=10, show_default=True, help=_doc(CausalSpec, "n_random")),
    click.option("--generator", "generator", default="llamacpp:smollm2", show_default=True, metavar="SPEC",
                  help="LLM that writes the sentences: BACKEND[:MODEL][@BASE_URL], backends llamacpp (GGUF files, "
                       "CPU), transformers, vllm, openai (an OpenAI-compatible server such as `vllm serve`), fake."),
    click.option("--temperature", type=float, default=None, help=_doc(SamplingSpec, "temperature") + " [default: 0.4]"),
    click.option("--max-new-tokens", type=int, default=None, help=_doc(SamplingSpec, "max_new_tokens") + " [default: 320]"),
    click.option("--rounds", "max_rounds", type=int, default=4, show_default=True, help=_doc(ExpertsJob, "max_rounds")),
    click.option("--gen-batch-size", type=int, default=16, show_default=True, help=_doc(GeneratorSpec, "batch_size")),
    click.option("--gen-threads", type=int, default=None, metavar="N",
                 help=_doc(GeneratorSpec, "threads") + " Above this machine's cores is an error."),
    *run_options("Seed for generation and every random choice."),
]


experts_job_options = apply_options(_EXPERTS_JOB_OPTIONS)  # shared by the command and its `submit` twin


def sweep_from_options(models: tuple[str, ...], revisions: tuple[str, ...], random_init: bool):
    """(main model, main revision, other targets): every Hugging Face model at every revision (packaged
    aliases and local folders once, without one), the last one main; ``random_init`` adds one
    random-init copy per model (its config read at the first revision)."""
    from neuroscribe.workers.models.hub import takes_revision

    models = tuple(dict.fromkeys(models)) or ("minilm",)
    revs = tuple(dict.fromkeys(revisions)) or (None,)
    if revisions and not any(takes_revision(m) for m in models):
        raise InvalidInput("revision", "--revision applies only to Hugging Face ids, not to packaged aliases or "
                                       f"local folders ({', '.join(models)})")
    own = {m: revs if takes_revision(m) else (None,) for m in models}  # a local model has no revisions
    trained = [SweepTarget(name=m, revision=r) for m in models for r in own[m]]
    main = trained[-1]
    others = trained[:-1]
    if random_init:
        others += [SweepTarget(name=m, revision=own[m][0], random_init=True) for m in models]
    return main.name, main.revision, tuple(others)


def _alignment_spec(align: bool, word_pairs_file: Path | None, men_concepts: int | None):
    """The AlignmentSpec the options ask for (None without --align / --word-pairs / --men-concepts)."""
    if not (align or word_pairs_file is not None or men_concepts is not None):
        return None
    if word_pairs_file is None:
        return AlignmentSpec()
    from neuroscribe.workers.experts.alignment import load_word_pairs

    pairs = load_word_pairs(word_pairs_file)
    return AlignmentSpec(dataset=Path(word_pairs_file).name,
                         pairs=tuple(PairSpec(word1=p.word1, word2=p.word2, score=p.score) for p in pairs))


def build_experts_job(*, concepts, sentences_file, generator, temperature, max_new_tokens, gen_batch_size, gen_threads=None,
                      trust_remote_code, models, revisions, random_init=False, site, pooling, layers, batch_size,
                      max_length, device, stability=True, folds=3, stability_taus=(), stability_repeats=5,
                      align=False, word_pairs_file=None, men_concepts=None, causal=False, causal_random=10,
                      **rest) -> ExpertsJob:
    """The ``ExpertsJob`` the command line describes (shared with ``neuroscribe submit`` later)."""
    from neuroscribe.workers.experts.sentences import load_sentences_jsonl

    with as_field("model"):  # an empty --model: its SweepTarget's name
        model, revision, sweep = sweep_from_options(tuple(models), tuple(revisions), random_init)
    alignment = _alignment_spec(align, word_pairs_file, men_concepts)
    if men_concepts is not None:
        if sentences_file is not None:
            raise InvalidInput("men-concepts", "cannot add concepts to a --sentences file (it has its own)")
        from neuroscribe.workers.experts.alignment import WordPair, load_word_pairs, men_concepts as choose

        pairs = ([WordPair(p.word1, p.word2, p.score) for p in alignment.pairs] if alignment.pairs
                 else load_word_pairs())
        if men_concepts < 1:
            raise InvalidInput("men-concepts", f"must be >= 1, got {men_concepts}")
        given = [" ".join(c.partition(":")[0].split()).casefold() for c in concepts]
        concepts = tuple(concepts) + tuple(w for w in choose(pairs, men_concepts, seed=rest.get("seed", 0))
                                           if w not in given)
    sentences = None
    if sentences_file is not None:
        sentences = tuple(load_sentences_jsonl(sentences_file))
        if not concepts:  # every concept of the file
            concepts = tuple(dict.fromkeys(s.concept for s in sentences))
        for c in concepts:
            name = " ".join(c.partition(":")[0].split())
            labels = {s.label for s in sentences if s.concept == name}
            if not labels:
                raise InvalidInput("concept", f"{name!r} has no sentences in {sentences_file}")
            if labels != {0, 1}:
                missing = "positives (label 1)" if 1 not in labels else "negatives (label 0)"
                raise InvalidInput("sentences", f"{sentences_file} has no {missing} for concept {name!r}")
    if not concepts:
        raise InvalidInput("concept", "give at least one --concept (or a --sentences file)")
    try:
        concept_specs = tuple(ConceptSpec.from_string(c) for c in concepts)
    except ValidationError as e:
        raise InvalidInput("concept", validation_message(e).split(": ", 1)[-1]) from None
    sampling = {k: v for k, v in {"temperature": temperature, "max_new_tokens": max_new_tokens}.items() if v is not None}
    with as_field("generator"):  # its errors as generator.batch_size, generator.sampling.temperature...
        gen = GeneratorSpec() if sentences is not None else GeneratorSpec.from_string(
            generator, batch_size=gen_batch_size, threads=gen_threads, trust_remote_code=trust_remote_code,
            sampling=sampling,
        )
    # the specs as dicts: the job validates them, so an error names its path (model.batch_size, stability.folds)
    subject = dict(name=model, revision=revision, site=site, pooling=pooling, layers=parse_layers(layers),
                   batch_size=batch_size, max_length=max_length, device=device, trust_remote_code=trust_remote_code)
    stab = dict(folds=folds, repeats=stability_repeats,
                **({"taus": tuple(stability_taus)} if stability_taus else {})) if stability else None
    causal_spec = dict(n_random=causal_random) if causal else None
    return ExpertsJob(concepts=concept_specs, model=subject, generator=gen, sentences=sentences, stability=stab,
                      alignment=alignment, sweep=sweep, causal=causal_spec, **rest)


def register(cli: click.Group, submit: click.Group) -> None:
    @cli.command("experts")
    @experts_job_options
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                  help="Where finished LLM generations and model responses are kept, so a re-run resumes and "
                       "repeats no forward pass [default: $NEUROSCRIBE_CACHE or ~/.cache/neuroscribe].")
    @click.option("--out", "out", type=click.Path(path_type=Path), required=True, metavar="DIR",
                  help="Folder for the results; written under a temporary name, then renamed.")
    @click.option("--force", is_flag=True, help="Replace DIR if it exists and is not empty.")
    @click.option("--quiet", is_flag=True, help="No progress bars.")
    @user_errors(fields=EXPERTS_FIELDS)
    def experts_cmd(models, revisions, random_init, concepts, sentences_file, tau, layers, site, pooling, n_pos, n_neg,
                    top_n, stability, folds, stability_taus, stability_repeats, align, word_pairs_file, men_concepts,
                    causal, causal_random, generator, temperature, max_new_tokens, max_rounds, gen_batch_size, gen_threads,
                    batch_size, max_length, device, seed, trust_remote_code, cache_dir, out, force, quiet):
        """Find the expert neurons of concepts: units whose response separates sentences about a
        concept from sentences without it with average precision >= tau.

        Without --sentences, an LLM (the packaged SmolLM2-135M-Instruct by default) writes fact- and
        story-style positive and negative sentences for every concept."""
        from neuroscribe.service.experts.embedded import run_experts_job

        if quiet:
            silence_libraries()
        job = build_experts_job(
            models=models, revisions=revisions, random_init=random_init, concepts=concepts,
            sentences_file=sentences_file, tau=tau, layers=layers, site=site, pooling=pooling, n_pos=n_pos, n_neg=n_neg,
            top_n=top_n, stability=stability, folds=folds, stability_taus=stability_taus,
            stability_repeats=stability_repeats, align=align, word_pairs_file=word_pairs_file,
            men_concepts=men_concepts, causal=causal, causal_random=causal_random,
            generator=generator, temperature=temperature, max_new_tokens=max_new_tokens, max_rounds=max_rounds,
            gen_batch_size=gen_batch_size, gen_threads=gen_threads, batch_size=batch_size, max_length=max_length, device=device,
            seed=seed, trust_remote_code=trust_remote_code,
        )
        settings = Settings.from_env(cache_dir=cache_dir)
        run_experts_job(job, out, force=force, progress=not quiet, settings=settings)
        index_after_run(out, settings, quiet)

    @submit.command("experts")
    @experts_job_options
    @submit_options
    @user_errors(fields=EXPERTS_FIELDS)
    def submit_experts_cmd(url, api_key, idempotency_key, wait_, **options):
        """Submit an experts job: the same options as `neuroscribe experts`, run by the service's
        workers. Prints the job id (and, with --wait, waits for the result)."""
        submit_and_print(build_experts_job(**options), url, api_key, idempotency_key, wait_)
