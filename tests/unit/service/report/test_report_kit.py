"""The report kit shared by the pages: figure sizes and fonts, the glance box, label placement,
atlas links, and the page checker the page tests rely on (which must be able to fail)."""

import base64
import itertools

import pytest

from neuroscribe.service.report.atlas_links import atlas_href, atlas_link, provenance_key
from neuroscribe.service.report.glance import GlanceRow, difference_verdict, glance_section, interval_verdict, \
    point_verdict
from neuroscribe.service.report.html import Section, png_css_size, render_section
from neuroscribe.service.report.labels import place_labels
from neuroscribe.service.report.plotting import (DPI, FONT_KEY, MAX_WIDTH_IN, MIN_FONT_PT, PX_PER_INCH, FigureData,
                                                 new_figure, save_png, thin_ticks)
from html_check import figure_errors, figure_text_px, link_errors, png_facts


def _figure(tmp_path, width, height, fontsize, name="f"):
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set_title("a title", fontsize=fontsize)
    ax.tick_params(labelsize=fontsize)
    png, csv = tmp_path / f"{name}.png", tmp_path / f"{name}.csv"
    csv.write_text("x\n", encoding="utf-8")
    return fig, png, csv


def _page(img: str) -> str:
    return f"<!DOCTYPE html><html><body>{img}</body></html>"


def test_save_png_is_2x_and_records_its_smallest_font_raised_to_the_minimum(tmp_path):
    fig, png, csv = _figure(tmp_path, 6.0, 3.0, 4.0)  # a 4 pt font asked for
    save_png(fig, png)
    facts = png_facts(png.read_bytes())
    assert facts["width"] == round(6.0 * DPI) and facts["height"] == round(3.0 * DPI)
    assert facts["dpi"][0] == pytest.approx(DPI, rel=1e-3) and float(facts["text"][FONT_KEY]) == MIN_FONT_PT
    assert png_css_size(png.read_bytes()) == (6 * PX_PER_INCH, 3 * PX_PER_INCH)
    html = render_section(Section("t", figures=(FigureData("f", "F", "c", png, csv, ("x",), ()),)), tmp_path)
    assert f'width="{6 * PX_PER_INCH}" height="{3 * PX_PER_INCH}"' in html
    assert figure_errors(_page(html)) == []
    assert figure_text_px(_page(html)) == [("F", pytest.approx(MIN_FONT_PT * PX_PER_INCH / 72, rel=1e-3))]  # 9.3 px
    save_png(fig, tmp_path / "again.png")
    assert (tmp_path / "again.png").read_bytes() == png.read_bytes()  # the same figure, the same bytes


def test_figures_are_never_wider_than_the_page(tmp_path):
    fig, png, _ = _figure(tmp_path, 30.0, 3.0, 8.0)
    save_png(fig, png)
    assert abs(png_facts(png.read_bytes())["width"] - MAX_WIDTH_IN * DPI) <= 1


def _img(data: bytes, width: int, height: int, alt: str = "fig") -> str:
    return (f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}" width="{width}" height="{height}" '
            f'alt="{alt}">')


def test_the_figure_check_fails_on_small_text_scaled_images_and_missing_sizes(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3), dpi=100)  # drawn without the kit: 5 pt text, no record of it
    fig.add_subplot().set_title("small", fontsize=5)
    raw = tmp_path / "raw.png"
    fig.savefig(raw, dpi=100)
    errors = figure_errors(_page(_img(raw.read_bytes(), 600, 300)))
    assert any("no dpi or smallest font" in e for e in errors)
    fig, png, _ = _figure(tmp_path, 6.0, 3.0, 8.0)
    save_png(fig, png)
    data = png.read_bytes()
    assert figure_errors(_page(_img(data, 576, 288))) == []
    # shown at half its size: its 8 pt text reads at 5.3 px
    small = figure_errors(_page(_img(data, 288, 144)))
    assert any("smallest text reads at 5.3 CSS px" in e for e in small)
    wide = figure_errors(_page(_img(data, 1200, 600)))
    assert any("wider than the content" in e for e in wide) and any("< 2.0x" in e for e in wide)
    assert any("no width/height" in e for e in figure_errors(_page(_img(data, 576, 288).replace(' width="576"', ""))))
    assert any("aspect" in e for e in figure_errors(_page(_img(data, 576, 200))))


