"""rankings.html, the page of a rank result, on hand-made ``RankResult`` objects (no model)."""

from __future__ import annotations

import csv
import re

import pytest

from neuroscribe.jobs import Provenance, RankResult
from neuroscribe.jobs.rank import AgreementRow, EffectRow, ProbeRow, RankingReport, SameProbeRow
from neuroscribe.service.rank.page import write_rank_page
from html_check import PageChecker, figure_errors, link_errors, parse_page, script_errors

UNITS = 30
KS = (2, 4, 8)
DATASET = "reviews <script>alert('x')</script>.tsv"
WARNING = "the linear probe did not converge within its iterations; its ranking is approximate"
LINEAR_ORDER = (7, 3, 29, 0, 12, 5, 1, 2, 4, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
                26, 27, 28)
PROBELESS_ORDER = tuple([3, 7, 12] + [u for u in range(UNITS) if u not in (3, 7, 12)])
RANDOM_ORDER = tuple(reversed(range(UNITS)))


def _scores(order):
    s = [0.0] * UNITS
    for pos, u in enumerate(order):
        s[u] = float(UNITS - pos) / 10
    return tuple(s)


def _probe(ranking, selection, k, acc, probe="logreg", half=0.05):
    return ProbeRow(ranking=ranking, selection=selection, probe=probe, k=k, accuracy=acc, ci_low=acc - half,
                    ci_high=acc + half, n_seeds=5)


def _probing():
    rows = []
    for name, base in (("linear", 0.8125), ("probeless", 0.775), ("random", 0.55)):
        for k in KS:
            rows.append(_probe(name, "top", k, base + k / 100))
        for k in KS:
            rows.append(_probe(name, "bottom", k, 0.5 + k / 200))
        for k in KS:
            rows.append(_probe(name, "random", k, 0.6 + k / 100))
        if name == "linear":
            for k in KS:
                rows.append(_probe(name, "top_same_probe", k, 0.9 + k / 200, probe="same"))
    rows.append(ProbeRow(ranking="", selection="majority", probe="majority", k=0, accuracy=0.5, ci_low=0.5,
                         ci_high=0.5, n_seeds=5))
    return tuple(rows)


def _same():
    return tuple(SameProbeRow(ranking="linear", k=k, independent=0.8125 + k / 100, same_probe=0.9 + k / 200,
                              gap=(0.9 + k / 200) - (0.8125 + k / 100)) for k in KS)


def _effects():
    rows = []
    for mode in ("zero", "translate"):
        for k in (2, 8):
            for i, name in enumerate(("linear", "probeless")):
                ranked = -0.25 * k - i
                rnd = -0.03125 * k
                rows.append(EffectRow(ranking=name, mode=mode, k=k, measure="logodds", n_examples=40,
                                      mean_ranked=ranked, ci_ranked=(ranked - 0.1, ranked + 0.1), mean_random=rnd,
                                      ci_random=(rnd - 0.05, rnd + 0.05), mean_difference=ranked - rnd,
                                      ci_difference=(ranked - rnd - 0.2, ranked - rnd + 0.2)))
    # one undefined interval: drawn without error bars, shown without brackets
    rows[-1] = rows[-1].model_copy(update={"ci_random": (None, None)})
    return tuple(rows)


def _agreement():
    orders = {"linear": LINEAR_ORDER, "probeless": PROBELESS_ORDER, "random": RANDOM_ORDER}
    names = list(orders)
    rows = []
    for k in KS:
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                a, b = set(orders[names[i]][:k]), set(orders[names[j]][:k])
                inter = len(a & b)
                rows.append(AgreementRow(a=names[i], b=names[j], k=k, overlap=inter / k,
                                         jaccard=inter / len(a | b), chance=k / UNITS))
    return tuple(rows)


