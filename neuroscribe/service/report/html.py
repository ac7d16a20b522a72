"""The report kit's page shell: one self-contained HTML file (inline CSS, PNGs as base64 data URIs,
nothing loaded from the network; a page may carry a few lines of its own inline script), shared by
the experts, describe and rank pages.

Every string that comes from the user or the result is escaped here, through ``esc``;
``Section.body`` and ``Section.aside`` are HTML that their builder already escaped. A page is
``render_document(title, intro, glance + render_sections(sections, root), ...)``: the shared CSS
(plus the page's own), the title, the intro, the results-at-a-glance box (``report.glance``), the
sections and a footer naming the neuroscribe version.

Figures: each ``<img>`` gets the CSS size of its PNG (``png_css_size``: the PNG's pixels over its
dpi, times ``PX_PER_INCH``), so a figure is never scaled down on a page at its content width
(``CONTENT_PX``) and its fonts read at the size they were drawn for; a figure beside an aside keeps
its width (the aside wraps under it when both do not fit).
"""

from __future__ import annotations

import base64
import html
import struct
from dataclasses import dataclass, field
from pathlib import Path

from neuroscribe.service.report.plotting import CONTENT_PX, PX_PER_INCH, FigureData

__all__ = ["Section", "esc", "table", "render_section", "render_sections", "render_document", "provenance_list",
           "provenance_section", "warnings_block", "png_css_size"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:%dpx;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
figure{margin:1em 0} figure img{max-width:100%%;height:auto;border:1px solid #eee;display:block}
figcaption{font-size:.9em;color:#444;max-width:60em} .side{display:flex;gap:1.5em;flex-wrap:wrap;align-items:flex-start}
.side>figure{flex:0 0 auto;max-width:100%%} .side>aside{flex:1 1 260px;font-size:.92em}
table{border-collapse:collapse;font-size:.88em;margin:.5em 0} th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums} th{background:#f5f5f5}
.note{color:#8a4b00;background:#fff6e5;padding:.4em .6em;border-left:3px solid #e69f00}
.muted{color:#777} code{font-size:.92em} dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em}
dl.prov dt{font-weight:600} dl.prov dd{margin:0;word-break:break-all}
section.glance{background:#f3f8fc;border:1px solid #9cc3e0;border-left:4px solid #0072b2;padding:.2em 1em .6em;
margin:1em 0} section.glance h2{margin-top:.6em;border:0} section.glance table{font-size:.92em;background:#fff}
td.below,td.above,td.same{font-weight:600} td.below{color:#b00020} td.above{color:#006b4f} td.same{color:#555}
a.atlas{text-decoration-style:dotted}
""" % CONTENT_PX


def esc(value) -> str:
    """HTML-escape anything (quotes too), ``None`` as an em dash."""
    return "—" if value is None else html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Section:
    """One part of the page: a title, its figures, and extra (already escaped) HTML.

    ``aside`` is shown beside the first figure (e.g. the statistics of a heatmap); ``body`` below
    the figures; ``files`` are further CSV/JSON files (relative to DIR) linked under the section.
    """

    title: str
    figures: tuple[FigureData, ...] = ()
    aside: str = ""
    body: str = ""
    files: tuple[str, ...] = field(default_factory=tuple)
    anchor: str = ""  # the section's id, for links within the page ("": none)


def table(header, rows, numeric: set[int] = frozenset()) -> str:
    """An escaped HTML table; columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{esc(v)}</td>' if i in numeric else f"<td>{esc(v)}</td>"
                         for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def png_css_size(data: bytes) -> tuple[int, int] | None:
    """The CSS size (width, height) of a PNG on the page: its pixels over its dpi (pHYs), times
    ``PX_PER_INCH``; ``None`` when it is not a PNG or records no dpi."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"pHYs" and length >= 9:
            ppu_x, ppu_y, unit = struct.unpack(">IIB", data[pos + 8:pos + 17])
            if unit != 1 or not ppu_x or not ppu_y:
                return None
            dpi_x, dpi_y = ppu_x * 0.0254, ppu_y * 0.0254
            return round(width / dpi_x * PX_PER_INCH), round(height / dpi_y * PX_PER_INCH)
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def _figure(fig: FigureData, root: Path) -> str:
    csv_rel = fig.csv.relative_to(root).as_posix()
    png_rel = fig.png.relative_to(root).as_posix()
    size = png_css_size(fig.png.read_bytes())
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return (
        f'<figure id="{esc(fig.name)}"><img src="{_data_uri(fig.png)}"{dims} alt="{esc(fig.title)}">'
        f"<figcaption>{esc(fig.caption)} Numbers: <a href=\"{esc(csv_rel)}\">{esc(csv_rel)}</a>"
        f' · image: <a href="{esc(png_rel)}">{esc(png_rel)}</a></figcaption></figure>'
    )


def render_section(sec: Section, root: Path) -> str:
    """One ``<section>``: its title, figures (the first beside ``aside``), body and file links;
    links are relative to ``root`` (the result folder)."""
    figs = [_figure(f, root) for f in sec.figures]
    parts = [f"<h2>{esc(sec.title)}</h2>"]
    if sec.aside and figs:
        parts.append(f'<div class="side">{figs[0]}<aside>{sec.aside}</aside></div>')
        parts += figs[1:]
    else:
        parts += figs
        if sec.aside:
            parts.append(sec.aside)
    if sec.body:
        parts.append(sec.body)
    if sec.files:
        links = ", ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in sec.files)
        parts.append(f'<p class="muted">Files: {links}</p>')
    ident = f' id="{esc(sec.anchor)}"' if sec.anchor else ""
    return f"<section{ident}>{''.join(parts)}</section>"


def render_sections(sections, root: Path) -> str:
    """``render_section`` of each section, in order."""
    return "".join(render_section(s, root) for s in sections)


def render_document(title: str, intro: str, body: str, *, version: str, source: str | None = None,
                    css: str = "", script: str = "") -> str:
    """The whole page: ``title`` (escaped here) as its title and heading, then ``intro`` and ``body``
    (already escaped HTML); the shared CSS followed by the page's own ``css``; a footer naming the
    neuroscribe ``version`` and, when given, the ``source`` file the page was written from; the
    page's own inline ``script`` (JavaScript, no ``</script>`` in it) last."""
    footer = f"Written by neuroscribe {esc(version)}" + (f" from {esc(source)}" if source else "") + "."
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}{css}</style></head><body>"
        f"<h1>{esc(title)}</h1>{intro}{body}"
        f'<p class="muted">{footer}</p>'
        + (f"<script>{script}</script>" if script else "")
        + "</body></html>\n"
    )


def provenance_list(p, no_generator: str) -> str:
    """A result's ``Provenance`` as an escaped definition list; ``no_generator`` when none is recorded."""
    gen = p.generator
    gen_text = no_generator if gen is None else ", ".join(f"{k}={v}" for k, v in gen.items())
    items = [("model", p.model), ("revision", p.revision), ("requested revision", p.requested_revision),
             ("weight sha256", p.weight_sha256), ("site", p.site), ("pooling", p.pooling.value),
             ("generator", gen_text), ("prompt version", p.prompt_version), ("data sha256", p.data_sha256),
             ("seed", p.seed), ("created at", p.created_at), ("neuroscribe", p.neuroscribe_version)]
    if p.environment:
        items.append(("environment", ", ".join(f"{k}={v}" for k, v in p.environment.items())))
    return '<dl class="prov">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def provenance_section(p, no_generator: str, root: Path, files: tuple[str, ...]) -> Section:
    """The "Provenance" section: ``provenance_list`` and links to those of ``files`` (names relative
    to the result folder ``root``) that exist there."""
    return Section("Provenance", body=provenance_list(p, no_generator),
                   files=tuple(f for f in files if (Path(root) / f).is_file()))


def warnings_block(warnings) -> str:
    """The result's warnings as a highlighted list ("" when there are none)."""
    if not warnings:
        return ""
    items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    return f'<section id="warnings"><h2>Warnings ({len(warnings)})</h2><div class="note"><ul>{items}</ul></div></section>'
