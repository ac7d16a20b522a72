"""The results-at-a-glance box, first on every page: the result's key numbers, each beside its
chance or null baseline and a verdict ("above chance", "below chance", "not told apart from
chance"), each row linking to the section with the details.

The project's rule is that a number is never shown without its baseline: a ``GlanceRow`` cannot be
made without one (a row whose baseline was not computed says so in its baseline cell). The verdict
helpers compare intervals where the result has them (``difference_verdict``,
``interval_verdict``) and point values otherwise (``point_verdict``, which says "no interval").
"""

from __future__ import annotations

from dataclasses import dataclass

from neuroscribe.service.report.html import esc

__all__ = ["ABOVE", "BELOW", "SAME", "GlanceRow", "difference_verdict", "glance_section", "interval_verdict",
           "point_verdict"]

ABOVE, BELOW, SAME = "above chance", "below chance", "not told apart from chance"


@dataclass(frozen=True)
class GlanceRow:
    """One key number: what it is, its value, its baseline (chance / null / reference) and the
    verdict; ``anchor`` is the id of the section that details it ("" for none)."""

    measure: str
    value: str
    baseline: str
    verdict: str
    anchor: str = ""

    def __post_init__(self):
        if not str(self.baseline).strip():
            raise ValueError(f"{self.measure}: a number is never shown without its baseline")


def difference_verdict(lo, hi, words: tuple[str, str, str] = (ABOVE, BELOW, SAME)) -> str:
    """The verdict of an interval of (value − baseline): above when it is all above 0, below when
    all below, else not told apart; ``words`` = (above, below, same)."""
    if lo is None or hi is None:
        return words[2] + " (no interval)"
    return words[0] if lo > 0 else words[1] if hi < 0 else words[2]


def interval_verdict(value_ci, baseline_ci, words: tuple[str, str, str] = (ABOVE, BELOW, SAME)) -> str:
    """The verdict of a value's interval against its baseline's: above / below when the two do not
    overlap, else not told apart (a conservative reading of two intervals)."""
    (vlo, vhi), (blo, bhi) = value_ci, baseline_ci
    if None in (vlo, vhi, blo, bhi):
        return words[2] + " (no interval)"
    return words[0] if vlo > bhi else words[1] if vhi < blo else words[2]


def point_verdict(value, baseline, words: tuple[str, str, str] = (ABOVE, BELOW, SAME)) -> str:
    """The verdict of two point values (no interval to judge by: it says so)."""
    if value is None or baseline is None:
        return "no comparison (undefined)"
    word = words[0] if value > baseline else words[1] if value < baseline else "equal to the baseline"
    return f"{word} (no interval)"


def _cls(verdict: str) -> str:
    head = verdict.lower().split("(")[0]
    if "below" in head:
        return "below"
    if head.startswith("not") or " not " in head:
        return "same"
    return "above" if "above" in head else "same"


def glance_section(rows, *, lead: str = "", n_warnings: int = 0) -> str:
    """The box as one ``<section id="glance" class="glance">`` (the page's first); ``lead`` is
    escaped HTML put before the table; ``n_warnings`` adds a line pointing at the warnings."""
    parts = ['<section id="glance" class="glance"><h2>Results at a glance</h2>', lead]
    if n_warnings:
        parts.append(f'<p class="note">This result has <a href="#warnings">{n_warnings} warning'
                     f'{"s" if n_warnings != 1 else ""}</a>: read them before the numbers.</p>')
    if rows:
        body = "".join(
            "<tr><td>" + (f'<a href="#{esc(r.anchor)}">{esc(r.measure)}</a>' if r.anchor else esc(r.measure))
            + f'</td><td>{esc(r.value)}</td><td>{esc(r.baseline)}</td>'
            f'<td class="{_cls(r.verdict)}">{esc(r.verdict)}</td></tr>'
            for r in rows)
        parts.append('<table class="glance"><thead><tr><th>result</th><th>value</th><th>baseline (chance, null '
                     f"or reference)</th><th>verdict</th></tr></thead><tbody>{body}</tbody></table>")
    else:
        parts.append('<p class="muted">This result holds no number with a baseline to compare it with.</p>')
    parts.append("</section>")
    return "".join(parts)
