"""Point labels that do not collide: ``place_labels`` puts each label, in priority order, at the
first of a few positions around its point where it overlaps no label placed before it and stays
inside the axes (avoiding the plotted points too when it can), and leaves it out otherwise (the
figure's CSV names every point)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["place_labels"]

# offsets (points) and alignments tried around a point, best first
_SPOTS = ((4, 3, "left", "bottom"), (4, -3, "left", "top"), (-4, 3, "right", "bottom"), (-4, -3, "right", "top"),
          (0, 6, "center", "bottom"), (0, -6, "center", "top"), (7, 0, "left", "center"), (-7, 0, "right", "center"))


def _overlaps(a, b, pad: float = 1.0) -> bool:
    return not (a.x1 + pad <= b.x0 or b.x1 + pad <= a.x0 or a.y1 + pad <= b.y0 or b.y1 + pad <= a.y0)


def place_labels(ax, xs: Sequence[float], ys: Sequence[float], texts: Sequence[str], *, fontsize: float = 8.0,
                 color: str = "#333333", max_labels: int | None = None, point_px: float = 3.0,
                 draw: bool = True) -> list:
    """Label the points ``(xs[i], ys[i])`` with ``texts[i]`` (already safe for matplotlib), in that
    order, without two labels overlapping; returns the annotations placed. The figure is drawn
    first (unless ``draw`` is false: it was, and nothing but labels changed since) so that the axes
    have their final place; the labels are left out of the layout."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    if draw:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    scale = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    pts = ax.transData.transform(list(zip(xs, ys))) if len(xs) else []
    r = point_px * scale
    marks = [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in pts]
    placed, boxes = [], []
    for i, text in enumerate(texts):
        if max_labels is not None and len(placed) >= max_labels:
            break
        if not frame.contains(*pts[i]):
            continue
        fallback = None
        ann = None
        for dx, dy, ha, va in _SPOTS:
            if ann is not None:
                ann.remove()
            ann = ax.annotate(text, (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                              fontsize=fontsize, color=color, annotation_clip=True)
            ann.set_in_layout(False)
            box = ann.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if not inside or any(_overlaps(box, b, 2.0 * scale) for b in boxes):
                continue
            if not any(_overlaps(box, m, 0.0) for j, m in enumerate(marks) if j != i):
                fallback = None
                break
            if fallback is None:
                fallback = (dx, dy, ha, va, box)
        else:
            ann.remove()
            ann = None
            if fallback is not None:  # only over other points: better than no label
                dx, dy, ha, va, box = fallback
                ann = ax.annotate(text, (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", ha=ha,
                                  va=va, fontsize=fontsize, color=color, annotation_clip=True)
                ann.set_in_layout(False)
        if ann is not None:
            boxes.append(ann.get_window_extent(renderer))
            placed.append(ann)
    return placed
