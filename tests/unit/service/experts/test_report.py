"""`neuroscribe report DIR` on hand-made result folders (no model), and the report a job writes."""

import csv
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from neuroscribe.jobs import ConceptExperts, ExpertsResult, ExpertUnit, Provenance
from neuroscribe.service.cli import cli
from neuroscribe.service.report.plotting import compact_number, plot_label
from html_check import figure_errors, figure_text_px, link_errors, parse_page, script_errors

LAYERS = (0, 1, 2)
UNITS = 8
# concept -> (category, experts as (layer, unit)); a name with markup and one with an ampersand
EXPERTS = {
    "cat": ("animal", {(0, 1), (1, 2), (1, 3), (2, 4)}),
    "dog": ("animal", {(0, 1), (1, 2), (2, 5)}),
    "<b>x</b>": ("vehicle", {(2, 4), (2, 6)}),
    "AT&T": ("vehicle", {(2, 6), (0, 7)}),
}


def _ap(units: set, layer: int, unit: int) -> float:
    if (layer, unit) in units:
        return 0.99 - 0.01 * unit
    return round(0.5 + 0.03 * unit + 0.01 * layer, 4)


def _result(experts=EXPERTS, drops=True) -> ExpertsResult:
    concepts = []
    for name, (cat, units) in experts.items():
        ex = sorted((ExpertUnit(layer=l, unit=u, ap=_ap(units, l, u)) for l, u in units), key=lambda e: -e.ap)
        all_units = sorted((ExpertUnit(layer=l, unit=u, ap=_ap(units, l, u)) for l in LAYERS for u in range(UNITS)),
                           key=lambda e: -e.ap)
        concepts.append(ConceptExperts(
            concept=name, category=cat, n_pos=20, n_neg=18, experts=tuple(ex),
            counts_per_layer={l: sum(1 for (a, _) in units if a == l) for l in LAYERS}, top=tuple(all_units[:5])))
    prov = Provenance(neuroscribe_version="0.test", model="tiny/<model>", revision="abc123", weight_sha256="f" * 64,
                      site="mlp_post", pooling="max", data_sha256="d" * 64, generator={"backend": "fake"},
                      prompt_version="v1", seed=3, created_at="2024-01-01T00:00:00Z")
    d = {n: {"generated": 50, "kept": 38, "mentions_concept": 2} for n in experts} if drops else {}
    return ExpertsResult(tau=0.9, layers=LAYERS, units_per_layer=UNITS, concepts=tuple(concepts), drops=d,
                         provenance=prov)