def _result(*, interventions=True, warnings=(WARNING,)) -> RankResult:
    return RankResult(
        dataset=DATASET, level="sentence", n_examples=60, classes={"0": 30, "1": 30}, layer=3, units=UNITS, ks=KS,
        rankings=(
            RankingReport(method="linear", order=LINEAR_ORDER, scores=_scores(LINEAR_ORDER),
                          params={"l1_ratio": 0.5, "C": 1.0, "converged": False}),
            RankingReport(method="probeless", order=PROBELESS_ORDER, scores=_scores(PROBELESS_ORDER),
                          params={"pairs": 1}),
            RankingReport(method="random", order=RANDOM_ORDER, scores=_scores(RANDOM_ORDER),
                          params={"seed": 0, "note": "<b>bold</b>", "path": list(range(12))}),
        ),
        probing=_probing(), same_probe=_same(),
        interventions=_effects() if interventions else (),
        intervention_measure="logodds" if interventions else None,
        agreement=_agreement(),
        provenance=Provenance(neuroscribe_version="0.0.test", model="tiny/gpt2", weight_sha256="ab" * 32,
                              site="mlp", pooling="mean", data_sha256="cd" * 32,
                              created_at="2024-01-01T00:00:00+00:00"),
        warnings=warnings,
    )


_Checker = PageChecker
_parse = parse_page


def _csv(path):
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _section(page: str, title: str) -> str:
    m = re.search(rf"<section(?: id=\"[a-z-]+\")?><h2>{re.escape(title)}</h2>.*?</section>", page, flags=re.S)
    assert m, title
    return m.group(0)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("rank")
    (out / "job.json").write_text("{}", encoding="utf-8")  # linked from the provenance
    path = write_rank_page(out, _result())
    return out, path, path.read_text(encoding="utf-8")


def test_page_exists_parses_balanced_and_is_self_contained(written):
    out, path, page = written
    assert path == out / "rankings.html" and path.is_file()
    p = _parse(page)
    assert p.errors == [] and p.stack == [], (p.errors, p.stack)
    tags = {t for t, _ in p.tags}
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    imgs = [a["src"] for t, a in p.tags if t == "img"]
    assert len(imgs) == 3 and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert "http://" not in page and "https://" not in page
    for name in ("probing_accuracy", "interventions", "agreement_k8"):
        assert (out / "report" / f"{name}.png").stat().st_size > 1000
        assert (out / "report" / f"{name}.csv").is_file()
    assert "tiny/gpt2" in page


def test_user_strings_are_escaped(written):
    _, _, page = written
    assert "<script>" not in page.lower()
    assert "reviews &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;.tsv" in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    text = "".join(_parse(page).text)
    assert DATASET in text  # the title, unescaped by the parser


def test_page_order(written):
    _, _, page = written
    marks = ["<h1>", "Results at a glance", "Warnings (1)", "<h2>Summary</h2>", "<h2>Encoded information</h2>",
             "<h2>Used information</h2>", "<h2>Agreement</h2>", "<h2>Rankings</h2>", "<h2>Provenance</h2>"]
    pos = [page.index(m) for m in marks]
    assert pos == sorted(pos)


def test_warnings_and_summary(written):
    _, _, page = written
    assert 'class="note"' in page and WARNING in page
    summary = "".join(_parse(_section(page, "Summary")).text)
    for needle in ("0: 30, 1: 30", "layer3", "units30", "k2, 4, 8", "linear, probeless, random",
                   "logreg (5 train/test splits)", "zero, translate; measure logodds"):
        assert needle in summary, needle