def test_the_link_check_fails_on_missing_files_anchors_and_bad_atlas_links(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "a.csv").write_text("x", encoding="utf-8")
    good = ('<p id="top"><a href="report/a.csv">a</a><a href="#top">t</a>'
            '<a class="atlas" href="/neurons/org--model@step1/3/17">u</a></p>')
    assert link_errors(_page(good), tmp_path) == []
    for bad, why in (('<a href="report/b.csv">b</a>', "no such file"), ('<a href="#nowhere">n</a>', "no id"),
                     ('<a href="../secret.txt">s</a>', "no such file"), ('<a href="/etc/passwd">p</a>', "not a relative"),
                     ('<img src="https://cdn.example/x.png">', "not a relative"),
                     ('<a class="atlas" href="/neurons/m/x/1">u</a>', "atlas link"),
                     ('<a class="atlas" href="report/a.csv">u</a>', "atlas link")):
        errors = link_errors(_page(bad), tmp_path)
        assert len(errors) == 1 and why in errors[0], (bad, errors)


def test_atlas_links_use_the_model_key_of_the_provenance():
    from types import SimpleNamespace

    from neuroscribe.atlas.keys import model_key

    prov = SimpleNamespace(model="EleutherAI/pythia-70m", requested_revision="step1000", weight_sha256="ab" * 32)
    key = provenance_key(prov)
    assert key == model_key("EleutherAI/pythia-70m", "step1000", "ab" * 32) == "EleutherAI--pythia-70m@step1000"
    assert provenance_key(SimpleNamespace(model="m", requested_revision="", weight_sha256="0" * 64)) == "m"
    assert atlas_href(key, 3, 17) == "/neurons/EleutherAI--pythia-70m@step1000/3/17"
    assert atlas_link(key, 0, 1, "<0:1>") == ('<a class="atlas" href="/neurons/EleutherAI--pythia-70m@step1000/0/1">'
                                              "&lt;0:1&gt;</a>")


def test_a_glance_row_needs_its_baseline_and_says_below_chance():
    with pytest.raises(ValueError, match="baseline"):
        GlanceRow("P@1", "40%", " ", "below chance")
    assert difference_verdict(-0.2, -0.01) == "below chance" and difference_verdict(0.01, 0.2) == "above chance"
    assert difference_verdict(-0.1, 0.1) == "not told apart from chance"
    assert difference_verdict(None, 0.1).endswith("(no interval)")
    assert interval_verdict((0.3, 0.4), (0.5, 0.6)) == "below chance"
    assert interval_verdict((0.45, 0.55), (0.5, 0.6)) == "not told apart from chance"
    assert point_verdict(0.2, 0.3) == "below chance (no interval)"
    html = glance_section([GlanceRow("P@1", "40%", "random sets 50%", "below chance", "evaluation"),
                           GlanceRow("J", "0.6", "paper 0.95 <ref>", "not above the shuffled baseline")], n_warnings=2)
    assert html.startswith('<section id="glance" class="glance"><h2>Results at a glance</h2>')
    assert '<td class="below">below chance</td>' in html and '<td class="same">not above' in html
    assert '<a href="#evaluation">P@1</a>' in html and "paper 0.95 &lt;ref&gt;" in html
    assert '<a href="#warnings">2 warnings</a>' in html


def test_place_labels_never_overlaps_two_labels(tmp_path):
    fig = new_figure(4.0, 3.0)
    ax = fig.add_subplot()
    xs = [1.0 + 0.01 * (i % 4) for i in range(16)] + [2.0, 3.0]
    ys = [1.0 + 0.01 * (i // 4) for i in range(16)] + [2.0, 1.0]
    ax.scatter(xs, ys)
    ax.set_xlim(0, 4)
    ax.set_ylim(0, 3)
    placed = place_labels(ax, xs, ys, [f"pair number {i}" for i in range(len(xs))], fontsize=8)
    assert 3 <= len(placed) < len(xs)  # crowded points: some left out rather than piled up
    renderer = fig.canvas.get_renderer()
    boxes = [a.get_window_extent(renderer) for a in placed]
    frame = ax.get_window_extent(renderer)
    for a, b in itertools.combinations(boxes, 2):
        assert a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    save_png(fig, tmp_path / "labels.png")


def test_thin_ticks():
    assert thin_ticks(9.0, 24) == 1  # 0.37 in per label
    assert thin_ticks(4.0, 60) == 3
    assert thin_ticks(5.0, 1) == 1
