"""The rank job's result folder, written by the embedded run and by the analyse stage alike.

Result folder (DIR):
    job.json           the job without its examples
    rankings.json      the RankResult: every ranking (order + scores), probing rows, same-probe
                       rows, intervention effects, agreement rows, provenance, warnings
    rankings.csv       one line per (method, rank): unit and score
    probing.csv        ranking, selection (top / bottom / random / top_same_probe / majority), probe,
                       k, accuracy and its 95% interval over seeds
    bottom.csv         ranking, k: the bottom-k units, what they are least by, ties at the boundary
    stability.csv      ranking, k, kind (seed / halves): top-k overlap of the ranking recomputed, chance
    same_probe.csv     per ranking with its own probe and k: independent vs same-probe accuracy
    interventions.csv  ranking, mode, positions (all / attribute: the target word's tokens only), k,
                       measure: mean effect of the top-k, of random-k, the difference (95% intervals
                       over examples), each random set's mean, p over sets and its floor
    agreement.csv      a, b, k: top-k overlap, Jaccard, chance
    split.json         the ranking and evaluation rows (0-based, in dataset order)
    responses.npy      the (examples, units) responses ranked (float32), for re-checking
    rankings.html      the page (``report/`` holds its figures, each PNG beside a CSV)
    summary.txt
"""

from __future__ import annotations

from pathlib import Path

from neuroscribe.jobs import RankJob, RankResult
from neuroscribe.jobs.rank import BOTTOM_K
from neuroscribe.service.artefacts import csv_text as _csv, summary_tail, write_json, write_text
from neuroscribe.settings import Settings

__all__ = ["write_rank_files", "format_rank_summary", "subject_info", "rank_cache_dir"]


def rank_cache_dir(settings: Settings) -> Path:
    """Where the rank cache lives: beside the experts responses (``rank/`` in the responses cache)."""
    from neuroscribe.service import runtime

    return runtime.responses_cache(settings)


def _label(result: RankResult, label: str) -> str:
    name = (result.label_names or {}).get(label)
    return f"{name} ({label})" if name else label


def _f(x) -> str:
    return "" if x is None else f"{x:.6g}"


def _acc(result: RankResult, ranking: str, selection: str, k: int):
    return next((r for r in result.probing if (r.ranking, r.selection, r.k) == (ranking, selection, k)), None)


def format_rank_summary(result: RankResult, out: Path | None = None, timings: dict | None = None,
                        reused: list | tuple = ()) -> str:
    lines = [f"neuroscribe rank: {result.provenance.model} layer {result.layer} ({result.units} units) on "
             f"{result.dataset}: {result.n_examples} {result.level}-level examples, classes "
             + ", ".join(f"{_label(result, k)}: {v}" for k, v in result.classes.items()),
             f"  rankings computed on {result.n_ranking_examples} examples, probing and interventions on "
             f"{result.n_evaluation_examples} others" if result.n_ranking_examples != result.n_examples else
             "  rankings, probing and interventions on the same examples"]
    maj = next((r for r in result.probing if r.selection == "majority"), None)
    probe = next((r.probe for r in result.probing if r.selection == "top"), "")
    lines.append(f"  probing ({probe}, held-out accuracy, mean of the splits; majority class "
                 f"{_pct(maj.accuracy if maj else None)}); {BOTTOM_K}:")
    for m in [r.method for r in result.rankings]:
        parts = []
        for k in result.ks:
            top, bottom, rnd = (_acc(result, m, s, k) for s in ("top", "bottom", "random"))
            parts.append(f"k={k}: top {_pct(top and top.accuracy)} bottom {_pct(bottom and bottom.accuracy)} "
                         f"random {_pct(rnd and rnd.accuracy)}")
        lines.append(f"    {m:9s} " + "; ".join(parts))
    for b in result.bottom:
        if b.tied > 1:
            lines.append(f"    bottom-{b.k} of {b.ranking}: {b.tied} units tied at {b.by} {_f(b.boundary)}, "
                         f"{b.tied_in_bottom} drawn at random (seeded)")
    for r in result.rankings:
        if "converged" in r.params:
            lines.append(f"    {r.method} probe: {'converged' if r.params['converged'] else 'NOT converged'} after "
                         f"{r.params.get('n_iter')} iterations (limit {r.params.get('max_iter')}, tol "
                         f"{r.params.get('tol')}), {r.params.get('nonzero')} units with a nonzero weight")
    if result.stability:
        lines.append(f"  stability (top-{max(result.ks)} overlap; chance {max(result.ks) / result.units:.3f}): "
                     + ", ".join(f"{m} {_stab(result, m, 'seed')} across seeds, {_stab(result, m, 'halves')} across "
                                 "halves" for m in dict.fromkeys(s.ranking for s in result.stability)))
    for r in result.same_probe:
        lines.append(f"    same-probe confound: {r.ranking} k={r.k}: its own probe {_pct(r.same_probe)} vs "
                     f"independent {_pct(r.independent)}")
    if result.interventions:
        lines.append(f"  interventions (change in {result.intervention_measure}, edited minus clean; the top-k against "
                     "random k-sets shared by every ranking; p over sets = share of random sets at least as far from "
                     "their mean, with its floor 1/(sets+1); the 95% interval of the difference is over examples, "
                     "a description of the examples' spread, not a test across unit sets)"
                     + (_POSITIONS_NOTE if _edits_words(result) else "") + ":")
        for e in result.interventions:
            draws = [d for d in e.random_draws if d is not None]
            rng = f"[{_f(min(draws))} .. {_f(max(draws))}]" if draws else "—"
            lo, hi = e.ci_difference
            at = f"at {e.positions:9s} " if _edits_words(result) else ""
            lines.append(f"    {e.ranking:9s} {e.mode:9s} {at}k={e.k:<3d} ranked {_f(e.mean_ranked):>10s}  "
                         f"{len(draws)} random sets {rng}  p {_f(e.p_random)} (floor {_f(e.p_floor)})  "
                         f"difference {_f(e.mean_difference)} [{_f(lo)}, {_f(hi)}] over examples")
    big = max(result.ks)
    pairs = [a for a in result.agreement if a.k == big]
    if pairs:
        lines.append(f"  agreement of top-{big} sets (chance {pairs[0].chance:.3f}): "
                     + ", ".join(f"{a.a}/{a.b} {a.overlap:.2f}" for a in pairs))
    if reused:
        lines.append("  from the rank cache: " + ", ".join(reused))
    lines += summary_tail(result.warnings, timings, out, "rankings.html")
    return "\n".join(lines)


