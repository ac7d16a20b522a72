"""Benchmark: the rank demo's interventions with random k-sets shared by the rankings vs per ranking,
and the whole rank demo (docs/methods.md#c3; issue 16).

Data: the packaged Amazon sentences and MiniLM's last layer, as ``make rank-demo`` (``--k 10 --k 50
--max-examples 100``); the rankings are computed once (``rankings_stage``) on the ranking half.

  shared:       ``ranked_vs_random`` with every ranking at once: per (k, mode), R ranked passes
                and ``--n-random`` random passes, the random sets drawn once for all rankings;
  per ranking:  the same function called once per ranking (as the analysis did before), each call
                scoring the random sets again. Both arms get the *same* random sets, so their
                effects must be identical (checked, printed): only the time differs.

Then the whole demo (``neuroscribe rank`` as ``make rank-demo`` runs it, ``--n-random 20``) is timed
end to end with an empty rank cache (responses, rankings, stability, probing, interventions, files),
and once more with the cache it left (a re-run). Prints both arms' times and the ratio (target >= 4x),
whether the effects are identical, and the demo's times (target: under 3 minutes). Always exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _job(n_random: int, max_examples: int):
    from neuroscribe.service.rank.cli import build_rank_job

    return build_rank_job(model="minilm", revision=None, dataset=Path("amazon"), text_col=None, label_col=None,
                          word_col=None, layer=None, ks=(10, 50), methods="linear,gaussian,probeless,ap,random",
                          site="mlp_post", pooling="mean", rank_fraction=0.5, same_examples=False, probe="logreg",
                          seeds=5, interventions=True, modes="zero,mean,translate", beta=8.0, n_random=n_random,
                          max_examples=max_examples, continuations=(), label_texts=(), batch_size=32, max_length=128,
                          device="cpu", seed=0, trust_remote_code=False, label_names=("1=positive", "0=negative"))


def compare_arms(n_random: int, max_examples: int, cache_dir: Path) -> None:
    from neuroscribe.service import runtime
    from neuroscribe.settings import Settings
    from neuroscribe.workers.rank.edit_modes import response_means
    from neuroscribe.workers.rank.effect_runs import EncoderTask, ranked_vs_random, shared_random_sets
    from neuroscribe.workers.rank.intervention_stage import DEFAULT_LABEL_TEXTS, scored_rows
    from neuroscribe.workers.rank.rank_cache import RankCache
    from neuroscribe.workers.rank.stages import check_rank_subject, rankings_stage, responses_stage, split_rows

    job = _job(n_random, max_examples)
    settings = Settings.from_env()
    subject = runtime.load_subject(job.model, settings)
    plan = check_rank_subject(job, subject)
    X, _, _ = responses_stage(job, subject, plan, progress=False, cache_dir=cache_dir)
    y = np.asarray(job.dataset.labels)
    rank_rows, eval_rows, _ = split_rows(job)
    rankings, _ = rankings_stage(job, X[rank_rows], y[rank_rows], job.methods, job.seed, max(job.ks),
                                 RankCache(cache_dir))
    rows = scored_rows(job, eval_rows)
    task = EncoderTask([job.dataset.texts[i] for i in rows], [job.dataset.labels[i] for i in rows],
                       DEFAULT_LABEL_TEXTS)
    unit_means, class_means = response_means({plan.layer: X[rank_rows]}, [job.dataset.labels[i] for i in rank_rows])
    orders = {n: {plan.layer: r.order} for n, r in rankings.items()}
    sets = {k: shared_random_sets({n: {plan.layer: r.order[:k]} for n, r in rankings.items()}, k, plan.units,
                                  n_random, job.seed) for k in job.ks}
    kw = dict(modes=job.interventions.modes, unit_means=unit_means, class_means=class_means, beta=8.0,
              n_random=n_random, seed=job.seed, batch_size=32, random_sets=sets)
    model, tok = subject.model, subject.tokenizer
    first = next(iter(orders))  # warm-up, untimed: thread pools, allocator, first-call paths of both arms
    ranked_vs_random(model, tok, task, {first: orders[first]}, job.ks[:1], **{**kw, "modes": kw["modes"][:1]})
    t0 = time.perf_counter()
    shared = ranked_vs_random(model, tok, task, orders, job.ks, **kw)
    t_shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = {n: ranked_vs_random(model, tok, task, {n: o}, job.ks, **kw)[n] for n, o in orders.items()}
    t_alone = time.perf_counter() - t0
    t0 = time.perf_counter()  # the shared arm again, after the other: the order of the arms is not the ratio
    ranked_vs_random(model, tok, task, orders, job.ks, **kw)
    t_shared2 = time.perf_counter() - t0
    print(f"  (shared arm before and after the per-ranking arm: {t_shared:.1f} s, {t_shared2:.1f} s; the ratio uses"
          f" their mean)")
    t_shared = (t_shared + t_shared2) / 2
    same = all(np.array_equal(shared[n].effects[key].ranked, alone[n].effects[key].ranked)
               and np.array_equal(shared[n].effects[key].random_draws, alone[n].effects[key].random_draws)
               for n in orders for key in shared[n].effects)
    print(f"interventions of the rank demo ({len(orders)} rankings, k {list(job.ks)}, "
          f"{len(job.interventions.modes)} modes, {n_random} random sets, {len(rows)} examples; CPU)")
    print(f"  per ranking: {t_alone:8.1f} s   (each ranking scores the random sets again)")
    print(f"  shared:      {t_shared:8.1f} s   (random sets scored once for every ranking)")
    print(f"  ratio:       {t_alone / t_shared:8.2f}x   (target >= 4x)")
    print(f"  identical effects with identical random sets: {same}")


def time_demo(n_random: int, max_examples: int, out: Path, cache: Path) -> None:
    import os

    from neuroscribe.service.rank.embedded import run_rank_job
    from neuroscribe.settings import Settings

    os.environ["NEUROSCRIBE_CACHE"] = str(cache)
    job = _job(n_random, max_examples)
    times = []
    for run in ("empty cache", "re-run"):
        t0 = time.perf_counter()
        run_rank_job(job, out, force=True, progress=False, settings=Settings.from_env(), log=lambda _m: None)
        times.append(time.perf_counter() - t0)
        print(f"whole rank demo (--n-random {n_random}, --max-examples {max_examples}), {run}: "
              f"{times[-1]:.1f} s = {times[-1] / 60:.2f} min (target < 3 min)")
    print(f"  result folder: {out}  (summary.txt holds the table)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-random", type=int, default=20)
    ap.add_argument("--max-examples", type=int, default=100)
    ap.add_argument("--skip-arms", action="store_true", help="Only time the whole demo.")
    ap.add_argument("--skip-demo", action="store_true", help="Only compare the arms.")
    ap.add_argument("--out", type=Path, default=Path("runs/rank-amazon"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-rank-") as tmp:
        if not args.skip_arms:
            compare_arms(args.n_random, args.max_examples, Path(tmp) / "arms")
        if not args.skip_demo:
            time_demo(args.n_random, args.max_examples, args.out, Path(tmp) / "demo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