def _write_folder(path, result):
    path.mkdir()
    (path / "experts.json").write_text(result.model_dump_json(indent=2))
    names = [c.concept for c in result.concepts]
    sets = [{(e.layer, e.unit) for e in c.experts} for c in result.concepts]
    with (path / "ap.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["layer", "unit", *names])
        for l in LAYERS:
            for u in range(UNITS):
                w.writerow([l, u, *(_ap(s, l, u) for s in sets)])
    return path


def _csv(path):
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _report(folder):
    return CliRunner().invoke(cli, ["report", str(folder)], catch_exceptions=False)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    folder = _write_folder(tmp_path_factory.mktemp("res") / "run", _result())
    r = _report(folder)
    assert r.exit_code == 0, r.output
    return folder


def test_page_exists_names_every_concept_escaped_and_is_self_contained(reported):
    page = (reported / "report.html").read_text(encoding="utf-8")
    for name in ("cat", "dog", "&lt;b&gt;x&lt;/b&gt;", "AT&amp;T", "tiny/&lt;model&gt;"):
        assert name in page
    assert "<b>x</b>" not in page and "AT&T" not in page
    assert page.count("<td>yes</td>") == sum(min(5, len(units)) for _, units in EXPERTS.values())
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == 3
    for key in ("f" * 64, "d" * 64, "abc123", "mlp_post", "v1", "2024-01-01T00:00:00Z", "mentions_concept"):
        assert key in page


def test_glance_box_comes_first_with_the_chance_baseline(reported):
    page = (reported / "report.html").read_text(encoding="utf-8")
    first = page.index("<section")
    assert page[first:].startswith('<section id="glance" class="glance">')
    glance = page[first:page.index("</section>", first)]
    assert "Results at a glance" in glance and "experts per concept (AP ≥ 0.9)" in glance
    # every row has its baseline: units unrelated to the concept, from random rankings of its sentences
    assert "units unrelated to the concept" in glance and "random rankings" in glance
    assert "above chance for all 4 concepts" in glance  # 2-4 experts each, chance ~0 for n+ 20, n- 18
    assert 'href="#experts"' in glance


def test_links_figures_and_atlas_units(reported):
    page = (reported / "report.html").read_text(encoding="utf-8")
    assert link_errors(page, reported) == []
    assert figure_errors(page) == [] and script_errors(page) == []
    assert all(px >= 9 for _, px in figure_text_px(page))
    atlas = [a["href"] for t, a in parse_page(page).tags if t == "a" and a.get("class") == "atlas"]
    assert len(atlas) == 5 * len(EXPERTS)  # every top unit of every concept
    from neuroscribe.atlas.keys import model_key

    key = model_key("tiny/<model>", None, "f" * 64)  # no requested revision: the default one
    assert f"/neurons/{key}/1/2" in atlas and all(h.startswith(f"/neurons/{key}/") for h in atlas)
    assert "neuroscribe ui" in page


def test_every_png_has_its_csv_linked(reported):
    pngs = sorted(p.stem for p in (reported / "report").glob("*.png"))
    assert pngs == ["concept_overlap", "experts_per_concept", "experts_per_layer"]
    page = (reported / "report.html").read_text(encoding="utf-8")
    for stem in pngs:
        assert (reported / "report" / f"{stem}.csv").is_file()
        assert f'href="report/{stem}.csv"' in page
        assert (reported / "report" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in reported.iterdir() if p.name.startswith(".report")]


def test_counts_csvs_equal_the_result(reported):
    res = _result()
    header, rows = _csv(reported / "report" / "experts_per_concept.csv")
    assert header == ["concept", "category", "n_experts", "n_pos", "n_neg"]
    assert rows == [[n, cat, str(len(units)), "20", "18"] for n, (cat, units) in EXPERTS.items()]
    header, rows = _csv(reported / "report" / "experts_per_layer.csv")
    assert header == ["concept", "layer", "n_experts"]
    expected = [[c.concept, str(l), str(c.counts_per_layer[l])] for c in res.concepts for l in LAYERS]
    assert rows == expected  # every layer, zeros included
    assert sum(int(r[2]) for r in rows if r[0] == "cat") == 4


def test_jaccard_csv_is_one_triangle_without_diagonal_and_hand_computed(reported):
    header, rows = _csv(reported / "report" / "concept_overlap.csv")
    assert header == ["concept_a", "concept_b", "jaccard"]
    names = list(EXPERTS)
    pairs = [(a, b) for a, b, _ in rows]
    assert all(a != b for a, b in pairs)
    assert len(pairs) == len(set(frozenset(p) for p in pairs)) == math.comb(len(names), 2)
    hand = {("dog", "cat"): 2 / 5, ("<b>x</b>", "cat"): 1 / 5, ("<b>x</b>", "dog"): 0 / 5,
            ("AT&T", "cat"): 0 / 6, ("AT&T", "dog"): 0 / 5, ("AT&T", "<b>x</b>"): 1 / 3}
    assert {(a, b): float(v) for a, b, v in rows} == pytest.approx(hand)


def test_category_test_is_printed_beside_the_heatmap(reported):
    from neuroscribe.workers.experts.overlap import category_overlap, jaccard_matrix

    names, mat = jaccard_matrix({n: s for n, (_, s) in EXPERTS.items()})
    stats = category_overlap(mat, names, {n: c for n, (c, _) in EXPERTS.items()}, n_permutations=10_000, seed=3)
    page = (reported / "report.html").read_text(encoding="utf-8")
    assert "Within vs between categories" in page
    assert f"{stats.within_mean:.3f}" in page and f"{stats.between_mean:.3f}" in page
    assert f"{stats.p_value:.4g}" in page
    header, rows = _csv(reported / "report" / "category_overlap.csv")
    got = dict(rows)
    assert float(got["within_mean"]) == pytest.approx(stats.within_mean)
    assert float(got["p_value"]) == pytest.approx(stats.p_value)


def test_categories_that_do_not_allow_the_test_are_explained(tmp_path):
    one_cat = {n: ("animal", s) for n, (_, s) in EXPERTS.items()}
    folder = _write_folder(tmp_path / "run", _result(one_cat, drops=False))
    assert _report(folder).exit_code == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "No category test" in page and "at least 2 categories" in page
    assert "user" in page  # no drop counts: said so
    none = {n: (None, s) for n, (_, s) in EXPERTS.items()}
    folder = _write_folder(tmp_path / "run2", _result(none))
    assert _report(folder).exit_code == 0
    assert "No concept has a category" in (folder / "report.html").read_text(encoding="utf-8")


def test_rerun_replaces_the_report_and_many_concepts_render(tmp_path):
    many = {f"concept number {i} with a long name": (f"c{i % 3}", {(i % 3, i % UNITS), (2, (i + 1) % UNITS)})
            for i in range(24)}
    folder = _write_folder(tmp_path / "run", _result(many))
    assert _report(folder).exit_code == 0
    assert _report(folder).exit_code == 0
    _, rows = _csv(folder / "report" / "concept_overlap.csv")
    assert len(rows) == math.comb(24, 2)
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert figure_errors(page) == [] and link_errors(page, folder) == []
    assert sorted(p.name for p in folder.iterdir()) == ["ap.csv", "experts.json", "report", "report.html"]


@pytest.mark.parametrize("value, text", [(1500, "1.5k"), (143000, "143k"), (2_000_000, "2M"), (12, "12"),
                                         (0, "0"), (999_999, "1M"), (1_250_000_000, "1.25B"), (0.25, "0.25"),
                                         (-3000, "-3k"), (12345, "12.3k")])
def test_compact_number(value, text):
    assert compact_number(value) == text


def test_plot_label_disables_mathtext_and_shortens():
    assert plot_label("$5 bill") == r"\$5 bill"
    assert len(plot_label("x" * 100)) == 28


def test_dir_without_experts_json_is_one_line_exit_2(tmp_path):
    for folder in (tmp_path, tmp_path / "missing"):
        r = CliRunner().invoke(cli, ["report", str(folder)])
        assert r.exit_code == 2, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("neuroscribe: error: DIR:") and str(folder) in lines[0]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "experts.json").write_text(json.dumps({"kind": "experts"}))
    r = CliRunner().invoke(cli, ["report", str(bad)])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "not a valid experts result" in r.stderr
    assert not (bad / "report").exists()


