"""descriptions.html, the page of a describe result, on hand-made ``DescribeResult`` objects (no model)."""

from __future__ import annotations

import csv
import re

import pytest

from neuroscribe.jobs.describe import (AssignedDescriptor, ConsistencyReport, DescriptorReport, EvaluationReport,
                                         HubSentence, UnitReport, ValidityReport, VocabularyReport)
from neuroscribe.jobs import DescribeResult, Provenance
from neuroscribe.service.describe.page import write_describe_page
from html_check import PageChecker, figure_errors, link_errors, parse_page, script_errors

TEXTS = [
    "The battery lasts all day.",
    "Terrible sound, <script>alert('x')</script> avoid.",
    "Great value for the price.",
    "The charger broke after a week.",
    "I love this headset.",
    "Customer service never answered.",
    "Works fine.",
    "Battery died quickly.",
]
LABELS = ["1", "0", "1", "0", "1", "0", "1", "0"]
VOCAB = {
    "params": {"min_cluster_size": 5, "min_samples": None, "reduce_to": None, "seed": 0, "kept": ["positive"]},
    "n_descriptors": 9, "n_names": 5,
    "clusters": [
        {"name": "battery", "size": 3, "count": 7,
         "members": [{"descriptor": "battery", "count": 4}, {"descriptor": "battery life", "count": 2},
                     {"descriptor": "power", "count": 1}]},
        {"name": "sound <quality>", "size": 2, "count": 3,
         "members": [{"descriptor": "sound <quality>", "count": 2}, {"descriptor": "audio", "count": 1}]},
    ],
    "noise": [{"descriptor": "price", "count": 2}, {"descriptor": "positive", "count": 4},
              {"descriptor": "headset", "count": 1}],
}
HIST = (1, 0, 0, 0, 0, 1, 0, 0, 0, 2)


def _desc(name, f, q=None):
    return AssignedDescriptor(descriptor=name, count=3, f=f, base_rate=25.0, enrichment=f / 25.0, p=0.0123, q=q)


def _result(*, evaluation=True, warnings=("only 4 exemplar(s) per unit: f moves in steps of 25%",),
            n_exemplars=4) -> DescribeResult:
    rows = (1, 0, 7, 3, 2, 4)[:n_exemplars]
    acts = (9.5, 8.25, 7.0, 6.5, 6.0, 5.0)[:n_exemplars]
    units = (
        # deliberately out of order: the page sorts described units by layer, then unit
        UnitReport(layer=2, unit=0, descriptors=(), exemplars=rows, activations=acts, consistency=None,
                   reference=() if evaluation else None),
        UnitReport(layer=2, unit=1, descriptors=(_desc("sound <quality>", 75.0),), exemplars=rows[::-1],
                   activations=acts, consistency=1.0, reference=("negative",) if evaluation else None),
        UnitReport(layer=1, unit=0, descriptors=(_desc("battery", 100.0), _desc("negative", 50.0)), exemplars=rows,
                   activations=acts, n_failed=1, consistency=0.5, reference=("negative",) if evaluation else None),
        UnitReport(layer=1, unit=1, descriptors=(), exemplars=rows, activations=acts, consistency=0.0,
                   reference=() if evaluation else None),
        UnitReport(layer=1, unit=2, descriptors=(), exemplars=rows, activations=acts, consistency=0.0,
                   reference=() if evaluation else None),
        UnitReport(layer=2, unit=2, descriptors=(_desc("positive", 50.0),), exemplars=rows, activations=acts,
                   consistency=1.0, reference=("positive",) if evaluation else None),
    )
    ev = EvaluationReport(label_names={"0": "negative", "1": "positive"}, ks=(1, 2, 3), precision=(0.5, 0.375, None),
                          recall=(0.25, 0.625, 0.875), n_units=3, n_recall_units=3, n_units_total=6)
    return DescribeResult(
        dataset="reviews <b>.tsv", n_sentences=len(TEXTS), layers=(1, 2), units_per_layer=3, top_k_percent=50.0,
        n_exemplars=n_exemplars, threshold=50.0,
        descriptors=DescriptorReport(n_sentences=8, n_distinct_sentences=8, n_failed=2,
                                     failures={"unparsable": 1, "empty": 1}, n_distinct_descriptors=9,
                                     mean_per_sentence=2.5),
        vocabulary=VocabularyReport(n_descriptors=9, n_names=5, n_clusters=2, n_noise=3, kept=("positive",),
                                    params=VOCAB["params"]),
        n_units=6, n_described=3, units=units,
        consistency=ConsistencyReport(seed=0, n_calibration=4, n_validation=4, stratified_by="top descriptor",
                                      mean=0.625, median=0.75, n_units=6, n_defined=4, n_both_empty=1,
                                      n_one_side_empty=1, histogram=HIST,
                                      bin_edges=tuple(i / 10 for i in range(11))),
        evaluation=ev if evaluation else None,
        provenance=Provenance(neuroscribe_version="0.0.test", model="tiny/bert", weight_sha256="ab" * 32, site="mlp",
                              pooling="cls", data_sha256="cd" * 32, created_at="2024-01-01T00:00:00+00:00"),
        warnings=warnings,
    )


