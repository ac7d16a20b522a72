"""The figure helpers every report page uses: matplotlib with the Agg canvas (no pyplot, no global
state, no display).

A figure function saves ``NAME.png`` and ``NAME.csv`` (exactly the numbers it plots, same basename;
``figure_paths``, ``save_png``, ``write_csv``) and returns a ``FigureData`` holding those numbers.
Counts on axes use ``compact_number`` (143k, not 143000; ``number_formatter``); colours come from
the Okabe-Ito palette (colour-blind safe), then tab20 when more are needed (``palette``,
``line_styles``). Undefined statistics (``None``, NaN) are ``nan`` in the CSVs (``csv_num``) and left
out of the plots (``finite``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FigureData",
    "OKABE_ITO",
    "MARKERS",
    "NAN",
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
    "write_csv",
]

# Okabe & Ito (2008), "Color Universal Design"; black left out (it reads as text/edges)
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
NAN = float("nan")
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
    """``n`` distinguishable colours: Okabe-Ito up to 8, tab20 up to 20, then tab20 repeated."""
    if n <= len(OKABE_ITO):
        return list(OKABE_ITO[:n])
    from matplotlib import colormaps

    tab = [colormaps["tab20"](i) for i in range(20)]
    return [tab[i % 20] for i in range(n)]


def line_styles(n: int) -> list[tuple]:
    """``n`` distinguishable ``(colour, linestyle, marker)``: the qualitative ``palette`` (Okabe-Ito,
    then tab20) with solid lines up to 20; beyond 20 the colours repeat with another line style
    and marker."""
    if n <= 20:
        return [(c, "-", MARKERS[i % len(MARKERS)] if n > 8 else "o") for i, c in enumerate(palette(n))]
    colours = palette(n)  # tab20, repeated
    return [(colours[i], _LINESTYLES[(i // 20) % len(_LINESTYLES)], MARKERS[(i // 20) % len(MARKERS)])
            for i in range(n)]


def plot_label(name: str, limit: int = _MAX_LABEL) -> str:
    """A user string made safe for matplotlib text: no mathtext (``$``), shortened to ``limit``."""
    name = " ".join(str(name).split())
    if len(name) > limit:
        name = name[: limit - 1] + "…"
    return name.replace("$", r"\$")


def label_size(n: int) -> float:
    """The font size of ``n`` tick labels side by side (10 for a few, down to 5)."""
    return max(5.0, min(10.0, 160.0 / max(n, 1)))


def rotate_labels(labels, n: int) -> None:
    """Tilt tick labels by 45 degrees when there are more than 4 of them."""
    for t in labels:
        if n > 4:
            t.set_rotation(45)
            t.set_ha("right")
            t.set_rotation_mode("anchor")


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
    fs = 8 if n <= 12 else 7 if n <= 24 else 6
    fig.legend(handles, labels, loc="outside right upper", fontsize=fs, frameon=False,
               ncols=1 if n <= 30 else 2)


# --------------------------------------------------------------------------- files


def new_figure(width: float, height: float):
    """A matplotlib ``Figure`` on the Agg canvas (inches; 110 dpi, constrained layout)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def figure_paths(out_dir: Path, name: str) -> tuple[Path, Path]:
    """``out_dir/NAME.png`` and ``out_dir/NAME.csv``."""
    return out_dir / f"{name}.png", out_dir / f"{name}.csv"


def save_png(fig, png: Path) -> None:
    """Save ``fig`` as a PNG without the Software tag (the same figure gives the same bytes)."""
    fig.savefig(png, format="png", metadata={"Software": None})


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """A CSV file of ``header`` and ``rows``; floats written with ``repr`` (exact round trip)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([repr(v) if isinstance(v, float) else v for v in row])