def test_help():
    r = CliRunner().invoke(cli, ["report", "--help"])
    assert r.exit_code == 0 and "DIR" in r.output and "report.html" in r.output


SENTENCES = [
    {"text": t, "concept": c, "label": y}
    for c, pos, neg in [
        ("cat", ["the cat sat on the mat", "a cat likes fish", "my cat sleeps all day"],
         ["the bus was late", "she played the guitar", "bread is baked at dawn"]),
        ("bus", ["the bus was late", "a red bus stopped", "we took the night bus"],
         ["the cat sat on the mat", "she played the guitar", "bread is baked at dawn"]),
    ]
    for ts, y in ((pos, 1), (neg, 0))
    for t in ts
]


def test_experts_job_writes_its_report(tmp_path):
    from tiny_models import make_tiny_model

    model = make_tiny_model("bert", tmp_path / "model")
    f = tmp_path / "s.jsonl"
    f.write_text("".join(json.dumps(s) + "\n" for s in SENTENCES))
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["experts", "--model", str(model), "--sentences", str(f), "--tau", "0.7", "--quiet",
                                 "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "cat" in page and "bus" in page and 'src="data:image/png;base64,' in page
    res = ExpertsResult.model_validate_json((out / "experts.json").read_text())
    _, rows = _csv(out / "report" / "experts_per_layer.csv")
    assert [int(r[2]) for r in rows] == [c.counts_per_layer[l] for c in res.concepts for l in res.layers]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]
    assert not [p for p in out.iterdir() if p.name.startswith(".report")]
