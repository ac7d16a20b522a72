"""The report's analysis-suite sections (stability, human alignment, sweep, causal, warnings) on
hand-made results with known numbers (no model)."""

import csv

import pytest
from click.testing import CliRunner

from neuroscribe.jobs.experts_suite import (
    AlignmentReport,
    CausalReport,
    ConceptCausal,
    ConceptStability,
    FoldStability,
    MethodAlignment,
    PairSimilarity,
    SkippedConcept,
    StabilityReport,
    StabilitySpec,
    SweepEntry,
    SweepPoint,
    SweepReport,
)
from neuroscribe.jobs import ConceptExperts, ExpertsResult, ExpertUnit, Provenance
from neuroscribe.service.cli import cli
from neuroscribe.service.experts.report import write_report
from neuroscribe.service.experts.alignment_figures import rho_text
from neuroscribe.service.report.plotting import PALETTE_24, compact_number, line_styles, palette
from html_check import figure_errors, link_errors, script_errors

LAYERS = (0, 1, 2)
CONCEPTS = {"cat": {(0, 1), (1, 2)}, "dog": {(0, 1), (2, 5)}, "AT&T": set()}
TAUS = (0.6, 0.8, 0.9)
BASE_PNGS = {"experts_per_concept", "experts_per_layer", "concept_overlap"}
SUITE_PNGS = {"stability_curves", "men_scatter", "sweep_per_layer", "sweep_per_step", "sweep_per_size",
              "causal_effect"}


def _base(**suite) -> ExpertsResult:
    concepts = []
    for name, units in CONCEPTS.items():
        ex = tuple(ExpertUnit(layer=layer, unit=u, ap=0.95) for layer, u in sorted(units))
        counts = {layer: sum(1 for a, _ in units if a == layer) for layer in LAYERS}
        concepts.append(ConceptExperts(concept=name, n_pos=20, n_neg=20, experts=ex, top=ex, counts_per_layer=counts))
    prov = Provenance(neuroscribe_version="0.test", model="tiny/model", weight_sha256="f" * 64, site="mlp_post",
                      pooling="max", data_sha256="d" * 64, created_at="2024-01-01T00:00:00Z")
    return ExpertsResult(tau=0.9, layers=LAYERS, units_per_layer=8, concepts=tuple(concepts), provenance=prov,
                         **suite)


# --------------------------------------------------------------------------- stability


def _point(n_pos, n_neg, tau, jaccard, mean=3.0, std=1.0):
    return SweepPoint(n_pos=n_pos, n_neg=n_neg, tau=tau, repeats=5, jaccard=jaccard, n_pairs=10,
                      n_experts_mean=mean, n_experts_std=std, n_empty=0, base_rate=n_pos / (n_pos + n_neg),
                      n_distinct=5)


# concept -> tau -> (n+, n-, jaccard, experts) of its best point, None: no point above chance
BEST = {
    "cat": {0.6: (10, 10, 0.5, 7.0), 0.8: (10, 5, 0.7, 4.5), 0.9: None},
    "dog": {0.6: (5, 10, 0.25, 2.0), 0.8: (10, 10, 0.3, 1.5), 0.9: (10, 10, 0.125, 1.0)},
    "AT&T": {0.6: None, 0.8: None, 0.9: None},
}
FOLD_JACCARD = {"cat": 0.4321, "dog": None, "AT&T": None}


def _stability() -> StabilityReport:
    concepts = []
    for name, best in BEST.items():
        sweep = tuple(_point(a, b, t, None if name == "AT&T" else round(0.1 * a / b * t, 4))
                      for a in (5, 10) for b in (5, 10) for t in TAUS)
        concepts.append(ConceptStability(
            concept=name,
            folds=FoldStability(tau=0.9, k=3, jaccard=FOLD_JACCARD[name], n_pairs=3 if FOLD_JACCARD[name] else 0,
                                n_experts=(4, 5, 6) if name == "cat" else (0, 1, 0)),
            sweep=sweep,
            best={str(t): None if v is None else _point(v[0], v[1], t, v[2], mean=v[3]) for t, v in best.items()}))
    return StabilityReport(spec=StabilitySpec(taus=TAUS, repeats=5), n_pos=(5, 10), n_neg=(5, 10),
                           concepts=tuple(concepts))


