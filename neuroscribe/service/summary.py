"""The short human summary of an experts result."""

from __future__ import annotations

from pathlib import Path

from ..jobs import ExpertsResult

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
    if timings:
        lines += ["", "time: " + ", ".join(f"{k.removesuffix('_s')} {v:.1f}s" for k, v in timings.items())]
    if out is not None:
        lines.append(f"full results in {out}/ (report.html, experts.json, ap.csv, sentences.jsonl, responses/)")
    return "\n".join(lines)


def _span(layers) -> str:
    layers = list(layers)
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))
