"""The units of a describe result's page: one table of the described units only (``units_section``),
sortable by a click on a column header and filtered by descriptor through a text box (``UNIT_SCRIPT``,
a few lines of inline JavaScript, no library); the units that are not described (dead, rare, too
few valid exemplars, no descriptor passed) are counted in one line, not listed (every unit is in
units.csv and descriptions.json).

Each unit links to its atlas page (``/neurons/<model key>/<layer>/<unit>``, ``report.atlas_links``)
and shows its descriptors with f, the top descriptor's enrichment (and q when an FDR was asked),
its verified descriptions (when the result has held-out verification), its split-half Jaccard, the
reference labels its exemplars carry, and its best ``max_exemplars`` exemplars, each cut at
``max_chars`` characters.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from neuroscribe.jobs import DescribeResult
from neuroscribe.jobs.describe import UnitReport
from neuroscribe.service.report.atlas_links import ATLAS_NOTE, atlas_href, provenance_key
from neuroscribe.service.report.html import esc

__all__ = ["units_section", "UNIT_CSS", "UNIT_SCRIPT"]

UNIT_CSS = """
table.units{width:100%} table.units th{cursor:pointer;white-space:nowrap}
table.units th[aria-sort=ascending]::after{content:" ▲"} table.units th[aria-sort=descending]::after{content:" ▼"}
table.units td:first-child{white-space:nowrap} table.units td.x{font-size:.92em;color:#333}
table.units td.x b{font-weight:400;color:#0072b2;font-variant-numeric:tabular-nums} table.units td.x i{color:#777;font-style:normal}
h3{font-size:1.05em;margin-top:1.5em}
"""

# click a header: sort by that column (numbers as numbers; data-s holds a cell's sort key); type in
# the box: keep the rows whose descriptors contain the text
UNIT_SCRIPT = """
(function(){var t=document.getElementById("unit-table");if(!t)return;var b=t.tBodies[0],
hs=t.tHead.rows[0].cells,q=document.getElementById("unit-filter"),n=document.getElementById("unit-count");
function k(c){var v=c.getAttribute("data-s");if(v===null)v=c.textContent.trim();var f=parseFloat(v);
return isNaN(f)||!/^[-+]?[0-9.]/.test(v)?[1,v.toLowerCase()]:[0,f]}
Array.prototype.forEach.call(hs,function(h,i){h.title="click to sort";h.addEventListener("click",function(){
var d=h.getAttribute("aria-sort")==="ascending"?-1:1;Array.prototype.forEach.call(hs,function(x){
x.removeAttribute("aria-sort")});h.setAttribute("aria-sort",d>0?"ascending":"descending");
var r=Array.prototype.slice.call(b.rows).map(function(x){return [k(x.cells[i]),x]});
r.sort(function(x,y){var a=x[0],c=y[0];if(a[0]!==c[0])return a[0]-c[0];return a[1]<c[1]?-d:a[1]>c[1]?d:0});
r.forEach(function(x){b.appendChild(x[1])})})});
if(q)q.addEventListener("input",function(){var s=q.value.trim().toLowerCase(),m=0;
Array.prototype.forEach.call(b.rows,function(r){var ok=!s||r.cells[1].textContent.toLowerCase().indexOf(s)>=0;
r.hidden=!ok;if(ok)m++});n.textContent=m})})();
"""


def _g(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}g}"


def _text(s) -> str:
    """Escape element content (``&``, ``<``, ``>``); quotes need no escape outside attributes."""
    return html.escape(str(s), quote=False)


def _exemplars(u: UnitReport, texts: Sequence[str], labels: Sequence[str] | None, shown: int, max_chars: int) -> str:
    items = []
    for row, act in list(zip(u.exemplars, u.activations))[:shown]:
        if 0 <= row < len(texts):
            text = " ".join(str(texts[row]).split())
            if len(text) > max_chars:
                text = text[: max_chars - 1] + "…"
        else:
            text = f"(row {row} is not among the {len(texts)} sentences)"
        lab = f"<i>[{_text(labels[row])}]</i> " if labels is not None and 0 <= row < len(labels) else ""
        items.append(f"<b>{act:.3g}</b> {lab}{_text(text)}")
    return "<br>".join(items)


def _row(u: UnitReport, key: str, cols: dict, texts, labels, shown: int, max_chars: int) -> str:
    top = u.descriptors[0]
    cells = [f'<td data-s="{u.layer * 1_000_000 + u.unit}"><a class="atlas" href="{esc(atlas_href(key, u.layer, u.unit))}">'
             f"{u.layer}:{u.unit}</a></td>",
             "<td>" + _text(", ".join(f"{d.descriptor} {d.f:.0f}%" for d in u.descriptors)) + "</td>",
             f'<td class="num">{_g(top.enrichment)}</td>']
    if cols["q"]:
        cells.append(f'<td class="num">{_g(top.q, 2)}</td>')
    if cols["verified"]:
        cells.append(f'<td class="num">{sum(1 for h in u.held_out if h.verified)}</td>')
    if cols["j"]:
        cells.append(f'<td class="num">{_g(u.consistency, 2)}</td>')
    if cols["ref"]:
        cells.append("<td>" + _text(", ".join(u.reference or ()) or "none") + "</td>")
    if shown:
        cells.append(f'<td class="x">{_exemplars(u, texts, labels, shown, max_chars)}</td>')
    return "<tr>" + "".join(cells) + "</tr>"


def _not_described(result: DescribeResult, undescribed: list[UnitReport], root: Path) -> str:
    n = len(undescribed)
    why: dict[str, int] = {}
    for u in undescribed:
        why[u.status or "no descriptor"] = why.get(u.status or "no descriptor", 0) + 1
    ordered = sorted(why.items(), key=lambda kv: (-kv[1], kv[0]))  # most common reason first
    reasons = (": " + ", ".join(f"{_text(k)} {v:,}" for k, v in ordered)) if result.validity is not None else ""
    where = [f for f in ("units.csv", "descriptions.json") if (root / f).is_file()]
    listed = (" Every unit is listed in " + " and ".join(f'<a href="{f}">{f}</a>' for f in where) + ".") if where else ""
    return (f"<p>{n:,} units are not described (no descriptor at f ≥ t = {result.threshold:g}%){reasons}; they are "
            f"counted here, not listed.{listed}</p>")


def units_section(result: DescribeResult, root: Path, texts: Sequence[str], labels: Sequence[str] | None,
                  max_exemplars: int, max_chars: int) -> str:
    """The units section (escaped HTML): the count line of the undescribed units, the described per
    layer, and the table of the described units."""
    ordered = sorted(result.units, key=lambda u: (u.layer, u.unit))
    described = [u for u in ordered if u.descriptors]
    undescribed = [u for u in ordered if not u.descriptors]
    cols = {"q": result.fdr is not None or any(d.q is not None for u in described for d in u.descriptors),
            "verified": result.verification is not None, "j": result.consistency is not None,
            "ref": result.evaluation is not None}
    per_layer: dict[int, list[int]] = {}
    for u in ordered:
        per_layer.setdefault(u.layer, [0, 0])
        per_layer[u.layer][0] += 1
        per_layer[u.layer][1] += bool(u.descriptors)
    layers = " · ".join(f"L{k} {m:,} of {n:,}" for k, (n, m) in sorted(per_layer.items()))
    head = (["unit", "descriptors (f)", "enrichment"] + (["q"] if cols["q"] else [])
            + (["verified"] if cols["verified"] else []) + (["J"] if cols["j"] else [])
            + (["reference"] if cols["ref"] else [])
            + ([f"best exemplar{'s' if max_exemplars > 1 else ''}"] if max_exemplars else []))
    key = (f"<p>One row per described unit: <b>layer:unit</b>, its descriptors with f (% of its exemplars holding "
           "it), the top descriptor's enrichment f / base rate" + (" and its Benjamini-Hochberg q" if cols["q"] else "")
           + (", its descriptions verified on the held-out half" if cols["verified"] else "")
           + (", J = its split-half Jaccard" if cols["j"] else "")
           + (", the reference label names carried by ≥ t% of its exemplars" if cols["ref"] else "")
           + ((" and its best exemplar" if max_exemplars == 1 else f" and its best {max_exemplars} exemplars") + " (activation"
              + (", [label]" if labels is not None else "") + f", sentence cut at {max_chars} characters)"
              if max_exemplars else "") + ".</p>")
    out = [f'<section id="units"><h2>Units: {len(described):,} of {len(ordered):,} described</h2>',
           _not_described(result, undescribed, root), f'<p class="muted">Described per layer: {layers}.</p>',
           ATLAS_NOTE, key]
    if not described:
        out.append('<p class="muted">No unit reached the threshold.</p></section>')
        return "".join(out)
    key_ = provenance_key(result.provenance)
    rows = "".join(_row(u, key_, cols, texts, labels, max_exemplars, max_chars) for u in described)
    out.append('<p><label>Filter by descriptor: <input id="unit-filter" type="search" placeholder="e.g. battery">'
               f'</label> <span id="unit-count">{len(described):,}</span> units shown; click a column header to sort.'
               "</p>")
    out.append('<table id="unit-table" class="units"><thead><tr>' + "".join(f"<th>{esc(h)}</th>" for h in head)
               + f"</tr></thead><tbody>{rows}</tbody></table></section>")
    return "".join(out)