# --------------------------------------------------------------------------- alignment

PAIRS = [("cat", "dog", 45.0, 0.4, 0.9), ("cat", "bus", 10.0, 0.1, 0.7), ("dog", "bus", 12.0, 0.05, 0.8),
         ("cat", "car", 8.0, 0.0, 0.75), ("dog", "car", 15.0, 0.2, 0.6), ("bus", "car", 40.0, 0.35, 0.95)]
RHO, P = 0.4123, 0.0031


def _alignment() -> AlignmentReport:
    return AlignmentReport(
        dataset="MEN", n_pairs=len(PAIRS), baseline_layer=2,
        methods=(MethodAlignment(method="experts_jaccard", description="Jaccard of the expert sets", rho=RHO,
                                 p_value=P),
                 MethodAlignment(method="embedding_cosine", description="cosine of mean embeddings", rho=None,
                                 p_value=None)),
        pairs=tuple(PairSimilarity(word1=a, word2=b, human=h, similarity={"experts_jaccard": j,
                                                                          "embedding_cosine": c})
                    for a, b, h, j, c in PAIRS),
        skipped=(SkippedConcept(concept="AT&T", reason="not in any pair with another requested concept"),),
        dropped_pairs=({"word1": "cat", "word2": "plane", "reason": "model similarity undefined (experts_jaccard)"},))


# --------------------------------------------------------------------------- sweep


def _entry(model, rev, step, counts, *, random_init=False, n_params=70_000_000, sha="a", layers=LAYERS, cache=False):
    return SweepEntry(model=model, requested_revision=rev, revision=None if rev is None else "0123456789abcdef" + rev,
                      random_init=random_init, weight_sha256=sha * 64, n_params=n_params, n_layers=len(layers),
                      units_per_layer=8, layers=layers, step=step, from_cache=cache,
                      counts_per_layer={c: dict(zip(layers, v, strict=True)) for c, v in counts.items()})


ENTRIES = [
    _entry("pythia-70m", "step143000", 143000, {"cat": (1, 2, 3), "dog": (0, 4, 1)}, sha="c"),
    _entry("pythia-70m", "step0", 0, {"cat": (0, 0, 1), "dog": (0, 0, 0)}, sha="0"),
    _entry("pythia-70m", "step1000", 1000, {"cat": (0, 1, 2), "dog": (1, 1, 1)}, sha="b", cache=True),
    _entry("pythia-70m", None, None, {"cat": (0, 1, 0), "dog": (0, 0, 0)}, random_init=True, sha="e"),
    _entry("pythia-160m", "step143000", 143000, {"cat": (2, 2, 2, 2), "dog": (1, 0, 0, 5)}, n_params=160_000_000,
           sha="d", layers=(0, 1, 2, 3)),
]
IDENTICAL = (("pythia-70m@step1000", "pythia-70m@step143000"),)


def _sweep(entries=ENTRIES, identical=IDENTICAL) -> SweepReport:
    return SweepReport(tau=0.9, entries=tuple(entries), identical_weights=identical)


# --------------------------------------------------------------------------- causal

PROMPTS = ("I saw a", "My favourite thing is the <odd> one:")


def _causal() -> CausalReport:
    return CausalReport(site="mlp_post", confidence=0.95, prompts=PROMPTS, concepts=(
        ConceptCausal(concept="cat", n_units=2, n_prompts=2, n_random=10, words=("cat", "cats"), mean_experts=1.25,
                      ci_experts=(0.5, 2.0), mean_random=0.125, ci_random=(-0.25, 0.5), mean_difference=1.125,
                      ci_difference=(0.25, 2.0)),
        ConceptCausal(concept="dog", n_units=2, n_prompts=1, n_random=10, words=("dog",), mean_experts=0.5,
                      ci_experts=(None, None), mean_random=0.25, ci_random=(None, None), mean_difference=None,
                      ci_difference=None),
        ConceptCausal(concept="AT&T", n_units=0, n_prompts=2, n_random=10, words=("AT&T",),
                      skipped="no experts to fix"),
    ))