_Checker = PageChecker
_parse = parse_page


def _csv(path):
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("describe")
    (out / "descriptions.json").write_text("{}", encoding="utf-8")  # linked from the provenance
    path = write_describe_page(out, _result(), TEXTS, LABELS, VOCAB, max_exemplars=3)
    return out, path, path.read_text(encoding="utf-8")


def _rows(page: str) -> list[str]:
    """The rows of the units table."""
    table = re.search(r'<table id="unit-table".*?<tbody>(.*?)</tbody>', page, flags=re.S)
    return re.findall(r"<tr>.*?</tr>", table.group(1), flags=re.S) if table else []


def _row(page: str, unit: str) -> str:
    return next(r for r in _rows(page) if f">{unit}</a></td>" in r)


def test_page_exists_parses_balanced_and_is_self_contained(written):
    out, path, page = written
    assert path == out / "descriptions.html" and path.is_file()
    p = _parse(page)
    assert p.errors == [] and p.stack == [], (p.errors, p.stack)
    tags = [t for t, _ in p.tags]
    assert tags.count("script") == 1 and "link" not in tags and "iframe" not in tags  # the table's sorting only
    assert script_errors(page) == [] and link_errors(page, out) == [] and figure_errors(page) == []
    imgs = [a["src"] for t, a in p.tags if t == "img"]
    assert len(imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert "http://" not in page and "https://" not in page
    assert "tiny/bert" in page and "reviews &lt;b&gt;.tsv" in page  # title: model + dataset, escaped


def test_user_strings_are_escaped(written):
    _, _, page = written
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in page  # element content: &, <, > escaped
    assert "sound &lt;quality&gt;" in page and "<quality>" not in page
    assert "<b>.tsv" not in page


def test_warnings_and_summary(written):
    _, _, page = written
    assert 'class="note"' in page and "only 4 exemplar(s) per unit: f moves in steps of 25%" in page
    text = "".join(_parse(page).text)
    assert "Warnings (1)" in text
    for needle in ("unparsable: 1", "empty: 1", "5 names: 2 clusters, 3 unclustered", "exemplars per unit k",
                   "threshold t", "FDR", "3 (50.0%)"):
        assert needle in text, needle


def test_glance_box_first_every_number_beside_its_baseline(written):
    _, _, page = written
    first = page.index("<section")
    assert page[first:].startswith('<section id="glance" class="glance">')
    glance = page[first:page.index("</section>", first)]
    rows = glance.split("<tr>")[2:]
    assert all(r.count("<td") == 4 for r in rows)
    described = next(r for r in rows if "units described" in r)
    assert "3 of 6 units (50.0%)" in described and "not computed" in described  # no chance sets in this result
    p1 = next(r for r in rows if "precision@1" in r)
    assert "50.0%" in p1 and "random exemplar sets" in p1
    j = next(r for r in rows if "split-half Jaccard" in r)
    assert "mean 0.625" in j and "the paper&#x27;s mean 0.95 (a reference, not chance)" in j
    assert '<td class="below">below the paper&#x27;s (no interval)' in j
    assert '<a href="#warnings">1 warning</a>' in glance
    assert page.index("Results at a glance") < page.index("Warnings (1)") < page.index("<h2>Summary")


def test_glance_verified_and_chance_rows(tmp_path):
    from neuroscribe.jobs.describe import VerificationReport

    res = _result()
    ev = res.evaluation.model_copy(update={
        "baseline_sets": 100, "baseline_n_units": 80, "baseline_precision": (0.6, 0.5, 0.4),
        "precision_ci": ((0.4, 0.6), (0.3, 0.45), None), "baseline_precision_ci": ((0.55, 0.65),) * 3,
        "precision_minus_chance_ci": ((-0.2, -0.02), (-0.2, 0.1), None)})
    vr = VerificationReport(fdr=0.05, n_heldout=4, n_pairs=5, n_testable=5, n_verified=3, n_units_tested=3,
                            n_units_verified=2, n_verified_null=0)
    page = write_describe_page(tmp_path, res.model_copy(update={"evaluation": ev, "verification": vr}), TEXTS,
                               LABELS, VOCAB).read_text(encoding="utf-8")
    glance = page[page.index('<section id="glance"'):]
    glance = glance[:glance.index("</section>")]
    rows = glance.split("<tr>")[2:]
    assert "3 of 5 descriptions" in rows[0] and "responses permuted across sentences: 0" in rows[0]
    assert "above the permuted null" in rows[0]
    described = next(r for r in rows if "units described" in r)
    assert "80 of 100 described (80.0%)" in described and '<td class="below">below chance (no interval)' in described
    p1 = next(r for r in rows if "precision@1" in r)
    assert '<td class="below">below chance (difference -20.0 to -2.0 points)' in p1 and "[40–60]" in p1
    p2 = next(r for r in rows if "precision@2" in r)
    assert "not told apart from chance" in p2 and "paper P@2 75%" in p2
    # the verified column of the units table
    assert "<th>verified</th>" in page


def test_units_table_lists_described_units_only_in_order(written):
    _, _, page = written
    assert "<details" not in page
    rows = _rows(page)
    units = [re.search(r'">(\d+:\d+)</a>', r).group(1) for r in rows]
    assert units == ["1:0", "2:1", "2:2"]  # described only, by layer then unit
    assert "Units: 3 of 6 described" in page
    assert "3 units are not described (no descriptor at f ≥ t = 50%); they are counted here, not listed." in page
    assert "1:1<" not in page and "2:0<" not in page


def test_units_link_to_their_atlas_pages(written):
    from neuroscribe.atlas.keys import model_key

    _, _, page = written
    key = model_key("tiny/bert", None, "ab" * 32)
    links = [a["href"] for t, a in _parse(page).tags if t == "a" and a.get("class") == "atlas"]
    assert links == [f"/neurons/{key}/1/0", f"/neurons/{key}/2/1", f"/neurons/{key}/2/2"]
    assert "neuroscribe ui" in page  # said once: they open in the atlas


def test_table_sorts_and_filters_without_a_library(written):
    _, _, page = written
    p = _parse(page)
    assert any(t == "input" and a.get("id") == "unit-filter" for t, a in p.tags)
    script = p.scripts[0]
    assert "unit-table" in script and "unit-filter" in script and "sort" in script
    heads = re.search(r'<table id="unit-table".*?<thead>(.*?)</thead>', page, flags=re.S).group(1)
    assert [h for h in re.findall(r"<th>(.*?)</th>", heads)] == ["unit", "descriptors (f)", "enrichment", "J",
                                                                 "reference", "best exemplars"]
    assert 'data-s="1000000"' in _row(page, "1:0")  # the unit column sorts by layer, then unit


def test_described_unit_shows_descriptors_exemplars_and_truncation(written):
    _, _, page = written
    row = _row(page, "1:0")
    text = "".join(_parse(row).text)
    assert "battery 100%, negative 50%" in text and "0.5" in text and "negative" in text
    # first 3 exemplars of rows (1, 0, 7, 3), with activation and label; the 4th is left to the atlas
    assert "9.5 [0] Terrible sound, <script>alert('x')</script> avoid." in text
    assert "8.25 [1] The battery lasts all day." in text
    assert "Battery died quickly." in text
    assert "The charger broke after a week." not in text
    assert "<th>q</th>" not in page  # no FDR asked: no q column


def test_consistency_csv_holds_the_histogram(written):
    out, _, page = written
    rows = _csv(out / "report" / "consistency_hist.csv")
    assert rows[0] == ["bin_lo", "bin_hi", "n_units"]
    assert [int(r[2]) for r in rows[1:]] == list(HIST)
    assert [float(r[0]) for r in rows[1:]] == pytest.approx([i / 10 for i in range(10)])
    assert float(rows[-1][1]) == 1.0
    assert (out / "report" / "consistency_hist.png").stat().st_size > 1000
    fig = re.search(r'<figure id="consistency_hist">.*?</figure>', page, flags=re.S).group(0)
    assert "the 1 units with no descriptor on either half are excluded" in fig and "0.95" in fig
    text = "".join(_parse(page).text)
    assert "mean Jaccard0.6250.95" in text


def test_evaluation_section_and_csv(written):
    out, _, page = written
    rows = _csv(out / "report" / "precision_recall.csv")
    assert rows[0] == ["k", "precision", "recall", "random_sets_precision", "random_sets_recall", "paper_precision",
                       "paper_recall"]
    assert rows[1] == ["1", "0.5", "0.25", "", "", "", ""]  # this result has no chance baseline
    assert rows[2] == ["2", "0.375", "0.625", "", "", "0.75", "0.5"]
    assert rows[3] == ["3", "", "0.875", "", "", "", ""]
    text = "".join(_parse(page).text)
    assert "Evaluation against the reference labels" in text
    assert "37.5%" in text and "62.5%" in text and "75%" in text and "50%" in text
    assert "lower bound" in text and "counts as a miss" in text
    assert "0negative" in text.replace(" ", "") and "1positive" in text.replace(" ", "")


def test_vocabulary_section(written):
    _, _, page = written
    text = "".join(_parse(page).text)
    assert "Descriptor vocabulary" in text
    assert "battery life (2)" in text and "3 noise descriptors" in text
    assert text.index("battery life (2)") < text.index("audio (1)")  # clusters by count


def test_provenance_links_only_existing_files(written):
    _, _, page = written
    assert '<dl class="prov">' in page and "abab" in page
    assert 'href="descriptions.json"' in page and 'href="sentences.jsonl"' not in page


def test_no_evaluation_no_warnings_no_labels(tmp_path):
    res = _result(evaluation=False, warnings=())
    path = write_describe_page(tmp_path, res, TEXTS, None, VOCAB)
    page = path.read_text(encoding="utf-8")
    p = _parse(page)
    assert p.errors == [] and p.stack == []
    assert "Evaluation against" not in page and "precision_recall" not in page
    assert not (tmp_path / "report" / "precision_recall.csv").exists()
    assert (tmp_path / "report" / "consistency_hist.csv").exists()
    assert "Warnings" not in page and 'class="note"' not in page
    assert "<th>reference</th>" not in page
    assert "<i>[0]</i>" not in page and "<i>[1]</i>" not in page  # no labels, none shown
    assert "precision@" not in page


def test_no_consistency_and_fdr_q_column(tmp_path):
    res = _result().model_copy(update={"consistency": None, "fdr": 0.05})
    units = list(res.units)
    units[2] = units[2].model_copy(update={"descriptors": (_desc("battery", 100.0, q=0.031),)})
    res = res.model_copy(update={"units": tuple(units)})
    page = write_describe_page(tmp_path, res, TEXTS, LABELS, VOCAB).read_text(encoding="utf-8")
    assert _parse(page).errors == []
    assert "Not computed" in page and not (tmp_path / "report" / "consistency_hist.csv").exists()
    assert "<th>q</th>" in page and "<th>J</th>" not in page
    assert '<td class="num">0.031</td>' in _row(page, "1:0")


def test_long_sentences_are_cut(tmp_path):
    texts = list(TEXTS)
    texts[1] = "word " * 200
    page = write_describe_page(tmp_path, _result(), texts, LABELS, VOCAB, max_sentence_chars=50).read_text("utf-8")
    assert ("word " * 9 + "word…") in page and "word " * 11 not in page  # 49 characters and the ellipsis


def test_default_cut_depends_on_the_number_of_units_shown(tmp_path):
    texts = list(TEXTS)
    texts[1] = "word " * 200  # 999 characters once its spaces are normalised
    page = write_describe_page(tmp_path, _result(), texts, LABELS, VOCAB).read_text("utf-8")
    assert ("word " * 47 + "word…") in page and "word " * 49 not in page  # few units: 240 characters


# --------------------------------------------------------------------------- rebuilding from a result folder


def _write_job_folder(folder, result, labels):
    """The result folder as the describe job writes it (``write_describe_files``), from the fixtures."""
    from types import SimpleNamespace

    from neuroscribe.jobs import DescribeJob
    from neuroscribe.jobs.describe import DatasetSpec
    from neuroscribe.workers.describe.vocabulary import Cluster, Vocabulary

    from neuroscribe.service.describe.files import write_describe_files
    clusters = [Cluster(c["name"], tuple((m["descriptor"], m["count"]) for m in c["members"]), c["size"], c["count"])
                for c in VOCAB["clusters"]]
    # more members than the page is given (10): vocabulary.json holds them all
    wide = tuple((f"colour {i}", 30 - i) for i in range(14))
    clusters.append(Cluster("colour 0", wide, len(wide), sum(n for _, n in wide)))
    noise = [(d["descriptor"], d["count"]) for d in VOCAB["noise"]]
    mapping = {d: c.name for c in clusters for d, _ in c.members} | {d: d for d, _ in noise}
    vocab = SimpleNamespace(vocabulary=Vocabulary(mapping, clusters, noise, dict(VOCAB["params"])),
                            sets=[["battery"] if i % 2 else [] for i in range(len(TEXTS))])
    descriptors = SimpleNamespace(descriptors=[["battery life"] if i % 2 else None for i in range(len(TEXTS))])
    job = DescribeJob(dataset=DatasetSpec(name="reviews <b>.tsv", texts=TEXTS, labels=labels,
                                          label_names={"0": "negative", "1": "positive"} if labels else {}))
    folder.mkdir()
    write_describe_files(folder, job, descriptors, vocab, result, None, None, lambda _msg: None)
    return folder


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("labels, evaluation", [(LABELS, True), (None, False)])
def test_rebuild_gives_the_page_the_job_wrote(tmp_path, labels, evaluation):
    from neuroscribe.service.describe.page import rebuild_describe_page

    folder = _write_job_folder(tmp_path / "run", _result(evaluation=evaluation), labels)
    before = _files(folder)
    assert "descriptions.html" in before and "report/consistency_hist.csv" in before
    (folder / "report" / "stale.csv").write_text("old\n", encoding="utf-8")  # not the job's: removed
    (folder / "descriptions.html").write_text("old page", encoding="utf-8")
    path = rebuild_describe_page(folder)
    assert path == folder / "descriptions.html"
    after = _files(folder)
    assert after["descriptions.html"] == before["descriptions.html"]  # the same HTML, byte for byte
    assert after == before  # and the same figures, CSVs and other files; nothing stale, nothing left over
    assert ("<i>[0]</i>" in path.read_text(encoding="utf-8")) == (labels is not None)


def test_rebuild_needs_a_describe_result_folder(tmp_path):
    from neuroscribe.errors import InvalidInput
    from neuroscribe.service.describe.page import rebuild_describe_page

    with pytest.raises(InvalidInput, match="has no descriptions.json"):
        rebuild_describe_page(tmp_path)
    with pytest.raises(InvalidInput, match="is not a directory"):
        rebuild_describe_page(tmp_path / "missing")
    (tmp_path / "descriptions.json").write_text('{"kind": "describe"}', encoding="utf-8")
    with pytest.raises(InvalidInput, match="not a valid describe result"):
        rebuild_describe_page(tmp_path)
    assert not (tmp_path / "report").exists() and not (tmp_path / "descriptions.html").exists()


def test_unit_status_and_validity_summary(tmp_path):
    res = _result()
    status = {(2, 0): "dead", (1, 1): "rare", (1, 2): "too few valid exemplars"}
    units = tuple(u.model_copy(update={"status": status.get((u.layer, u.unit), "described" if u.descriptors else
                                                            "no descriptor passed"), "n_firing": 3, "n_valid": 2,
                                       "firing_density": 0.375, "firing_threshold": 0.0, "max_activation": 9.5})
                  for u in res.units)
    val = ValidityReport(firing_rule="response > 0", quantile_levels=(0.5,), quantile_method="histogram",
                         min_valid=5, min_valid_fraction=0.5, min_valid_exemplars=5, n_duplicates_collapsed=0,
                         n_firing=5, n_dead=1, n_rare=1, n_too_few_valid=1, n_no_descriptor=0, n_described=3,
                         n_hub_sentences=1, hubs=(HubSentence(row=1, text=TEXTS[1], n_units=4),))
    res = res.model_copy(update={"units": units, "validity": val})
    page = write_describe_page(tmp_path, res, TEXTS, LABELS, VOCAB).read_text(encoding="utf-8")
    assert _parse(page).errors == []
    text = "".join(_parse(page).text)
    for needle in ("response > 0: 5 of 6 units fire", "dead 1, rare 1, too few valid exemplars 1",
                   "1 are exemplars of ≥ 5% of the units", "(4 units)", "dead 1, rare 1, too few valid exemplars 1"):
        assert needle in text, needle
    assert "&lt;script&gt;" in page and "<script>alert" not in page
    assert "3 units are not described (no descriptor at f ≥ t = 50%): dead 1, rare 1, too few valid exemplars 1" in text
    assert [re.search(r'">(\d+:\d+)</a>', r).group(1) for r in _rows(page)] == ["1:0", "2:1", "2:2"]


def test_a_big_model_gives_a_light_page(tmp_path):
    """9,216 units (6 x 1,536), 400 of them described, 10 exemplars each of 1,000 long sentences: the
    page lists the 400 and counts the others, well under 1 MB (it was ~15 MB with one <details> per unit)."""
    texts = [f"sentence {i} " + "with a fairly long review text about the product " * 6 for i in range(1000)]
    labels = [str(i % 2) for i in range(1000)]
    described = set(range(0, 9216, 23))  # 401 units
    units = []
    for i in range(9216):
        layer, unit = divmod(i, 1536)
        rows = tuple((i * 7 + j * 13) % 1000 for j in range(10))
        units.append(UnitReport(
            layer=layer, unit=unit, descriptors=(_desc("battery", 80.0), _desc("negative", 60.0)) if i in described
            else (), exemplars=rows, activations=tuple(10.0 - j for j in range(10)),
            consistency=0.5 if i in described else None, reference=("negative",), status="described"
            if i in described else "rare"))
    base = _result()
    res = base.model_copy(update={"layers": tuple(range(6)), "units_per_layer": 1536, "n_units": 9216,
                                  "n_described": len(described), "units": tuple(units), "n_sentences": 1000,
                                  "n_exemplars": 10})
    page = write_describe_page(tmp_path, res, texts, labels, VOCAB).read_text(encoding="utf-8")
    size = len(page.encode("utf-8"))
    assert size < 400_000, size
    assert len(_rows(page)) == len(described) and "<details" not in page
    assert f"{9216 - len(described):,} units are not described" in page
    assert link_errors(page, tmp_path) == [] and figure_errors(page) == []