def test_probing_csv_and_table(written):
    out, _, page = written
    rows = _csv(out / "report" / "probing_accuracy.csv")
    top = next(r for r in rows if r["panel"] == "encoded" and r["ranking"] == "linear" and r["selection"] == "top"
               and r["k"] == "4")
    assert float(top["accuracy"]) == 0.8125 + 4 / 100 and float(top["ci_low"]) == 0.8125 + 4 / 100 - 0.05
    bottom = [r for r in rows if r["selection"] == "bottom" and r["ranking"] == "probeless"]
    assert [float(r["accuracy"]) for r in bottom] == [0.5 + k / 200 for k in KS]
    rnd = [r for r in rows if r["selection"] == "random"]
    assert len(rnd) == len(KS) and {r["ranking"] for r in rnd} == {""}  # drawn once
    maj = [r for r in rows if r["selection"] == "majority"]
    assert len(maj) == 1 and float(maj[0]["accuracy"]) == 0.5
    own = [r for r in rows if r["panel"] == "same_probe" and r["selection"] == "top_same_probe"]
    assert [float(r["gap"]) for r in own] == [s.gap for s in _same()]
    sec = _section(page, "Encoded information")
    text = "".join(_parse(sec).text)
    assert "0.853 [0.802, 0.903]" in text  # linear top-4
    assert "0.920" in text and "+0.0675" in text  # own probe at k = 4, and its gap
    assert "The confound" in text and "own probe" in text


def test_interventions_csv_and_table(written):
    out, _, page = written
    rows = _csv(out / "report" / "interventions.csv")
    assert len(rows) == len(_effects())
    r = next(r for r in rows if r["mode"] == "translate" and r["k"] == "8" and r["ranking"] == "probeless")
    assert float(r["mean_difference"]) == (-0.25 * 8 - 1) - (-0.03125 * 8)
    assert r["ci_random_low"] == "" and r["measure"] == "logodds"
    sec = _section(page, "Used information")
    text = "".join(_parse(sec).text)
    assert "logodds" in text
    assert "-0.5 [-0.6, -0.4]" in text  # zero, k = 2, linear: mean ranked with its interval
    assert "-2.75 [-2.95, -2.55]" in text  # translate, k = 8, probeless: the difference


def test_agreement_csv_and_table(written):
    out, _, page = written
    assert not (out / "report" / "agreement_k2.csv").exists()  # only the largest k
    rows = _csv(out / "report" / "agreement_k8.csv")
    pair = next(r for r in rows if r["a"] == "linear" and r["b"] == "probeless")
    expect = next(a for a in _agreement() if a.k == 8 and a.a == "linear" and a.b == "probeless")
    assert float(pair["overlap"]) == expect.overlap and float(pair["chance"]) == 8 / UNITS
    assert len(rows) == 3
    text = "".join(_parse(_section(page, "Agreement")).text)
    assert f"{expect.overlap:.3f}" in text and "0.267" in text  # chance 8 / 30


def test_rankings_list_top_units_in_order(written):
    _, _, page = written
    sec = _section(page, "Rankings")
    m = re.search(r'<h3 id="ranking-linear">linear</h3>.*?<tbody>(.*?)</tbody>', sec, flags=re.S)
    cells = re.findall(r'<tr><td[^>]*>(\d+)</td><td[^>]*><a class="atlas" href="/neurons/tiny--gpt2/3/(\d+)">(\d+)</a></td>',
                       m.group(1))
    assert [int(u) for _, u, _ in cells] == list(LINEAR_ORDER[:20])
    assert all(u == v for _, u, v in cells)  # each unit links to its own atlas page (layer 3)
    assert [int(r) for r, _, _ in cells] == list(range(1, 21))
    assert str(LINEAR_ORDER[20]) not in [u for _, u, _ in cells]
    assert "neuroscribe ui" in sec
    text = "".join(_parse(sec).text)
    assert "converged" in text and "l1_ratio" in text
    assert "… (12 in all)" in text  # long lists shortened
    assert sec.index("ranking-linear") < sec.index("ranking-probeless") < sec.index("ranking-random")


