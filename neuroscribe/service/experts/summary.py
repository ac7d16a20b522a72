"""The short human summary of an experts result."""

from __future__ import annotations

from pathlib import Path

from neuroscribe.jobs import ExpertsResult

__all__ = ["format_summary"]


def format_summary(result: ExpertsResult, out: Path | None = None, timings: dict[str, float] | None = None) -> str:
    p = result.provenance
    n_units = len(result.layers) * result.units_per_layer
    lines = [
        f"neuroscribe experts — {p.model}" + (f" @ {p.revision}" if p.revision else ""),
        f"site {p.site}, {p.pooling.value} pooling, layers {_span(result.layers)} "
        f"({n_units} units), tau = {result.tau:g}",
        "",
    ]
    width = max(len(c.concept) for c in result.concepts)
    for c in result.concepts:
        per_layer = " ".join(f"L{layer}:{n}" for layer, n in sorted(c.counts_per_layer.items()))
        lines.append(f"{c.concept:<{width}}  {len(c.experts):5d} experts  (n+={c.n_pos}, n-={c.n_neg})  per layer {per_layer}")
        top = ", ".join(f"L{u.layer}/{u.unit} AP={u.ap:.3f}" for u in c.top[:5])
        lines.append(f"{'':<{width}}  top: {top}")
        drops = result.drops.get(c.concept)
        if drops:
            shown = ", ".join(f"{k} {v}" for k, v in drops.items() if v)
            lines.append(f"{'':<{width}}  sentences: {shown}")
    lines += _suite_lines(result)
    if timings:
        lines += ["", "time: " + ", ".join(f"{k.removesuffix('_s')} {v:.1f}s" for k, v in timings.items())]
    if out is not None:
        lines.append(f"full results in {out}/ (report.html, experts.json, ap.csv, sentences.jsonl, responses/)")
    return "\n".join(lines)


def _fmt(x, spec: str = ".3f") -> str:
    return "—" if x is None else format(x, spec)


def _suite_lines(result: ExpertsResult) -> list[str]:
    """One short block per analysis the result carries."""
    out: list[str] = []
    if result.stability is not None:
        st = result.stability
        k = st.concepts[0].folds.k if st.concepts else st.spec.folds
        folds = ", ".join(f"{c.concept} {_fmt(c.folds.jaccard, '.2f')}" for c in st.concepts)
        out += ["", f"stability ({k}-fold mean pairwise Jaccard of the experts at tau {result.tau:g}): {folds}"]
    if result.alignment is not None:
        al = result.alignment
        rhos = ", ".join(f"{m.method} {_fmt(m.rho)} (p {_fmt(m.p_value, '.2g')})" for m in al.methods)
        out += ["", f"human alignment on {al.dataset}, {al.n_pairs} pairs, Spearman rho: {rhos}"]
        if al.skipped:
            out.append(f"  skipped (in no pair with another concept): {', '.join(s.concept for s in al.skipped)}")
    if result.sweep is not None:
        out += ["", f"sweep (experts at tau {result.sweep.tau:g}, all concepts):"]
        out += [f"  {e.label:<40} {e.total():6d}" + ("  (cached)" if e.from_cache else "") for e in result.sweep.entries]
    if result.causal is not None:
        c = result.causal
        if c.skipped:
            out += ["", f"causal check skipped: {c.skipped}"]
        else:
            out += ["", f"causal check (change in log P(concept word), experts fixed minus random units, "
                        f"{c.confidence:.0%} CI):"]
            for cc in c.concepts:
                if cc.skipped:
                    out.append(f"  {cc.concept}: skipped ({cc.skipped})")
                else:
                    lo, hi = cc.ci_difference or (None, None)
                    out.append(f"  {cc.concept}: {_fmt(cc.mean_difference, '+.3f')} [{_fmt(lo, '+.3f')}, "
                               f"{_fmt(hi, '+.3f')}] ({cc.n_units} units, {cc.n_prompts} prompts)")
    for w in result.warnings:
        out += ["", f"warning: {w}"]
    return out


def _span(layers) -> str:
    layers = list(layers)
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))