_POSITIONS_NOTE = ("; edited at all positions, or at the attribute word's tokens only (each example's target word; "
                  "the random sets are the same for both)")


def _edits_words(result: RankResult) -> bool:
    """Whether some effects edited only the target word's tokens (then every row says where it edited)."""
    return any(e.positions != "all" for e in result.interventions)


def _stab(result: RankResult, ranking: str, kind: str) -> str:
    k = max(result.ks)
    row = next((s for s in result.stability if (s.ranking, s.kind, s.k) == (ranking, kind, k)), None)
    return "—" if row is None else f"{row.overlap:.2f}"


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def write_rank_files(tmp: Path, job: RankJob, result: RankResult, out: Path | None, timings: dict | None,
                     extras: dict | None = None) -> str:
    """The result folder (see the module docstring); ``extras`` (``analysis_stage``'s second value) adds
    ``split.json`` and ``responses.npy``."""
    write_json(tmp / "job.json", job.model_dump(mode="json", exclude={"dataset": {"texts", "labels", "word_index"}}))
    write_text(tmp / "rankings.json", result.model_dump_json(indent=1) + "\n")
    write_text(tmp / "rankings.csv", _csv(["method", "rank", "unit", "score"],
                                          [[r.method, i + 1, u, _f(r.scores[u])] for r in result.rankings
                                           for i, u in enumerate(r.order)]))
    write_text(tmp / "probing.csv", _csv(["ranking", "selection", "probe", "k", "accuracy", "ci_low", "ci_high",
                                          "n_seeds"],
                                         [[p.ranking, p.selection, p.probe, p.k, _f(p.accuracy), _f(p.ci_low),
                                           _f(p.ci_high), p.n_seeds] for p in result.probing]))
    write_text(tmp / "bottom.csv", _csv(["ranking", "k", "by", "boundary", "tied", "tied_in_bottom", "units"],
                                        [[b.ranking, b.k, b.by, _f(b.boundary), b.tied, b.tied_in_bottom,
                                          " ".join(map(str, b.units))] for b in result.bottom]))
    write_text(tmp / "stability.csv", _csv(["ranking", "k", "kind", "overlap", "chance"],
                                           [[s.ranking, s.k, s.kind, _f(s.overlap), _f(s.chance)]
                                            for s in result.stability]))
    if extras and "split" in extras:
        write_json(tmp / "split.json", extras["split"])
    if extras and extras.get("responses") is not None:
        import numpy as np

        np.save(tmp / "responses.npy", np.asarray(extras["responses"], dtype=np.float32), allow_pickle=False)
    write_text(tmp / "same_probe.csv", _csv(["ranking", "k", "independent", "same_probe", "gap"],
                                            [[s.ranking, s.k, _f(s.independent), _f(s.same_probe), _f(s.gap)]
                                             for s in result.same_probe]))
    if result.interventions:
        write_text(tmp / "interventions.csv", _csv(
            ["ranking", "mode", "positions", "k", "measure", "n_examples", "mean_ranked", "ci_ranked_low",
             "ci_ranked_high", "mean_random", "ci_random_low", "ci_random_high", "mean_difference",
             "ci_difference_low", "ci_difference_high", "random_draw_means", "p_random", "p_floor"],
            [[e.ranking, e.mode, e.positions, e.k, e.measure, e.n_examples, _f(e.mean_ranked), *map(_f, e.ci_ranked),
              _f(e.mean_random), *map(_f, e.ci_random), _f(e.mean_difference), *map(_f, e.ci_difference),
              " ".join(_f(d) for d in e.random_draws), _f(e.p_random), _f(e.p_floor)] for e in result.interventions]))
    write_text(tmp / "agreement.csv", _csv(["a", "b", "k", "overlap", "jaccard", "chance"],
                                           [[a.a, a.b, a.k, _f(a.overlap), _f(a.jaccard), _f(a.chance)]
                                            for a in result.agreement]))
    reused = (extras or {}).get("reused", ())
    write_text(tmp / "summary.txt", format_rank_summary(result, None, timings, reused) + "\n")  # no machine path
    summary = format_rank_summary(result, out, timings, reused)
    from neuroscribe.service.rank.page import write_rank_page

    write_rank_page(tmp, result)
    return summary


def subject_info(subject, site: str) -> dict:
    from neuroscribe.workers.activations.sites import get_site

    return {"model_id": subject.model_id, "revision": subject.revision, "weight_sha256": subject.weight_sha256,
            "site": get_site(subject.model_type, site).name, "environment": subject.environment()}
