"""Explanations in a describe run (docs/methods.md#b7) on a tiny model with a planted "cat" unit:
the embedded run explains it by its word and scores it above its shuffled baseline on held-out
sentences, writes them to the result folder, the summary and the page; the service's stages
(generate -> cluster -> activate -> analyse -> explain, each with its own worker state) give the
same result; explain_units 0 turns them off."""

import csv

import numpy as np
import pytest

from neuroscribe.jobs import DescribeResult, GeneratorSpec
from neuroscribe.service import runtime
from neuroscribe.service.describe import KIND
from neuroscribe.service.describe.embedded import run_describe_job
from neuroscribe.service.describe.handlers import HANDLERS
from neuroscribe.service.executor import StageContext
from neuroscribe.settings import Settings
from html_check import parse_page
from test_describe import PLANTED, _job, planted  # noqa: F401  (the planted model fixture)


def _comparable(result: DescribeResult) -> dict:
    d = result.model_dump(mode="json")
    d["provenance"].pop("created_at")
    return d


@pytest.fixture(scope="module")
def embedded(planted, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("explain")
    job = _job(planted, generator=GeneratorSpec(backend="fake"), explain_units=100, detection_sentences=5)  # every unit that can be
    settings = Settings.build(cache_dir=root / "cache")
    res = run_describe_job(job, root / "out", progress=False, settings=settings, log=lambda m: None)
    return job, res, root / "out", settings


def test_planted_unit_is_explained_by_its_word_above_the_shuffled_baseline(embedded):
    _, res, _, _ = embedded
    rep = res.explanations
    assert rep is not None and rep.n_requested == 100 and rep.n_selected == rep.n_explained > 4
    cat = next(u for u in rep.units if (u.layer, u.unit) == PLANTED)
    assert cat.verified and rep.units[0].verified  # verified units come first
    assert "'cat'" in cat.explanation and cat.shuffled_from != PLANTED
    assert cat.detection.balanced_accuracy == 1.0 and cat.detection.n_pos == cat.detection.n_neg == 5
    assert cat.embedding_auroc > 0.9
    # the shuffled explanation is another unit's, on the same sentences: never better than "cat" itself
    # (other units of this tiny model also get "cat": then it scores the same)
    assert cat.shuffled_detection.n_pos == cat.shuffled_detection.n_neg == 5
    assert cat.shuffled_detection.balanced_accuracy <= 1.0 and cat.shuffled_embedding_auroc <= cat.embedding_auroc
    assert rep.detection.n_units == rep.n_explained and rep.detection.shuffled_mean is not None
    assert rep.detection.ci[0] <= rep.detection.mean <= rep.detection.ci[1]


def test_explanations_in_the_result_folder_summary_and_page(embedded):
    _, res, out, _ = embedded
    rows = list(csv.DictReader((out / "explanations.csv").open(encoding="utf-8")))
    assert [(int(r["layer"]), int(r["unit"])) for r in rows] == [(u.layer, u.unit) for u in res.explanations.units]
    cat = next(r for r in rows if (int(r["layer"]), int(r["unit"])) == PLANTED)
    assert "'cat'" in cat["explanation"] and float(cat["detection_balanced_accuracy"]) == 1.0
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    n = res.explanations.n_explained
    assert f"explanations (explanation-v1): {n} of {n} units explained" in summary
    assert "balanced accuracy" in summary and "vs shuffled" in summary and "AUROC = balanced accuracy" in summary
    assert any(line.startswith("  time:") and "explain" in line for line in summary.splitlines())
    page = (out / "descriptions.html").read_text(encoding="utf-8")
    assert "Explanations scored on held-out sentences" in page and "explanations.csv" in page
    checked = parse_page(page)
    text = "".join(checked.text)
    assert not checked.errors and "Sentences with the word 'cat'." in text and "above the shuffled baseline" in text
    assert DescribeResult.model_validate_json((out / "descriptions.json").read_text()).explanations == res.explanations


def test_the_service_stages_give_the_embedded_result(embedded, tmp_path):
    """Each stage's handler in turn, each with a fresh worker state (as separate workers), on the
    same artefacts folder: the explain stage is the last and writes the result folder."""
    job, res, _, settings = embedded
    assert KIND.stages == ("generate", "cluster", "activate", "analyse", "explain")
    settings = Settings.build(cache_dir=settings.cache_dir, models=(str(job.model.name),))  # the worker's policy
    runtime.configure(settings)
    handoff, out = None, None
    for stage in KIND.stages:
        ctx = StageContext(job_id="j1", stage=stage, attempt=1, job=job, handoff=handoff, artefacts=tmp_path / "j1",
                           settings=settings)
        out = HANDLERS[stage](ctx)
        handoff = out.get("handoff")
        assert ("result" in out) == (stage == "explain"), stage
    served = DescribeResult.model_validate(out["result"])
    assert _comparable(served) == _comparable(res)
    assert (tmp_path / "j1" / "stage" / "exemplars" / "calibration_sample.npz").is_file()
    assert (tmp_path / "j1" / "result" / "explanations.csv").is_file()
    # the token evidence: made by the activate stage (model loaded), written by the last one as embedded
    from neuroscribe.workers.describe.token_evidence import TokenEvidence

    assert (tmp_path / "j1" / "stage" / "exemplars" / TokenEvidence.NPZ).is_file()
    served_ev, embedded_ev = TokenEvidence.load(tmp_path / "j1" / "result"), TokenEvidence.load(embedded[2])
    for name in TokenEvidence.ARRAYS:
        np.testing.assert_array_equal(getattr(served_ev, name), getattr(embedded_ev, name), err_msg=name)
    assert served_ev.spans == embedded_ev.spans


def test_explain_units_zero_turns_them_off(planted, tmp_path):  # noqa: F811
    job = _job(planted, generator=GeneratorSpec(backend="fake"), explain_units=0)
    res = run_describe_job(job, tmp_path / "o", progress=False, settings=Settings.build(cache_dir=tmp_path / "c"),
                           log=lambda m: None)
    assert res.explanations is None and not (tmp_path / "o" / "explanations.csv").exists()
    assert "explanations" not in (tmp_path / "o" / "summary.txt").read_text(encoding="utf-8")
