"""The words of the describe summary and page for a score beside its chance row: a fraction
interval in percent, and the verdict of the interval of P@K minus chance (docs/methods.md#b6)."""

from __future__ import annotations

from neuroscribe.workers.describe.intervals import chance_verdict

__all__ = ["chance_lines", "chance_difference", "pct_interval"]


def chance_lines(e) -> list[str]:
    """"below chance" for every P@K under its chance row, and whether the interval of the
    difference tells them apart."""
    out = []
    diffs = e.precision_minus_chance_ci or (None,) * len(e.ks)
    below = [f"P@{k}" for k, p, b in zip(e.ks, e.precision, e.baseline_precision)
             if p is not None and b is not None and p < b]
    if below:
        out.append(f"  below chance: {', '.join(below)} (the descriptions match the labels less often than random "
                   "exemplar sets do)")
    parts = [f"P@{k} {chance_difference(d, ' points')}" for k, d in zip(e.ks, diffs) if d is not None]
    if parts:
        out.append("  P@K minus chance: " + "; ".join(parts))
    return out


def chance_difference(d: tuple[float, float], unit: str = "") -> str:
    """'below chance (-12.0 to -6.0)': the verdict of P@K minus chance and its interval in points."""
    return f"{chance_verdict(d)} ({100 * d[0]:+.1f} to {100 * d[1]:+.1f}{unit})"


def pct_interval(cis, j: int) -> str:
    """' [75–82]': interval j of a tuple of fraction intervals, in percent ('' when there is none)."""
    if not cis or j >= len(cis) or cis[j] is None:
        return ""
    lo, hi = cis[j]
    return f" [{100 * lo:.0f}–{100 * hi:.0f}]"