WARNING = "pythia-70m@step1000 and pythia-70m@step143000 have identical weights <check>"


def _full() -> ExpertsResult:
    return _base(stability=_stability(), alignment=_alignment(), sweep=_sweep(), causal=_causal(),
                 warnings=(WARNING,))


def _csv(path):
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The full result written as experts.json and reported through the CLI (JSON round trip)."""
    folder = tmp_path_factory.mktemp("suite") / "run"
    folder.mkdir()
    (folder / "experts.json").write_text(_full().model_dump_json(indent=2))
    r = CliRunner().invoke(cli, ["report", str(folder)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return folder, (folder / "report.html").read_text(encoding="utf-8")


def _section(page: str, title: str) -> str:
    start = page.index(f"<h2>{title}")
    return page[start:page.index("</section>", start)]


# --------------------------------------------------------------------------- tests


def test_every_suite_section_has_its_pngs_and_csvs_in_order(full):
    folder, page = full
    pngs = {p.stem for p in (folder / "report").glob("*.png")}
    assert pngs == BASE_PNGS | SUITE_PNGS
    for stem in pngs:
        assert (folder / "report" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (folder / "report" / f"{stem}.csv").is_file()
        assert f'href="report/{stem}.csv"' in page
    assert page.count('src="data:image/png;base64,') == len(pngs)
    titles = ["Warnings (1)", "Experts per concept", "Concept overlap", "Stability of the expert sets",
              "Human alignment (MEN)", "Sweep across models and checkpoints", "Causal check",
              "Top units per concept", "Provenance"]
    where = [page.index(f"<h2>{t}") for t in titles]
    assert where == sorted(where)
    for f in ("report/stability_sweep.csv", "report/sweep_entries.csv"):
        assert f'href="{f}"' in page and (folder / f).is_file()
    assert "<script" not in page and "http" not in page


def test_glance_box_first_every_number_beside_its_baseline(full):
    folder, page = full
    first = page.index("<section")
    assert page[first:].startswith('<section id="glance" class="glance">')
    glance = page[first:page.index("</section>", first)]
    rows = glance.split("<tr>")[2:]  # header row left out
    assert all(r.count("<td") == 4 for r in rows)
    assert '<a href="#warnings">1 warning</a>' in glance
    assert "not: AT&amp;T" in glance  # no expert: not above chance
    stab = next(r for r in rows if "fold Jaccard" in r)
    assert "random sets of the same sizes" in stab
    men = next(r for r in rows if "MEN Spearman ρ: experts_jaccard" in r)
    assert "0.412 [" in men and "shuffled pairings: 95% within ±" in men and "p = 0.0031" in men
    assert "no alignment: ρ = 0" in men
    assert next(r for r in rows if "embedding_cosine" in r).count("undefined") == 2
    cat = next(r for r in rows if "Δ log P(cat)" in r)
    assert "+1.25" in cat and "as many random units: +0.125" in cat and "above random units" in cat
    dog = next(r for r in rows if "Δ log P(dog)" in r)
    assert "not told apart from random units (no interval)" in dog
    sweep = next(r for r in rows if "sweep: experts of pythia-70m@step143000" in r)
    assert "random initialisation of the same architecture: 1" in sweep and "above the random" in sweep
    for anchor in ("experts", "stability", "alignment", "causal", "sweep"):
        assert f'href="#{anchor}"' in glance and f'<section id="{anchor}">' in page


def test_links_and_figures_are_readable(full):
    folder, page = full
    assert link_errors(page, folder) == [] and figure_errors(page) == [] and script_errors(page) == []


def test_palette_has_24_distinct_colours():
    assert len(PALETTE_24) == 24 and len({c.upper() for c in PALETTE_24}) == 24
    assert palette(24) == list(PALETTE_24) and palette(25)[24] == PALETTE_24[0]
    assert palette(8) == list(PALETTE_24[:8])  # Okabe-Ito first: colour-blind safe for a few concepts

    def rgb(c):
        return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))

    closest = min(sum((a - b) ** 2 for a, b in zip(rgb(x), rgb(y))) ** 0.5
                  for i, x in enumerate(PALETTE_24) for y in PALETTE_24[i + 1:])
    assert closest > 40  # no two nearly alike (RGB distance; 0-441)


def test_warnings_are_shown_escaped_first(full):
    _, page = full
    sec = _section(page, "Warnings")
    assert "identical weights &lt;check&gt;" in sec and "<check>" not in page
    assert page.index("Results at a glance") < page.index("Warnings (1)") < page.index("Experts per concept")


def test_stability_csv_holds_the_best_jaccard_per_tau(full):
    folder, page = full
    header, rows = _csv(folder / "report" / "stability_curves.csv")
    assert header == ["concept", "tau", "n_pos", "n_neg", "jaccard", "n_experts_mean", "n_experts_std"]
    got = {(r[0], float(r[1])): (int(r[2]), int(r[3]), float(r[4]), float(r[5])) for r in rows}
    expected = {(c, t): v for c, best in BEST.items() for t, v in best.items() if v is not None}
    assert got == expected  # cat at 0.9 and every AT&T tau (None) are left out
    sec = _section(page, "Stability")
    assert "0.432" in sec  # cat's K-fold Jaccard
    dog_row = sec[sec.index("<td>dog</td>"):]
    assert dog_row[:dog_row.index("</tr>")].count("<td class=\"num\">—</td>") == 1  # its undefined Jaccard
    assert "4, 5, 6" in sec and "base rate n+/(n+ + n−)" in sec and "AT&amp;T" in sec
    header, rows = _csv(folder / "report" / "stability_sweep.csv")
    assert header == ["concept", "n_pos", "n_neg", "tau", "repeats", "jaccard", "n_pairs", "n_experts_mean",
                      "n_experts_std", "n_empty", "base_rate", "n_distinct"]
    assert len(rows) == len(BEST) * 2 * 2 * len(TAUS)
    assert all(r[5] == "nan" for r in rows if r[0] == "AT&T")
    cat = {(int(r[1]), int(r[2]), float(r[3])): float(r[5]) for r in rows if r[0] == "cat"}
    assert cat[(10, 5, 0.8)] == pytest.approx(round(0.1 * 10 / 5 * 0.8, 4))


def test_alignment_shows_the_reports_rho_skipped_concepts_and_dropped_pairs(full):
    folder, page = full
    sec = _section(page, "Human alignment (MEN)")
    assert f"<td class=\"num\">{RHO:.3f}</td>" in sec and f"{P:.3g}" in sec
    assert "Jaccard of the expert sets" in sec and "embedding_cosine" in sec
    row = sec[sec.index("<td>embedding_cosine</td>"):]
    assert row[:row.index("</tr>")].count("—") == 2  # its undefined rho and p
    assert "Concepts left out (1)" in sec and "AT&amp;T" in sec and "not in any pair with another requested" in sec
    assert "Pairs dropped (1)" in sec and "plane" in sec and "model similarity undefined" in sec
    header, rows = _csv(folder / "report" / "men_scatter.csv")
    assert header == ["word1", "word2", "human", "experts_jaccard", "embedding_cosine"]
    assert [(a, b, float(h), float(j), float(c)) for a, b, h, j, c in rows] == PAIRS
    assert rho_text(RHO, P, 6) == "ρ = 0.41 (p = 0.0031, n = 6)"
    assert rho_text(None, float("nan"), 3) == "ρ = — (p = —, n = 3)"


def test_sweep_per_layer_totals_are_summed_over_concepts(full):
    folder, _ = full
    header, rows = _csv(folder / "report" / "sweep_per_layer.csv")
    assert header == ["label", "model", "requested_revision", "step", "random_init", "layer", "experts"]
    got = {(r[0], int(r[5])): int(r[6]) for r in rows}
    assert got[("pythia-70m@step143000", 0)] == 1 + 0
    assert got[("pythia-70m@step143000", 1)] == 2 + 4
    assert got[("pythia-70m@step143000", 2)] == 3 + 1
    assert got[("pythia-70m (random init)", 1)] == 1
    assert [got[("pythia-160m@step143000", layer)] for layer in range(4)] == [3, 2, 2, 7]
    assert len(rows) == 3 * 4 + 4


def test_sweep_per_step_and_per_size(full):
    folder, _ = full
    header, rows = _csv(folder / "report" / "sweep_per_step.csv")
    assert header == ["label", "model", "requested_revision", "step", "random_init", "concept", "experts",
                      "total_experts"]
    totals = {(r[1], r[3]): int(r[7]) for r in rows if r[4] == "False"}
    assert totals == {("pythia-70m", "0"): 1, ("pythia-70m", "1000"): 6, ("pythia-70m", "143000"): 11,
                      ("pythia-160m", "143000"): 14}
    assert {(r[5], int(r[6])) for r in rows if r[4] == "True"} == {("cat", 1), ("dog", 0)}
    steps = [int(r[3]) for r in rows if r[1] == "pythia-70m" and r[4] == "False"]
    assert steps == sorted(steps)
    header, rows = _csv(folder / "report" / "sweep_per_size.csv")
    assert header == ["label", "model", "requested_revision", "step", "random_init", "n_params", "experts"]
    assert {(r[0], int(r[5]), int(r[6])) for r in rows} >= {("pythia-160m@step143000", 160_000_000, 14),
                                                             ("pythia-70m@step143000", 70_000_000, 11)}


def test_sweep_table_and_identical_weights_warning(full):
    folder, page = full
    sec = _section(page, "Sweep")
    assert "Identical weights:" in sec and "pythia-70m@step1000 = pythia-70m@step143000" in sec
    assert sec.index("Identical weights") < sec.index("<table>")
    assert "0123456789ab" in sec and "0123456789abc" not in sec  # resolved revision: 12 characters
    assert "c" * 12 in sec and "c" * 13 not in sec
    assert "70M" in sec and "160M" in sec and "<td>yes</td>" in sec
    row = sec[sec.index("<td>pythia-70m (random init)</td>"):]
    assert "<td class=\"num\">—</td>" not in row[:row.index("</tr>")]  # no revision: shown as an em dash
    assert "<td>—</td>" in row[:row.index("</tr>")]
    _, rows = _csv(folder / "report" / "sweep_entries.csv")
    assert {r[6] for r in rows} == {s * 64 for s in "c0bed"}  # the full hashes


def test_causal_csv_table_none_as_dash_and_skipped_concept(full):
    folder, page = full
    header, rows = _csv(folder / "report" / "causal_effect.csv")
    assert header == ["concept", "n_units", "n_prompts", "mean_experts", "ci_low_experts", "ci_high_experts",
                      "mean_random", "ci_low_random", "ci_high_random", "mean_difference", "ci_low_difference",
                      "ci_high_difference"]
    assert [r[0] for r in rows] == ["cat", "dog"]  # the skipped concept is not plotted
    assert [float(v) for v in rows[0][3:]] == [1.25, 0.5, 2.0, 0.125, -0.25, 0.5, 1.125, 0.25, 2.0]
    assert rows[1][3] == "0.5" and all(v == "nan" for v in rows[1][4:6] + rows[1][7:])
    sec = _section(page, "Causal check")
    assert "[0.500, 2.000]" in sec and "1.125" in sec
    dog = sec[sec.index("<td>dog</td>"):]
    assert dog[:dog.index("</tr>")].count("—") >= 4
    assert "AT&amp;T" in sec and "no experts to fix" in sec
    assert "<details>" in sec and "The 2 prompts" in sec and "the &lt;odd&gt; one:" in sec and "95% CI" in sec


def test_causal_skipped_shows_the_reason_only(tmp_path):
    res = _base(causal=CausalReport(site="mlp_post", confidence=0.95, prompts=(), concepts=(),
                                    skipped="not a decoder model (bert)"))
    page = write_report(tmp_path, res).read_text(encoding="utf-8")
    assert "Not run: not a decoder model (bert)" in _section(page, "Causal check")
    assert not (tmp_path / "report" / "causal_effect.png").exists()


def test_sections_absent_without_their_results(tmp_path):
    page = write_report(tmp_path, _base()).read_text(encoding="utf-8")
    assert {p.stem for p in (tmp_path / "report").glob("*.png")} == BASE_PNGS
    assert {p.name for p in (tmp_path / "report").iterdir()} == {f"{s}.{x}" for s in BASE_PNGS for x in ("png", "csv")}
    for title in ("Warnings", "Stability", "Human alignment", "Sweep", "Causal"):
        assert f"<h2>{title}" not in page


def test_single_checkpoint_and_single_model_sweep_has_per_layer_only(tmp_path):
    res = _base(sweep=_sweep(ENTRIES[:1] + ENTRIES[3:4], ()))
    page = write_report(tmp_path, res).read_text(encoding="utf-8")
    pngs = {p.stem for p in (tmp_path / "report").glob("*.png")}
    assert pngs == BASE_PNGS | {"sweep_per_layer"}
    assert "Identical weights" not in page


def test_nan_statistics_in_memory_render_as_dash(tmp_path):
    nan = float("nan")
    al = _alignment().model_copy(update={"methods": (MethodAlignment(method="experts_jaccard", description="d",
                                                                     rho=nan, p_value=nan),)})
    cs = _causal()
    cat = cs.concepts[0].model_copy(update={"mean_random": nan, "ci_difference": (nan, 1.0)})
    cs = cs.model_copy(update={"concepts": (cat, *cs.concepts[1:])})
    page = write_report(tmp_path, _base(alignment=al, causal=cs)).read_text(encoding="utf-8")
    row = _section(page, "Human alignment")
    row = row[row.index("<td>experts_jaccard</td>"):]
    assert row[:row.index("</tr>")].count("—") == 2 and "nan" not in row
    assert "[—, 1.000]" in _section(page, "Causal check")
    _, rows = _csv(tmp_path / "report" / "causal_effect.csv")
    assert rows[0][6] == "nan" and rows[0][10] == "nan"


def test_many_concepts_get_distinct_line_styles_and_render(tmp_path):
    styles = line_styles(45)
    assert len(set(styles)) == 45
    assert {ls for _, ls, _ in styles[:24]} == {"-"} and styles[24][1] != "-"
    assert len({c for c, _, _ in styles[:24]}) == 24  # 24 concepts, 24 colours
    names = [f"concept {i}" for i in range(25)]
    st = StabilityReport(spec=StabilitySpec(taus=TAUS), n_pos=(5,), n_neg=(5,), concepts=tuple(
        ConceptStability(concept=n, folds=FoldStability(tau=0.9, k=3, jaccard=0.5, n_pairs=3, n_experts=(1, 1, 1)),
                         sweep=(), best={str(t): _point(5, 5, t, 0.01 * i + t / 2) for t in TAUS})
        for i, n in enumerate(names)))
    write_report(tmp_path, _base(stability=st))
    _, rows = _csv(tmp_path / "report" / "stability_curves.csv")
    assert len(rows) == 25 * len(TAUS)


@pytest.mark.parametrize("value, text", [(0, "0"), (999, "999"), (1000, "1k"), (1500, "1.5k"), (143000, "143k"),
                                         (1_000_000, "1M"), (70_000_000, "70M"), (1_000_000_000, "1B")])
def test_compact_number(value, text):
    assert compact_number(value) == text