def test_glance_box_first_with_random_k_and_chance(written):
    out, _, page = written
    first = page.index("<section")
    assert page[first:].startswith('<section id="glance" class="glance">')
    glance = page[first:page.index("</section>", first)]
    rows = glance.split("<tr>")[2:]
    linear = next(r for r in rows if "linear: logreg probe on its top-k units" in r)
    # top-k 81.2 / 85.2 / 89.2 [±5] against random-k 62 / 64 / 68 [±5]: apart at every k
    assert "k=2: 83.2%" in linear and "random k units: k=2: 62.0%" in linear and "majority class 50.0%" in linear
    assert "k=2: above chance; k=4: above chance; k=8: above chance" in linear
    rnd = next(r for r in rows if "random: logreg probe" in r)
    assert "k=2: not told apart from chance" in rnd and 'class="same"' in rnd  # 57% [52-62] vs 62% [57-67]
    used = next(r for r in rows if "intervening on each ranking" in r)
    # no random draws in this result: the interval of ranked − random (± 0.2 around ranked − random)
    assert "ranked − random" in used and "linear 4 of 4; probeless 4 of 4" in used
    agree = next(r for r in rows if "agreement of the top-8 sets" in r)
    assert "k / units = 0.267" in agree
    assert '<a href="#warnings">1 warning</a>' in glance


def test_glance_says_below_chance(tmp_path):
    res = _result(interventions=False)
    probing = tuple(r.model_copy(update={"accuracy": 0.3, "ci_low": 0.28, "ci_high": 0.32})
                    if r.ranking == "random" and r.selection == "top" else r for r in res.probing)
    page = write_rank_page(tmp_path, res.model_copy(update={"probing": probing})).read_text(encoding="utf-8")
    glance = page[page.index('<section id="glance"'):]
    row = next(r for r in glance.split("<tr>") if "random: logreg probe" in r)
    assert '<td class="below">k=2: below chance; k=4: below chance; k=8: below chance</td>' in row
    assert "intervening" not in glance[:glance.index("</section>")]  # no interventions: no row


def test_links_figures_and_script(written):
    out, _, page = written
    assert link_errors(page, out) == [] and figure_errors(page) == [] and script_errors(page) == []


def test_provenance(written):
    _, _, page = written
    sec = _section(page, "Provenance")
    assert '<dl class="prov">' in sec and "abab" in sec
    assert 'href="job.json"' in sec and 'href="rankings.json"' not in sec


def test_no_interventions_no_warnings(tmp_path):
    path = write_rank_page(tmp_path, _result(interventions=False, warnings=()))
    page = path.read_text(encoding="utf-8")
    p = _parse(page)
    assert p.errors == [] and p.stack == []
    assert "Used information" not in page and 'id="interventions"' not in page
    assert not (tmp_path / "report" / "interventions.png").exists()
    assert not (tmp_path / "report" / "interventions.csv").exists()
    assert "Warnings" not in page and WARNING not in page
    assert "not run" in "".join(_parse(_section(page, "Summary")).text)
    assert len([a for t, a in p.tags if t == "img"]) == 2


def test_single_ranking_without_same_probe(tmp_path):
    res = _result(interventions=False)
    res = res.model_copy(update={"rankings": res.rankings[1:2], "same_probe": (), "agreement": (),
                                 "probing": tuple(r for r in res.probing if r.ranking in ("probeless", ""))})
    page = write_rank_page(tmp_path, res).read_text(encoding="utf-8")
    assert _parse(page).errors == []
    assert "fewer than two rankings" in page and not list((tmp_path / "report").glob("agreement_k*"))
    assert "The confound" not in page
    rows = _csv(tmp_path / "report" / "probing_accuracy.csv")
    assert {r["panel"] for r in rows} == {"encoded"}


# --------------------------------------------------------------------------- rebuilding from a result folder


