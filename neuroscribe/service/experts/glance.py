"""The experts page's results at a glance (``report.glance``): each key number beside its baseline.

* experts per concept at tau, against the experts a unit unrelated to the concept gives: the chance
  that a random ranking of the concept's n+ positives and n- negatives reaches AP >= tau
  (``chance_ap_tail``, Monte Carlo) times the units read;
* the K-fold Jaccard of the expert sets, against that of random sets of the same sizes;
* Spearman's rho with the human ratings (MEN), with a bootstrap interval over the pairs and the
  band of shuffled pairings (``spearman_interval``);
* the causal check, experts against as many random units (its paired interval);
* a sweep's trained models against the random initialisation of their architecture.
"""

from __future__ import annotations

import numpy as np

from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.report.glance import GlanceRow, difference_verdict, point_verdict
from neuroscribe.service.report.plotting import finite

__all__ = ["experts_glance", "chance_ap_tail", "spearman_interval", "CHANCE_DRAWS"]

CHANCE_DRAWS = 40_000
_BOOT = 2_000


def chance_ap_tail(n_pos: int, n_neg: int, tau: float, draws: int = CHANCE_DRAWS, seed: int = 0) -> tuple[float, float]:
    """P(AP >= tau) of a unit whose ranking of the n_pos + n_neg sentences is a random permutation,
    from ``draws`` random rankings, and its one-sided 95% upper bound (about 3 / draws when none reaches tau)."""
    if n_pos <= 0:
        return 0.0, 0.0
    rng = np.random.default_rng([seed, n_pos, n_neg])
    n, hits, done = n_pos + n_neg, 0, 0
    i = np.arange(1, n_pos + 1)
    while done < draws:
        m = min(10_000, draws - done)
        ranks = np.sort(rng.random((m, n)).argsort(axis=1)[:, :n_pos], axis=1) + 1  # places of the positives
        hits += int(((i / ranks).mean(axis=1) >= tau - 1e-12).sum())
        done += m
    from scipy.stats import beta

    return hits / draws, float(beta.ppf(0.95, hits + 1, draws - hits))  # one-sided Clopper-Pearson


def _poisson_q95(lam: float) -> int:
    from scipy.stats import poisson

    return int(poisson.ppf(0.95, lam)) if lam > 0 else 0


def _experts_row(result: ExpertsResult) -> GlanceRow:
    units = len(result.layers) * result.units_per_layer
    counts = [len(c.experts) for c in result.concepts]
    tails = {}
    for c in result.concepts:
        key = (c.n_pos, c.n_neg)
        if key not in tails:
            tails[key] = chance_ap_tail(c.n_pos, c.n_neg, result.tau, seed=result.provenance.seed)
    expected = [units * tails[(c.n_pos, c.n_neg)][0] for c in result.concepts]
    bound = [units * tails[(c.n_pos, c.n_neg)][1] for c in result.concepts]
    above = [c.concept for c, k, b in zip(result.concepts, counts, bound) if k > _poisson_q95(b)]
    not_above = [c.concept for c in result.concepts if c.concept not in set(above)]
    n = len(counts)
    value = (f"{counts[0]:,} of {units:,} units" if n == 1 else
             f"median {float(np.median(counts)):g} (range {min(counts):,}–{max(counts):,}; {sum(counts):,} in all) "
             f"of {units:,} units")
    exp = float(np.median(expected))
    baseline = (f"units unrelated to the concept: ≈ {exp:.2g} per concept" + (" (median)" if n > 1 else "")
                + f", at most {max(bound):.2g} at the 95% bound ({CHANCE_DRAWS:,} random rankings of the "
                "concept's n+ and n− sentences)")
    if len(above) == n:
        verdict = "above chance" + ("" if n == 1 else f" for all {n} concepts")
    elif not above:
        verdict = "not told apart from chance" + ("" if n == 1 else f" for any of the {n} concepts")
    else:
        shown = ", ".join(not_above[:6]) + (", …" if len(not_above) > 6 else "")
        verdict = f"above chance for {len(above)} of {n} concepts (not: {shown})"
    return GlanceRow(f"experts per concept (AP ≥ {result.tau:g})", value, baseline, verdict, "experts")


def _chance_jaccard(sizes, units: int) -> float | None:
    """Mean over fold pairs of the expected Jaccard of random sets of those sizes among ``units``."""
    vals = []
    for a_i, a in enumerate(sizes):
        for b in sizes[a_i + 1:]:
            inter = a * b / units
            if a + b - inter > 0:
                vals.append(inter / (a + b - inter))
    return float(np.mean(vals)) if vals else None


def _stability_row(result: ExpertsResult) -> GlanceRow | None:
    st = result.stability
    if st is None or not st.concepts:
        return None
    units = len(result.layers) * result.units_per_layer
    pairs = [(finite(c.folds.jaccard), _chance_jaccard(c.folds.n_experts, units)) for c in st.concepts]
    pairs = [(j, ch) for j, ch in pairs if j is not None and ch is not None]
    folds = st.concepts[0].folds
    name = f"stability: {folds.k}-fold Jaccard of the expert sets"
    if not pairs:
        return GlanceRow(name, "undefined (no concept has experts on two folds)", "random sets of the same sizes",
                         "no comparison (undefined)", "stability")
    mean, chance = float(np.mean([j for j, _ in pairs])), float(np.mean([ch for _, ch in pairs]))
    above = sum(1 for j, ch in pairs if j > ch)
    verdict = point_verdict(mean, chance)
    if len(pairs) > 1:
        verdict += f"; above for {above} of {len(pairs)} concepts"
    return GlanceRow(name, f"mean {mean:.3f} over {len(pairs)} concept{'s' if len(pairs) > 1 else ''}",
                     f"random sets of the same sizes: {chance:.3f}", verdict, "stability")


