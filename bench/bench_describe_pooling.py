"""Pooling by measurement: how many of MiniLM's units fire, are dead or rare, and are described on
the packaged Amazon sentences, for each pooling (docs/methods.md#b3).

The packaged 1,000 Amazon review sentences (labels 1 = positive, 0 = negative), the packaged MiniLM
(``mlp_post``: the GELU output, so a unit fires on a response > 0), every layer. The descriptors are
written once, by the FakeBackend's default writer (keywords of the sentence) or, with
``--generator SPEC`` (e.g. ``llamacpp:smollm2``), by that LLM through the generation cache; the
vocabulary is clustered once; then, per pooling, the streaming exemplar pass and the analysis run
as in ``neuroscribe describe`` (job defaults otherwise: top 1%, t = 50%, at least 5 valid
exemplars and half of k). Printed per pooling: units, units that fire, dead, rare, too few valid
exemplars, no descriptor passed, described, the hub sentences (exemplars of >= 5% of the units)
and the largest hub's unit count, and the seconds of the exemplar pass plus analysis. Always exits 0.

    .venv/bin/python bench/bench_describe_pooling.py [--poolings cls,max,mean] [--generator SPEC]
        [--device cpu] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import time

from neuroscribe import __version__
from neuroscribe.jobs import DescribeJob, GeneratorSpec, Pooling, SubjectModelSpec
from neuroscribe.service import runtime
from neuroscribe.service.describe.dataset import load_dataset_spec
from neuroscribe.settings import Settings
from neuroscribe.workers.describe.exemplar_stream import first_occurrences
from neuroscribe.workers.describe.stages import analysis_stage, descriptors_stage, exemplars_stage, vocabulary_stage
from neuroscribe.workers.generate import FakeBackend

COLUMNS = ("units", "fire", "dead", "rare", "too_few_valid", "no_descriptor", "described", "verified",
           "verified_null", "P@2", "P@2_chance", "hubs", "top_hub", "seconds")


def measure(job: DescribeJob, subject, descriptors, vocab) -> dict:
    """One pooling's exemplar pass and analysis: the counts of the table (and the result, for more)."""
    t0 = time.perf_counter()
    ex = exemplars_stage(job, subject, vocab, progress=False)
    res = analysis_stage(job, descriptors, vocab, ex, neuroscribe_version=__version__)
    v, vr, e = res.validity, res.verification, res.evaluation
    pct = lambda x: "-" if x is None else f"{100 * x:.0f}%"  # noqa: E731
    k2 = e.ks.index(2) if e is not None and 2 in e.ks else None
    return {"verified": "-" if vr is None else vr.n_verified, "verified_null": "-" if vr is None else vr.n_verified_null,
            "P@2": "-" if k2 is None else pct(e.precision[k2]),
            "P@2_chance": "-" if k2 is None or not e.baseline_precision else pct(e.baseline_precision[k2]),
            "units": res.n_units, "fire": v.n_firing, "dead": v.n_dead, "rare": v.n_rare,
            "too_few_valid": v.n_too_few_valid, "no_descriptor": v.n_no_descriptor, "described": v.n_described,
            "hubs": v.n_hub_sentences, "top_hub": v.hubs[0].n_units if v.hubs else 0,
            "seconds": round(time.perf_counter() - t0, 1), "result": res, "exemplars": ex}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--poolings", default="cls,max,mean")
    ap.add_argument("--generator", default=None, help="BACKEND[:MODEL] (default: the FakeBackend's writer)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args(argv)
    settings = Settings.from_env()
    runtime.configure(settings)
    data = load_dataset_spec("amazon", text_col=None, label_col=None, label_names={})
    gen = GeneratorSpec.from_string(args.generator) if args.generator else GeneratorSpec(backend="fake")
    base = DescribeJob(dataset=data, generator=gen,
                       model=SubjectModelSpec(name="minilm", device=args.device, batch_size=args.batch_size))
    backend = runtime.make_generator(gen, settings) if args.generator else FakeBackend()
    t0 = time.perf_counter()
    descriptors = descriptors_stage(base, backend, progress=False)
    vocab = vocabulary_stage(base, descriptors)
    writer = f"{gen.backend}:{gen.model}" if args.generator else "the FakeBackend's writer"
    n_dup = len(data.texts) - len(first_occurrences(data.texts))
    print(f"{len(data.texts)} Amazon sentences ({n_dup} duplicates collapsed), descriptors by {writer} "
          f"({sum(d is None for d in descriptors.descriptors)} failed), "
          f"{len(set(vocab.vocabulary.mapping.values()))} vocabulary names, {time.perf_counter() - t0:.0f} s")
    subject = None
    rows = {}
    for pooling in [p.strip() for p in args.poolings.split(",") if p.strip()]:
        job = base.model_copy(update={"model": base.model.model_copy(update={"pooling": Pooling(pooling)})})
        if subject is None:
            subject = runtime.load_subject(job.model, settings)
        rows[pooling] = measure(job, subject, descriptors, vocab)
        if rows[pooling]["result"].validity.hubs:
            h = rows[pooling]["result"].validity.hubs[0]
            print(f"  {pooling}: top hub row {h.row} ({h.n_units} units): {h.text[:70]!r}")
    print(f"site mlp_post, fires: {next(iter(rows.values()))['result'].validity.firing_rule}; "
          "hubs: sentences that are exemplars of >= 5% of the units")
    print("pooling  " + "  ".join(f"{c:>13}" for c in COLUMNS))
    for pooling, r in rows.items():
        print(f"{pooling:<8} " + "  ".join(f"{r[c]:>13}" for c in COLUMNS))


if __name__ == "__main__":
    main()