def _write_job_folder(folder, result):
    """The result folder as the rank job writes it (``write_rank_files``), from the fixtures."""
    from neuroscribe.jobs import RankJob
    from neuroscribe.jobs.rank import AttributeDataSpec

    from neuroscribe.service.rank.files import write_rank_files
    texts = tuple(f"review number {i}" for i in range(result.n_examples))
    labels = tuple(str(i % 2) for i in range(result.n_examples))
    job = RankJob(dataset=AttributeDataSpec(name=DATASET, texts=texts, labels=labels), ks=KS)
    folder.mkdir()
    write_rank_files(folder, job, result, None, None)
    return folder


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("interventions", [True, False])
def test_rebuild_gives_the_page_the_job_wrote(tmp_path, interventions):
    from neuroscribe.service.rank.page import rebuild_rank_page

    folder = _write_job_folder(tmp_path / "run", _result(interventions=interventions))
    before = _files(folder)
    assert "rankings.html" in before and "report/probing_accuracy.csv" in before
    assert ("report/interventions.csv" in before) == interventions
    (folder / "report" / "stale.png").write_bytes(b"old")  # not the job's: removed
    (folder / "rankings.html").write_text("old page", encoding="utf-8")
    path = rebuild_rank_page(folder)
    assert path == folder / "rankings.html"
    after = _files(folder)
    assert after["rankings.html"] == before["rankings.html"]  # the same HTML, byte for byte
    assert after == before  # and the same figures, CSVs and other files; nothing stale, nothing left over


def test_rebuild_needs_a_rank_result_folder(tmp_path):
    from neuroscribe.errors import InvalidInput
    from neuroscribe.service.rank.page import rebuild_rank_page

    with pytest.raises(InvalidInput, match="has no rankings.json"):
        rebuild_rank_page(tmp_path)
    (tmp_path / "rankings.json").write_text('{"kind": "rank"}', encoding="utf-8")
    with pytest.raises(InvalidInput, match="not a valid rank result"):
        rebuild_rank_page(tmp_path)
    assert not (tmp_path / "report").exists() and not (tmp_path / "rankings.html").exists()


def test_a_failed_rebuild_keeps_the_old_figures(tmp_path, monkeypatch):
    import neuroscribe.service.rank.page as page
    from neuroscribe.service.rank.page import rebuild_rank_page

    folder = _write_job_folder(tmp_path / "run", _result(interventions=False))
    before = _files(folder)

    def fail(out_dir, result):
        (out_dir / "report" / "half.csv").parent.mkdir(exist_ok=True)
        (out_dir / "report" / "half.csv").write_text("x", encoding="utf-8")
        raise RuntimeError("disk full")

    monkeypatch.setattr(page, "write_rank_page", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        rebuild_rank_page(folder)
    assert _files(folder) == before
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


def test_bottom_k_ties_stability_p_floor_and_label_names_are_shown(tmp_path):
    from neuroscribe.jobs.rank import BottomRow, StabilityRow
    from neuroscribe.service.rank.files import format_rank_summary

    res = _result().model_copy(update={
        "label_names": {"1": "positive"},
        "bottom": (BottomRow(ranking="linear", k=2, by="score", units=(28, 9), boundary=0.0, tied=17,
                             tied_in_bottom=2),),
        "stability": (StabilityRow(ranking="linear", k=8, kind="seed", overlap=0.75, chance=8 / UNITS),
                      StabilityRow(ranking="linear", k=8, kind="halves", overlap=0.5, chance=8 / UNITS)),
        "interventions": tuple(e.model_copy(update={"p_random": 1 / 21, "p_floor": 1 / 21}) for e in _effects())})
    page = write_rank_page(tmp_path, res).read_text(encoding="utf-8")
    encoded = _section(page, "Encoded information")
    assert "least relevant" in encoded and "linear bottom-2: 17 units at 0, 2 drawn" in encoded
    assert "0.75" in encoded and "halves" in encoded
    used = _section(page, "Used information")
    assert "0.0476 (floor 0.0476)" in used and "not a test" in used
    assert "positive (1): 30" in _section(page, "Summary")
    summary = format_rank_summary(res)
    assert "bottom-2 of linear: 17 units tied at score 0, 2 drawn at random" in summary
    assert "linear 0.75 across seeds, 0.50 across halves" in summary
    assert "p 0.047619 (floor 0.047619)" in summary and "positive (1): 30" in summary