def spearman_interval(x, y, *, n_boot: int = _BOOT, seed: int = 0):
    """A 95% bootstrap interval of Spearman's rho over the pairs and the half-width of the central 95%
    of rho under shuffled pairings: ``((lo, hi), band)``; ``None`` with fewer than 4 pairs."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 4:
        return None
    rng = np.random.default_rng([seed, len(x)])

    def rho_rows(a, b):
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, (a * b).sum(axis=1) / den, np.nan)

    idx = rng.integers(0, len(x), (n_boot, len(x)))
    boot = rho_rows(rankdata(x[idx], axis=1), rankdata(y[idx], axis=1))
    rx, ry = rankdata(x), rankdata(y)
    null = rho_rows(np.tile(rx, (n_boot, 1)), rng.permuted(np.tile(ry, (n_boot, 1)), axis=1))
    if not np.isfinite(boot).any():
        return None
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return (float(lo), float(hi)), float(np.nanpercentile(np.abs(null), 95))


def _alignment_rows(result: ExpertsResult) -> list[GlanceRow]:
    al = result.alignment
    if al is None:
        return []
    rows = []
    for m in al.methods:
        pts = [(p.human, finite(p.similarity.get(m.method))) for p in al.pairs]
        pts = [(h, s) for h, s in pts if s is not None and finite(h) is not None]
        rho = finite(m.rho)
        ci = spearman_interval([h for h, _ in pts], [s for _, s in pts], seed=result.provenance.seed)
        p = finite(m.p_value)
        ptxt = "" if p is None else f"; p = {p:.2g}"
        name = f"{al.dataset} Spearman ρ: {m.method}"
        if rho is None or ci is None:
            rows.append(GlanceRow(name, "undefined", f"no alignment: ρ = 0{ptxt}", "no comparison (undefined)",
                                  "alignment"))
            continue
        (lo, hi), band = ci
        rows.append(GlanceRow(name, f"{rho:.3f} [{lo:.2f}, {hi:.2f}], {len(pts)} pairs",
                              f"no alignment: ρ = 0 (shuffled pairings: 95% within ±{band:.2f}){ptxt}",
                              difference_verdict(lo, hi), "alignment"))
    return rows


def _causal_rows(result: ExpertsResult) -> list[GlanceRow]:
    cs = result.causal
    if cs is None or cs.skipped:
        return []
    tested = [c for c in cs.concepts if not c.skipped and finite(c.mean_experts) is not None]
    words = ("above random units", "below random units", "not told apart from random units")
    rows = []
    for c in tested[:4]:
        lo, hi = (tuple(c.ci_difference or ()) + (None, None))[:2]
        lo, hi = finite(lo), finite(hi)
        rnd = finite(c.mean_random)
        rows.append(GlanceRow(f"causal: Δ log P({c.concept}) fixing its {c.n_units} experts",
                              f"{c.mean_experts:+.3g}" + ("" if lo is None else f" (difference [{lo:+.3g}, {hi:+.3g}])"),
                              f"as many random units: {'—' if rnd is None else f'{rnd:+.3g}'}",
                              difference_verdict(lo, hi, words), "causal"))
    if len(tested) > 4:
        up = sum(1 for c in tested if c.ci_difference and finite(c.ci_difference[0]) is not None
                 and c.ci_difference[0] > 0)
        rows.append(GlanceRow("causal: the other concepts", f"{len(tested) - 4} more concepts tested",
                              "as many random units of the same layers",
                              f"above random units for {up} of {len(tested)} concepts in all", "causal"))
    return rows


def _sweep_rows(result: ExpertsResult) -> list[GlanceRow]:
    sw = result.sweep
    if sw is None:
        return []
    rows = []
    for r in (e for e in sw.entries if e.random_init):
        trained = [e for e in sw.entries if e.model == r.model and not e.random_init]
        if not trained:
            continue
        best = max(trained, key=lambda e: (e.step is None, e.step or 0))  # the last checkpoint / default revision
        rows.append(GlanceRow(f"sweep: experts of {best.label}", f"{best.total():,}",
                              f"random initialisation of the same architecture: {r.total():,}",
                              point_verdict(best.total(), r.total(), ("above the random initialisation",
                                                                      "below the random initialisation", "")),
                              "sweep"))
    return rows


def experts_glance(result: ExpertsResult) -> list[GlanceRow]:
    """The rows of the experts page's glance box, in the page's order."""
    rows = [_experts_row(result)] if result.concepts else []
    stab = _stability_row(result)
    if stab is not None:
        rows.append(stab)
    return rows + _alignment_rows(result) + _causal_rows(result) + _sweep_rows(result)
