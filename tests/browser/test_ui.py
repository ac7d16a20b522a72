"""The atlas's web UI in Chromium (see conftest.py), against the service's app on real uvicorns:

* search from the header ("cat" by words, "kitten" by meaning) to the planted neuron's page;
* that page: coloured tokens (the peak "cat" hot, silent tokens bare), the histogram's bars, and a
  total weight under 500 kB;
* a concept's expert row to the same neuron's verified descriptor and rank positions;
* a concept name with a '/' reaching the API whole; the status filter's five stored statuses;
* a rank job submitted from the form (pasted lines, advanced JSON), run by the stage workers to
  ``succeeded``, indexed into the atlas, its report downloadable from its row (no key);
* a dataset sentence (and a search query) holding markup shown as text;
* the API key: asked for, a wrong one refused with the server's message, the right one used, also for
  artefacts (fetched with the header, shown from blob URLs with their own styles, nothing of a
  hostile file run, the key in no URL and not copied to the new tab).

Every wait is Playwright's auto-waiting ``expect`` (or an event with a deadline); the checks common
to every test (nothing leaves 127.0.0.1, no script error, no CSP violation on the UI's pages, no
dialog) are in conftest.py's ``context`` fixture."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from atlas_results import PLANTED, SCRIPT
from atlas_ui import BINARY, KEY

LAYER, UNIT = PLANTED
JOB_TIMEOUT_MS = 240_000  # a rank job of the packaged MiniLM on a loaded 2-core machine
HEX32 = re.compile(r"^[0-9a-f]{32}$")
TRANSPARENT = "rgba(0, 0, 0, 0)"


def _neuron_url(atlas, base=None) -> str:
    return f"{base or atlas.open}/neurons/{atlas.model}/{LAYER}/{UNIT}"


def _on_the_planted_neuron(page, atlas, base=None) -> None:
    expect(page).to_have_url(re.compile(rf"^{re.escape(_neuron_url(atlas, base))}(\?site=mlp_post)?$"))
    expect(page.locator("#neuron-title")).to_have_text(f"{atlas.model} · layer {LAYER} · unit {UNIT} · mlp_post")


# ----------------------------------------------------------------------------- a. search -> neuron

@pytest.mark.parametrize("query, match", [("cat", "both"), ("kitten", "meaning")])
def test_search_from_the_header_opens_the_neuron(page, atlas, query, match):
    page.goto(atlas.open + "/")
    expect(page.locator(f"#models-table .model-row[data-model='{atlas.model}']")).to_have_count(1)
    page.locator("#search-input").fill(query)
    page.locator("#search-input").press("Enter")
    expect(page).to_have_url(f"{atlas.open}/search?q={query}")
    expect(page.locator("h1")).to_have_text(f"Search: {query}")
    result = page.locator("#search-results .search-result[data-kind=descriptor]").filter(
        has=page.locator(".result-text", has_text=re.compile(r"^cat$")))
    expect(result).to_have_count(1)
    expect(result).to_have_attribute("data-match", match)  # "kitten" shares no word with "cat": by meaning
    result.locator("a.search-neuron").filter(has_text=re.compile(rf"^{re.escape(atlas.model)} L{LAYER}/{UNIT}\b")).click()
    _on_the_planted_neuron(page, atlas)


# ----------------------------------------------------------------------------- b. tokens, histogram, weight

def test_the_neuron_page_colours_tokens_draws_the_histogram_and_stays_light(page, atlas):
    status, view = atlas.get(f"/v1/atlas/neurons/{atlas.model}/{LAYER}/{UNIT}")
    assert status == 200
    counts = view["stats"][0]["histogram"]["counts"]
    responses = []
    page.on("response", lambda r: responses.append(r))
    page.goto(_neuron_url(atlas))
    _on_the_planted_neuron(page, atlas)

    first = page.locator("#exemplars .exemplar[data-kind=top]").first
    peak = first.locator(".tok.peak")
    expect(peak).to_have_text("cat")
    expect(peak).to_have_css("background-color", re.compile(r"^rgba\(222, 84, 18, 0\.[5-9]\d*\)$"))  # hot, not white
    expect(first.locator(".tok")).to_have_count(6)  # "the cat is very good ."
    for i in (0, 2, 3, 4, 5):  # the unit is silent there: no colour
        expect(first.locator(".tok").nth(i)).to_have_css("background-color", TRANSPARENT)

    bars = page.locator("#histogram svg.histogram rect.bar")
    expect(bars).to_have_count(len(counts))
    top = max(range(len(counts)), key=counts.__getitem__)
    expect(bars.nth(top)).to_have_attribute("data-count", str(counts[top]))
    expect(bars.nth(top)).to_have_attribute("height", re.compile(r"^(?!0(\.0+)?$)\d+(\.\d+)?$"))  # drawn, not flat

    page.wait_for_load_state("networkidle")
    urls = {r.url.split("?")[0] for r in responses}
    assert {f"{atlas.open}/static/atlas/app.js", f"{atlas.open}/static/atlas/app.css",
            f"{atlas.open}/v1/atlas/neurons/{atlas.model}/{LAYER}/{UNIT}"} <= urls, urls
    weight = sum(len(r.body()) for r in responses if r.status == 200)
    assert 0 < weight < 500_000, f"the neuron page weighs {weight} bytes"


# ----------------------------------------------------------------------------- c. concept -> neuron

def test_an_expert_of_a_concept_links_to_the_neurons_descriptors_and_ranks(page, atlas):
    page.goto(atlas.open + "/concepts/cat")
    expect(page.locator("#concept-title")).to_have_text("Concept: cat")
    row = page.locator(f"#concept-experts .expert-row[data-layer='{LAYER}'][data-unit='{UNIT}']")
    expect(row).to_have_count(1)
    row.locator("a.neuron-link").click()
    _on_the_planted_neuron(page, atlas)

    cat = page.locator("#descriptors-table .descriptor-row").filter(
        has=page.locator("td:first-child", has_text=re.compile(r"^cat\b")))
    expect(cat).to_have_count(1)
    expect(cat.locator("td:first-child .badge.verified")).to_have_text("verified")
    linear = page.locator("#ranks-table .rank-row").filter(has=page.locator("td:first-child", has_text=re.compile(r"^linear$")))
    expect(linear.first).to_contain_text("1 of 37")  # first in the rank job's linear ranking
    expect(page.locator("#neuron-concepts-table .concept-row").filter(has_text="cat").locator(".badge.expert")).to_be_visible()


def test_a_concept_name_with_a_slash_reaches_the_api_whole(page, atlas):
    page.goto(f"{atlas.open}/concepts/{quote('cat/kitten', safe='')}")
    expect(page.locator("#concept-title")).to_have_text("Concept: cat/kitten")
    expect(page.locator("#main .error .error-status")).to_have_text("Error 404")
    expect(page.locator("#main .error .error-detail")).to_have_text("no concept 'cat/kitten' in the atlas")


def test_the_status_filter_offers_every_stored_status(page, atlas):
    statuses = ["described", "no descriptor passed", "too few valid exemplars", "rare", "dead"]
    page.goto(f"{atlas.open}/models/{atlas.model}/{LAYER}")
    select = page.locator("#filter-status")
    expect(select.locator("option")).to_have_count(len(statuses) + 1)
    expect(select.locator("option")).to_have_text(["all", *statuses])
    expect(page.locator("#neurons-table .neuron-row")).to_have_count(37)
    expect(page.locator("#neurons-table thead th", has_text="Concepts")).to_have_count(0)  # not in the API's rows
    for status in statuses:  # each is the exact stored string: the server takes it (no 422)
        select.select_option(status)
        expect(page).to_have_url(re.compile(r"[?&]status=" + re.escape(quote(status).replace("%20", "+")) + "$"))
        rows = page.locator("#neurons-table .neuron-row")
        expect(rows.or_(page.locator("#neurons p.none")).first).to_be_visible()
        expect(page.locator("#main .error")).to_have_count(0)
        if status == "described":  # every unit of the tiny model's layer 0 is
            expect(rows).to_have_count(37)
            expect(page.locator(f"#neurons-table .neuron-row[data-status='{status}']")).to_have_count(37)
        else:
            expect(rows).to_have_count(0)


# ----------------------------------------------------------------------------- d. submit a job, watch it run

@pytest.fixture
def workers(atlas, monkeypatch):
    """Worker threads for a rank job's stages (as ``neuroscribe ui`` starts them), indexing what they
    finish into the test's atlas; yields an event set once the worker's auto-index has run."""
    from neuroscribe.atlas import ingest
    from neuroscribe.service import registry
    from neuroscribe.service.worker import Worker
    from neuroscribe.settings import Settings

    monkeypatch.setenv("NEUROSCRIBE_AUTO_INDEX", "1")
    settings = Settings.from_env(artefacts=atlas.artefacts, atlas_url=atlas.url, queue_url="memory://")
    assert settings.auto_index and settings.atlas_url == atlas.url
    indexed, reports, real = threading.Event(), [], ingest.index_quietly

    def index_quietly(url, path, log=None):  # the worker imports it when a job ends: this one
        reports.append(real(url, path, log=log))
        indexed.set()
        return reports[-1]

    monkeypatch.setattr(ingest, "index_quietly", index_quietly)
    started = []
    for stage in registry.kinds()["rank"].stages:
        w = Worker(atlas.queue, stage, settings=settings, log=lambda m: None, ready_timeout_s=180)
        t = threading.Thread(target=w.run, kwargs={"signals": False}, name=f"worker-{stage}", daemon=True)
        t.start()
        started.append((w, t))
    yield indexed, reports
    for w, _ in started:
        w.stop()
    for _, t in started:
        t.join(60)


def _pasted_lines() -> str:
    pos = [f"the cat sat on the {w} mat ." for w in ("red", "blue", "old", "new", "big", "small", "warm", "soft", "flat", "green")]
    neg = [f"the bus drove down the {w} road ." for w in ("long", "wet", "dark", "wide", "busy", "quiet", "steep", "new", "old", "straight")]
    return "\n".join([f"{t}\t1" for t in pos] + [f"{t}\t0" for t in neg])


def test_a_job_submitted_from_the_form_runs_to_success_and_into_the_atlas(page, atlas, workers):
    indexed, reports = workers
    page.goto(atlas.open + "/jobs")
    expect(page.locator("h1")).to_have_text("Jobs")
    # the server's packaged datasets fill the dataset field; a rank job gets the rank shape of one
    expect(page.locator("#job-dataset option[value=amazon]")).to_have_count(1)
    json_box = page.locator("#job-json")
    page.locator("#job-kind").select_option("describe")  # a describe job takes the server's DatasetSpec whole
    expect(page.locator("#job-dataset")).to_have_value("amazon")
    expect(json_box).to_have_value(re.compile(r'"name": "amazon_cells_labelled\.txt"'))
    ds = json.loads(json_box.input_value())["dataset"]
    assert set(ds) == {"name", "texts", "labels", "label_names", "label_word_match"}, set(ds)
    page.locator("#job-kind").select_option("rank")  # a rank job's AttributeDataSpec: no label_word_match
    expect(json_box).to_have_value(re.compile(r'"kind": "rank"'))
    ds = json.loads(json_box.input_value())["dataset"]
    assert set(ds) == {"name", "texts", "labels", "label_names"} and len(ds["texts"]) == len(ds["labels"]) == 1000
    assert ds["label_names"] == {"1": "positive", "0": "negative"}
    expect(page.locator("#job-dataset-hint")).to_have_text("1000 sentences; labels 0 (negative): 500, 1 (positive): 500")

    page.locator("#job-dataset").select_option("pasted")
    page.locator("#job-dataset-text").fill(_pasted_lines())
    page.locator("#job-ks").fill("1, 5")
    expect(json_box).to_have_value(re.compile(r'"name": "pasted\.txt"'))
    page.locator("#advanced summary").click()
    body = json.loads(json_box.input_value())
    assert body["kind"] == "rank" and body["model"] == {"name": "minilm", "pooling": "mean"} and body["ks"] == [1, 5]
    assert body["dataset"]["labels"] == ["1"] * 10 + ["0"] * 10
    body.update(methods=["linear"], interventions=None, probing={"seeds": 2}, ranking={"stability": False})
    json_box.fill(json.dumps(body, indent=2))  # edited: sent as it is
    page.locator("#submit-button").click()

    result = page.locator("#submit-result")
    expect(result).to_have_attribute("data-job-id", HEX32)
    job_id = result.get_attribute("data-job-id")
    row = page.locator(f"#jobs-table .job-row[data-job-id='{job_id}']")
    expect(row).to_have_attribute("data-kind", "rank")
    try:
        expect(row).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT_MS)
    except AssertionError:
        pytest.fail(f"the job did not succeed: {atlas.get(f'/v1/jobs/{job_id}')}")
    expect(row.locator(".job-status")).to_have_text("succeeded")

    assert indexed.wait(120), "the worker did not index the finished job"
    assert reports[-1] and reports[-1]["key"] == job_id and reports[-1]["kind"] == "rank", reports
    page.goto(atlas.open + "/")
    indexed_row = page.locator(f"#indexed-jobs-table .indexed-job-row[data-key='{job_id}']")
    expect(indexed_row).to_contain_text("rank")
    expect(indexed_row.locator("a.job-link")).to_have_attribute("href", f"/v1/jobs/{job_id}/artefacts")

    # its report, from the job's row: without a key, the browser's own navigation shows the page
    # (sandboxed by its Content-Security-Policy, its figures loaded from the job's folder)
    page.goto(atlas.open + "/jobs")
    link = page.locator(f"#jobs-table .job-row[data-job-id='{job_id}'] .job-artefacts a.artefact-link",
                        has_text=re.compile(r"^result/rankings\.html$"))
    expect(link).to_have_attribute("href", f"/v1/jobs/{job_id}/artefacts/result/rankings.html")
    link.click()
    expect(page).to_have_url(re.compile(rf"/v1/jobs/{job_id}/artefacts/result/rankings\.html$"))
    expect(page.locator("body")).to_contain_text("neuroscribe rank")


# ----------------------------------------------------------------------------- e. hostile text

def test_a_script_in_a_dataset_sentence_is_shown_as_text(page, atlas, watch):
    page.goto(_neuron_url(atlas))
    _on_the_planted_neuron(page, atlas)
    sentence = page.locator("#exemplars .exemplar-text").filter(has_text="<script>")
    expect(sentence.first).to_have_text(SCRIPT)
    expect(sentence.first).to_be_visible()
    expect(page.locator("#main script")).to_have_count(0)
    query = f"{SCRIPT} <img src=x onerror=alert(2)>"  # echoed in the page: as text, no element
    page.goto(f"{atlas.open}/search?q={quote(query)}")
    expect(page.locator("h1")).to_have_text(f"Search: {query}")
    expect(page.locator("#search-page-input")).to_have_value(query)
    expect(page.locator("#main img, #main script")).to_have_count(0)
    assert watch.dialogs == []


# ----------------------------------------------------------------------------- f. the API key

def test_the_api_key_is_asked_for_refused_when_wrong_and_used_when_right(page, atlas, watch):
    status, body = atlas.get("/v1/atlas/models", base=atlas.keyed)
    assert status == 401
    refusal = body["detail"]
    page.goto(atlas.keyed + "/")
    panel, message, key_input = page.locator("#api-key-panel"), page.locator("#api-key-message"), page.locator("#api-key-input")
    expect(panel).to_be_visible()
    expect(message).to_have_text(f"This server needs an API key: {refusal}")
    expect(page.locator("#models-table")).to_have_count(0)

    key_input.fill("not-the-key")
    key_input.press("Enter")
    expect(message).to_have_text(f"The server refused this key: {refusal}")
    expect(panel).to_be_visible()
    expect(key_input).to_have_value("")
    expect(page.locator("#models-table")).to_have_count(0)

    key_input.fill(KEY)
    page.locator("#api-key-form button[type=submit]").click()
    expect(panel).to_be_hidden()
    expect(page.locator(f"#models-table .model-row[data-model='{atlas.model}']")).to_have_count(1)
    expect(page.locator("#api-key-clear")).to_be_visible()

    # a neuron's data, and artefacts opened with the key (fetched with the header, shown from a blob URL)
    page.locator("#search-input").fill("cat")
    page.locator("#search-input").press("Enter")
    page.locator("#search-results .search-result[data-kind=descriptor] a.search-neuron").filter(
        has_text=re.compile(rf"^{re.escape(atlas.model)} L{LAYER}/{UNIT}\b")).first.click()
    _on_the_planted_neuron(page, atlas, base=atlas.keyed)
    expect(page.locator("#exemplars .tok.peak").first).to_have_text("cat")

    page.locator("nav a[data-nav=jobs]").click()
    files = page.locator(f"#jobs-table .job-row[data-job-id='{atlas.seeded}'] .job-artefacts")
    report = files.locator("a.artefact-link", has_text=re.compile(r"^result/rankings\.html$"))
    expect(report).to_have_attribute("href", f"/v1/jobs/{atlas.seeded}/artefacts/result/rankings.html")
    with page.context.expect_page() as popup_info:
        report.click()
    popup = popup_info.value
    expect(popup).to_have_url(re.compile(r"^blob:http://127\.0\.0\.1:\d+/"))
    expect(popup.locator("h1")).to_contain_text("neuroscribe rank")
    expect(popup.locator("body")).to_have_css("max-width", "1000px")  # its own stylesheet, through the CSSOM
    popup.close()

    evil = files.locator("a.artefact-link", has_text=re.compile(r"^result/evil\.html$"))
    with page.context.expect_page() as popup_info:
        evil.click()
    popup = popup_info.value
    expect(popup).to_have_url(re.compile(r"^blob:"))
    expect(popup.locator("#evil")).to_have_text("hostile page")
    popup.wait_for_load_state("load")  # its script and its image's handler have had their chance: neither ran
    expect(popup.locator("body")).not_to_have_attribute("data-ran", re.compile(".*"))
    assert popup.evaluate("() => sessionStorage.getItem('neuroscribe.apiKey')") is None  # the tab got no copy of the key
    popup.close()

    files.locator("details summary").click()
    with page.expect_download() as dl:
        files.locator("a.artefact-link", has_text=re.compile(r"^result/table\.bin$")).click()
    assert dl.value.suggested_filename == "table.bin"
    assert Path(dl.value.path()).read_bytes() == BINARY

    fetched = [r for r in watch.requests if "/artefacts/result/" in r.url]
    assert fetched and all(r.headers.get("x-api-key") == KEY for r in fetched)
    assert not [r.url for r in watch.requests if KEY in r.url], "the key went into a URL"
    assert watch.dialogs == []
