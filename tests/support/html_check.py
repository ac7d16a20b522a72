"""Checks for the report-page tests.

* ``parse_page``: a strict HTML reader: tag balance (void elements aside), every tag with its
  attributes, and the text.
* ``link_errors(page, root)``: every ``href``/``src`` of the page points at something that exists:
  an in-page anchor at an element with that id, a data URI, a file of the result folder ``root``
  (relative, inside it), or, for links with ``class="atlas"``, the atlas route
  ``/neurons/<model key>/<layer>/<unit>``. Nothing absolute or from the network.
* ``figure_errors(page)`` / ``figure_text_px(page)``: every embedded PNG figure's smallest text, in
  CSS pixels at the size the page shows it (the ``<img>`` width), from the PNG itself: its pixel
  width over its dpi (pHYs) is the figure's width in inches, and the smallest font size (points)
  its writer recorded (``plotting.FONT_KEY``); each figure must read at >= 9 CSS px, fit the page's
  content width and carry 2 PNG pixels per CSS pixel.
* ``script_errors(page)``: inline scripts only, loading nothing.
"""

import base64
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

ATLAS_ROUTE = re.compile(r"^/neurons/[A-Za-z0-9._~@%-]+/\d+/\d+$")
FONT_KEY = "neuroscribe:min-font-pt"  # as neuroscribe.service.report.plotting writes it
CONTENT_PX = 1000  # the pages' content width (CSS px)


class PageChecker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "script":
            self.scripts.append(data)
            return
        self.text.append(data)


def parse_page(page: str) -> PageChecker:
    p = PageChecker()
    p.feed(page)
    p.close()
    return p


# --------------------------------------------------------------------------- links


def link_errors(page: str, root) -> list[str]:
    """What is wrong with the page's links (``[]``: every one points at something that exists)."""
    root = Path(root).resolve()
    p = parse_page(page)
    ids = {a["id"] for _, a in p.tags if a.get("id")}
    errors = []
    for tag, attrs in p.tags:
        for name in ("href", "src"):
            url = attrs.get(name)
            if url is None:
                continue
            if "atlas" in (attrs.get("class") or "").split():
                if tag != "a" or name != "href" or not ATLAS_ROUTE.match(url):
                    errors.append(f"atlas link {url!r} is not /neurons/<key>/<layer>/<unit>")
                continue
            if url.startswith("data:"):
                continue
            if url.startswith("#"):
                if url[1:] not in ids:
                    errors.append(f"{url} points at no id of the page")
                continue
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url) or url.startswith(("/", "\\")):
                errors.append(f"{tag} {name}={url!r} is not a relative link into the result folder")
                continue
            target = (root / url.split("#")[0]).resolve()
            if root not in target.parents or not target.is_file():
                errors.append(f"{tag} {name}={url!r}: no such file in {root}")
    return errors


def script_errors(page: str) -> list[str]:
    """Scripts must be inline and load nothing."""
    p = parse_page(page)
    errors = [f"script with src={a['src']!r}" for t, a in p.tags if t == "script" and "src" in a]
    for s in p.scripts:
        for word in ("http:", "https:", "fetch(", "XMLHttpRequest", "import(", "//cdn"):
            if word in s:
                errors.append(f"a script holds {word!r}")
    return errors


# --------------------------------------------------------------------------- figures


def png_facts(data: bytes) -> dict:
    """Width and height (pixels), dpi (pHYs) and text chunks of a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    facts: dict = {"text": {}}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            facts["width"], facts["height"] = struct.unpack(">II", body[:8])
        elif kind == b"pHYs":
            x, y, unit = struct.unpack(">IIB", body[:9])
            if unit == 1:
                facts["dpi"] = (x * 0.0254, y * 0.0254)
        elif kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            facts["text"][key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            facts["text"][key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        pos += 12 + length
    return facts


def figure_text_px(page: str) -> list[tuple[str, float]]:
    """(alt, smallest text in CSS px as shown) of every embedded PNG; raises when a figure lacks what
    it takes to tell (its size on the page, its dpi or its smallest font)."""
    out = []
    for tag, attrs in parse_page(page).tags:
        src = attrs.get("src") or ""
        if tag != "img" or not src.startswith("data:image/png;base64,"):
            continue
        facts = png_facts(base64.b64decode(src.split(",", 1)[1]))
        width = int(attrs["width"])  # KeyError: the page does not fix the figure's size
        inches = facts["width"] / facts["dpi"][0]
        points = float(facts["text"][FONT_KEY])
        out.append((attrs.get("alt", ""), points / 72.0 * width / inches))
    return out


def figure_errors(page: str, *, min_px: float = 9.0, content_px: int = CONTENT_PX, density: float = 2.0) -> list[str]:
    """What is wrong with the page's figures (``[]``: each reads at >= ``min_px`` CSS px, fits the
    content width, keeps its aspect and has ``density`` PNG pixels per CSS pixel)."""
    errors = []
    for tag, attrs in parse_page(page).tags:
        src = attrs.get("src") or ""
        if tag != "img":
            continue
        name = attrs.get("alt", "?")
        if not src.startswith("data:image/png;base64,"):
            errors.append(f"{name}: not an embedded PNG")
            continue
        facts = png_facts(base64.b64decode(src.split(",", 1)[1]))
        if "width" not in attrs or "height" not in attrs:
            errors.append(f"{name}: the <img> has no width/height")
            continue
        if "dpi" not in facts or FONT_KEY not in facts["text"]:
            errors.append(f"{name}: the PNG records no dpi or smallest font")
            continue
        w, h = int(attrs["width"]), int(attrs["height"])
        if w > content_px:
            errors.append(f"{name}: {w} px wide, wider than the content ({content_px} px): it would be scaled down")
        if facts["width"] < density * w - 1 or facts["height"] < density * h - 1:
            errors.append(f"{name}: {facts['width']}x{facts['height']} PNG pixels for {w}x{h} CSS px (< {density}x)")
        if abs(facts["width"] / facts["height"] - w / h) > 0.02 * w / h:
            errors.append(f"{name}: the <img> does not keep the PNG's aspect")
        inches = facts["width"] / facts["dpi"][0]
        px = float(facts["text"][FONT_KEY]) / 72.0 * w / inches
        if px < min_px:
            errors.append(f"{name}: its smallest text reads at {px:.1f} CSS px (< {min_px})")
    return errors
