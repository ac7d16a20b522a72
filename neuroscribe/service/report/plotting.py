"""The figure helpers every report page uses: matplotlib with the Agg canvas (no pyplot, no global
state, no display).

A figure function saves ``NAME.png`` and ``NAME.csv`` (exactly the numbers it plots, same basename;
``figure_paths``, ``save_png``, ``write_csv``) and returns a ``FigureData`` holding those numbers.
Counts on axes use ``compact_number`` (143k, not 143000; ``number_formatter``); colours come from
``PALETTE_24``, 24 fixed qualitative colours starting with the Okabe-Ito palette (colour-blind safe)
(``palette``, ``line_styles``). Undefined statistics (``None``, NaN) are ``nan`` in the CSVs
(``csv_num``) and left out of the plots (``finite``).

Sizes: a figure inch is shown as ``PX_PER_INCH`` (96) CSS pixels on the page (``html`` sets the
``<img>`` size from the PNG), so a font of s points reads as s * 96 / 72 CSS pixels; figures are at
most ``MAX_WIDTH_IN`` wide (the page's content width) and are saved at ``DPI`` = 2 x 96 (sharp on
high-density screens). ``save_png`` raises any text under ``MIN_FONT_PT`` (7 pt = 9.3 CSS px) and
records the smallest font in the PNG (``FONT_KEY``), quantised to 256 colours to keep pages light.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CONTENT_PX",
    "DPI",
    "FONT_KEY",
    "FigureData",
    "MARKERS",
    "MAX_WIDTH_IN",
    "MIN_FONT_PT",
    "NAN",
    "OKABE_ITO",
    "PALETTE_24",
    "PX_PER_INCH",
    "compact_number",
    "csv_num",
    "figure_paths",
    "finite",
    "integer_locator",
    "label_size",
    "line_styles",
    "new_figure",
    "number_formatter",
    "outside_legend",
    "palette",
    "plot_label",
    "rotate_labels",
    "save_png",
    "thin_ticks",
    "write_csv",
]

# Okabe & Ito (2008), "Color Universal Design"; black left out (it reads as text/edges)
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
# Okabe-Ito, then 16 colours picked greedily from Tol's, Kelly's and tab10's palettes for the largest
# smallest CIELAB distance to the colours before them (lightness 25-85): no two closer than 24 (dE76)
PALETTE_24 = OKABE_ITO + ("#FF1493", "#800080", "#BE0032", "#663333", "#808000", "#F99379", "#2CA02C", "#225555",
                          "#DDCC77", "#00CED1", "#225522", "#9467BD", "#8DB600", "#882255", "#A0522D", "#EE6677")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
NAN = float("nan")
PX_PER_INCH = 96  # CSS pixels per figure inch on the page
DPI = 2 * PX_PER_INCH  # PNG pixels per figure inch: 2x
CONTENT_PX = 1000  # the page's content width (html.py's body max-width)
MAX_WIDTH_IN = 9.8  # widest figure: the content width less the figure's border and a little room
MIN_FONT_PT = 7.0  # 7 pt at 96 px per inch = 9.3 CSS px
FONT_KEY = "neuroscribe:min-font-pt"  # PNG text chunk: the smallest font of the figure, in points
_LINESTYLES = ("-", "--", ":", "-.")
_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
_MAX_LABEL = 28  # characters of a name shown on an axis (the CSV holds the full name)


@dataclass(frozen=True)
class FigureData:
    """A written figure: its files, and the numbers it plots (the CSV's header and rows)."""

    name: str
    title: str
    caption: str
    png: Path
    csv: Path
    header: tuple[str, ...]
    rows: tuple[tuple, ...]
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- numbers


def compact_number(x: float) -> str:
    """A short tick label: 12 -> '12', 1500 -> '1.5k', 143000 -> '143k', 2_000_000 -> '2M', 0.25 -> '0.25'."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    ax = abs(x)
    for i, (div, suffix) in enumerate(_SUFFIXES):
        if ax >= div:
            s = f"{x / div:.3g}"
            if abs(float(s)) >= 1000 and i > 0:  # 999_999 -> '1M', not '1e+03k'
                div, suffix = _SUFFIXES[i - 1]
                s = f"{x / div:.3g}"
            return s + suffix
    if ax >= 1 and x == int(x):
        return str(int(x))
    s = f"{x:.3g}"
    return s if "e" not in s else f"{x:.2e}"


def finite(v) -> float | None:
    """``v`` as a float, or ``None`` when it is missing or not finite (an undefined statistic)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def csv_num(v):
    """A CSV cell for a statistic: the value, or ``nan`` when undefined."""
    f = finite(v)
    return NAN if f is None else (v if isinstance(v, int) and not isinstance(v, bool) else f)


# --------------------------------------------------------------------------- colours and labels


def palette(n: int) -> list[str]:
    """``n`` distinguishable colours: the first ``n`` of ``PALETTE_24`` (Okabe-Ito first), repeated
    beyond 24."""
    return [PALETTE_24[i % len(PALETTE_24)] for i in range(n)]


def line_styles(n: int) -> list[tuple]:
    """``n`` distinguishable ``(colour, linestyle, marker)``: the ``palette`` with solid lines up to
    24; beyond 24 the colours repeat with another line style and marker."""
    size = len(PALETTE_24)
    if n <= size:
        return [(c, "-", MARKERS[i % len(MARKERS)] if n > 8 else "o") for i, c in enumerate(palette(n))]
    return [(PALETTE_24[i % size], _LINESTYLES[(i // size) % len(_LINESTYLES)], MARKERS[(i // size) % len(MARKERS)])
            for i in range(n)]


def plot_label(name: str, limit: int = _MAX_LABEL) -> str:
    """A user string made safe for matplotlib text: no mathtext (``$``), shortened to ``limit``."""
    name = " ".join(str(name).split())
    if len(name) > limit:
        name = name[: limit - 1] + "…"
    return name.replace("$", r"\$")


def label_size(n: int) -> float:
    """The font size of ``n`` tick labels side by side (9 for a few, down to ``MIN_FONT_PT``; past
    that, ``thin_ticks`` labels fewer of them)."""
    return max(MIN_FONT_PT + 0.5, min(9.0, 180.0 / max(n, 1)))


def rotate_labels(labels, n: int) -> None:
    """Tilt tick labels by 45 degrees when there are more than 4 of them."""
    for t in labels:
        if n > 4:
            t.set_rotation(45)
            t.set_ha("right")
            t.set_rotation_mode("anchor")


def thin_ticks(length_in: float, n: int, slot_in: float = 0.17) -> int:
    """The step between labelled ticks so that ``n`` labels along ``length_in`` inches get at least
    ``slot_in`` inches each (1: every tick). ``slot_in`` 0.17 fits a 7-8 pt label across its line
    height (rotated labels, or labels stacked on a y axis)."""
    if n <= 1 or length_in <= 0:
        return 1
    return max(1, math.ceil(n * slot_in / length_in))


# --------------------------------------------------------------------------- axes


def number_formatter():
    """A tick formatter writing ``compact_number``."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: compact_number(v))


def integer_locator():
    """Ticks at integers only (counts)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def outside_legend(fig, handles, labels, n: int) -> None:
    """The figure's legend outside the axes, top right (nothing without handles)."""
    if not handles:
        return
    fs = 8 if n <= 12 else 7.5
    fig.legend(handles, labels, loc="outside right upper", fontsize=fs, frameon=False,
               ncols=1 if n <= 26 else 2)


# --------------------------------------------------------------------------- files


def new_figure(width: float, height: float):
    """A matplotlib ``Figure`` on the Agg canvas (inches, at most ``MAX_WIDTH_IN`` wide; ``DPI``,
    constrained layout)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(width, MAX_WIDTH_IN), height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_paths(out_dir: Path, name: str) -> tuple[Path, Path]:
    """``out_dir/NAME.png`` and ``out_dir/NAME.csv``."""
    return out_dir / f"{name}.png", out_dir / f"{name}.csv"


def _texts(fig):
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and str(t.get_text()).strip()]


def enforce_min_font(fig) -> float:
    """Raise every text of ``fig`` under ``MIN_FONT_PT`` to it (tick labels through their axis, so
    ticks made at the next draw follow) and return the smallest font size left, in points."""
    fig.canvas.draw()  # the ticks and the layout exist from here on
    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis):
            if any(t.get_fontsize() < MIN_FONT_PT for t in axis.get_ticklabels(which="both")):
                axis.set_tick_params(which="both", labelsize=MIN_FONT_PT)
    texts = _texts(fig)
    for t in texts:
        if t.get_fontsize() < MIN_FONT_PT:
            t.set_fontsize(MIN_FONT_PT)
    return min((t.get_fontsize() for t in texts), default=MIN_FONT_PT)


def save_png(fig, png: Path) -> None:
    """Save ``fig`` as a PNG at ``DPI``, quantised to 256 colours, with its smallest font size
    (``FONT_KEY``) and no Software tag (the same figure gives the same bytes)."""
    from PIL import Image, PngImagePlugin

    smallest = enforce_min_font(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    buf.seek(0)
    with Image.open(buf) as im:
        img = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    info = PngImagePlugin.PngInfo()
    info.add_text(FONT_KEY, f"{smallest:g}")
    img.save(png, format="PNG", dpi=(DPI, DPI), pnginfo=info, optimize=True)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """A CSV file of ``header`` and ``rows``; floats written with ``repr`` (exact round trip)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([repr(v) if isinstance(v, float) else v for v in row])
