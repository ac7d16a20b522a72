"""The describe job end to end on tiny models: a planted "cat" unit gets the descriptor "cat"
(f = 100%) and the reference label of its exemplars, the halves agree on it, a planted dead unit
is reported and never described, a duplicated sentence is one exemplar, the result folder holds
what the README promises, and bad input fails before any model runs."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from neuroscribe.jobs.describe import DatasetSpec, VocabularySpec
from neuroscribe.jobs import DescribeJob, DescribeResult, GeneratorSpec, Pooling, SubjectModelSpec, parse_result
from neuroscribe.service.cli import cli
from neuroscribe.service.describe.embedded import run_describe_job
from neuroscribe.workers.describe.quality import precision_recall_at_k
from neuroscribe.workers.generate import FakeBackend
from atlas_results import far_apart_embed, fake_descriptors
from tiny_models import make_planted_neox, tiny_model_dir

PLANTED = (0, 5)
DEAD = (0, 7)  # its pre-activation is -10 on every token: GELU(-10) rounds to -0.0, so it never fires
NOUNS = ["phone", "battery", "screen", "headset", "guitar", "bus"]
ADVERBS = ["", "really ", "very ", "so ", "too ", "really really ", "very very ", "so so ", "too too ", "really very "]
DUPLICATE = "the  cat is  very good ."  # row 0's text, spaced differently: the same sentence


def _sentences():
    """81 rows, 80 distinct sentences: 20 about the cat (all positive), 60 about other things (mixed),
    and row 0 again (with other whitespace) at the end."""
    out = []
    for i in range(20):
        out.append((f"{['the', 'a', 'this', 'that', 'my'][i % 5]} cat is {['very', 'really', 'so', 'too'][i // 5]} "
                    "good .", "1"))
    for i in range(60):
        noun = NOUNS[i % len(NOUNS)]
        good = i % 2 == 0
        out.append((f"my {noun} {'works' if good else 'broke'} {ADVERBS[i // 6]}{'great' if good else 'bad'} .",
                    "1" if good else "0"))
    out.append((DUPLICATE, "1"))
    return out


_script, _embed = fake_descriptors, far_apart_embed  # its nouns and opinion; nothing clusters


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM

    path = make_planted_neox(tmp_path_factory.mktemp("planted") / "m", word="cat", unit=PLANTED[1])
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        mlp = model.gpt_neox.layers[DEAD[0]].mlp.dense_h_to_4h
        mlp.weight[DEAD[1]] = 0.0
        mlp.bias[DEAD[1]] = -10.0
    model.save_pretrained(path)
    return path


def _job(path, **kw):
    rows = _sentences()
    data = DatasetSpec(name="toy.tsv", texts=tuple(t for t, _ in rows), labels=tuple(lab for _, lab in rows),
                       label_names={"1": "positive", "0": "negative"})
    base = dict(dataset=data, model=SubjectModelSpec(name=str(path), pooling=Pooling.max, device="cpu"),
                generator=GeneratorSpec(backend="fake"), top_k_percent=25.0,
                vocabulary=VocabularySpec(min_cluster_size=3))
    base.update(kw)
    return DescribeJob(**base)


@pytest.fixture(scope="module")
def run(planted, tmp_path_factory):
    out = tmp_path_factory.mktemp("describe") / "out"
    job = _job(planted)
    res = run_describe_job(job, out, progress=False, backend=FakeBackend(_script), embed=_embed, log=lambda m: None)
    return job, res, out


def _unit(res, layer, unit):
    return next(u for u in res.units if (u.layer, u.unit) == (layer, unit))


def test_planted_unit_described_by_its_word(run):
    job, res, _ = run
    u = _unit(res, *PLANTED)
    assert res.n_exemplars == 20 and len(u.exemplars) == 20  # 25% of the 80 distinct sentences
    assert set(u.exemplars) == set(range(20))  # exactly the cat sentences; row 80 repeats row 0
    assert u.exemplar_counts[u.exemplars.index(0)] == 2 and sum(u.exemplar_counts) == 21
    assert u.status == "described" and u.n_valid == 20 and u.n_firing == 20
    assert u.firing_density == pytest.approx(20 / 80) and u.firing_threshold == 0.0 and u.max_activation > 10
    top = u.descriptors[0]
    assert top.descriptor in {"cat", "positive"} and top.f == 100.0
    cat = next(d for d in u.descriptors if d.descriptor == "cat")
    assert (cat.count, cat.f, cat.base_rate) == (20, 100.0, 25.0) and cat.enrichment == pytest.approx(4.0)
    from scipy.stats import hypergeom

    assert cat.p == pytest.approx(hypergeom.sf(19, 80, 20, 20), rel=1e-9)  # population: the distinct sentences
    assert u.reference == ("positive",)  # every cat sentence is labelled 1 -> "positive"
    assert u.consistency == 1.0  # the same descriptors on both halves
    assert list(u.activations) == sorted(u.activations, reverse=True)


def test_dead_unit_is_reported_never_described(run):
    _, res, out = run
    u = _unit(res, *DEAD)
    assert u.status == "dead" and u.descriptors == () and u.n_firing == 0 and u.n_valid == 0
    assert u.max_activation <= 0 and u.firing_density == 0.0 and u.consistency is None
    v = res.validity
    assert v.n_dead >= 1 and v.n_duplicates_collapsed == 1 and v.min_valid_exemplars == 10
    assert v.n_firing + v.n_dead == res.n_units == v.n_dead + v.n_rare + v.n_too_few_valid + v.n_no_descriptor \
        + v.n_described and v.n_described == res.n_described
    assert [s.n_units for s in v.hubs] == sorted((s.n_units for s in v.hubs), reverse=True) and len(v.hubs) <= 10
    assert all(s.text == res_text for s in v.hubs[:1] for res_text in [_sentences()[s.row][0]])
    units = {(int(r["layer"]), int(r["unit"])): r for r in csv.DictReader((out / "units.csv").open())}
    assert units[DEAD]["status"] == "dead" and units[PLANTED]["status"] == "described"
    assert float(units[PLANTED]["firing_density"]) == 0.25
    assert "units fire" in (out / "summary.txt").read_text() and "1 duplicate sentences collapsed" in \
        (out / "summary.txt").read_text()
    page = (out / "descriptions.html").read_text()
    # the page lists the described units only; the dead one is counted, not listed
    assert f">{DEAD[0]}:{DEAD[1]}</a>" not in page
    counted = page[page.index("units are not described"):]
    assert "dead " in counted[:counted.index("</p>")]


def test_result_counts_and_evaluation_agree_with_units(run):
    job, res, _ = run
    assert res.n_units == 2 * 37 == len(res.units) and res.layers == (0, 1)
    assert res.n_described == sum(1 for u in res.units if u.descriptors)
    assert res.descriptors.n_failed == 0 and res.vocabulary.kept == ("negative", "positive")
    e = res.evaluation
    assert e.ks == (1, 2, 3) and e.label_names == {"0": "negative", "1": "positive"}
    again = precision_recall_at_k([tuple(d.descriptor for d in u.descriptors) for u in res.units],
                                  [frozenset(u.reference) for u in res.units], ks=e.ks)
    assert e.precision == pytest.approx(again.precision) and e.recall == pytest.approx(again.recall)
    assert e.baseline_sets == 1000 and len(e.baseline_precision) == 3 and 0 <= e.baseline_n_units <= 1000
    assert all(p is None or 0 <= p <= 1 for p in e.baseline_precision + e.baseline_recall)
    c = res.consistency
    assert c.n_calibration + c.n_validation == 81 and abs(c.n_calibration - c.n_validation) <= 1
    assert c.n_defined + c.n_both_empty == res.n_units and sum(c.histogram) == c.n_defined
    p = res.provenance
    assert p.prompt_version == "descriptors-v1" and p.generator["backend"] == "fake" and p.seed == 0
    assert p.generator["sampling"]["temperature"] == job.sampling.temperature


def test_result_folder(run):
    job, res, out = run
    back = parse_result((out / "descriptions.json").read_text())
    assert isinstance(back, DescribeResult) and back == res
    rows = [json.loads(line) for line in (out / "sentences.jsonl").read_text().splitlines()]
    assert len(rows) == 81 and rows[0]["names"] == ["cat", "positive"] and rows[0]["label"] == "1"
    units = list(csv.DictReader((out / "units.csv").open()))
    assert len(units) == res.n_units and units[PLANTED[1]]["descriptors"].count("100%") == 2
    ev = list(csv.DictReader((out / "evaluation.csv").open()))
    assert [int(r["k"]) for r in ev] == [1, 2, 3] and ev[1]["paper_precision"] == "0.75"
    chance = res.evaluation.baseline_precision
    assert [r["random_sets_precision"] for r in ev] == ["" if c is None else f"{c:.6g}" for c in chance]
    pr = list(csv.DictReader((out / "report" / "precision_recall.csv").open()))
    assert [r["random_sets_precision"] for r in pr] == ["" if c is None else str(float(c)) for c in chance]
    assert len(list(csv.DictReader((out / "consistency.csv").open()))) == res.n_units
    vocab = json.loads((out / "vocabulary.json").read_text())
    assert {n["descriptor"] for n in vocab["noise"]} >= {"cat", "positive", "negative"}
    assert "texts" not in json.loads((out / "job.json").read_text())["dataset"]
    assert "mean Jaccard" in (out / "summary.txt").read_text()
    assert (out / "descriptions.html").is_file()


def test_without_labels_no_evaluation_and_fdr_is_stricter(planted, tmp_path):
    job = _job(planted)
    data = job.dataset.model_copy(update={"labels": None, "label_names": {}})
    plain = run_describe_job(job.model_copy(update={"dataset": data, "consistency": False}), tmp_path / "a",
                             progress=False, backend=FakeBackend(_script), embed=_embed, log=lambda m: None)
    strict = run_describe_job(job.model_copy(update={"dataset": data, "consistency": False, "fdr": 0.01}),
                              tmp_path / "b", progress=False, backend=FakeBackend(_script), embed=_embed,
                              log=lambda m: None)
    assert plain.evaluation is None and plain.consistency is None
    assert not (tmp_path / "a" / "evaluation.csv").exists()
    pairs = {(u.layer, u.unit, d.descriptor) for u in plain.units for d in u.descriptors}
    strict_pairs = {(u.layer, u.unit, d.descriptor) for u in strict.units for d in u.descriptors}
    assert strict_pairs <= pairs and ("cat" in {d.descriptor for d in _unit(strict, *PLANTED).descriptors})
    assert all(d.q is not None and d.q <= 0.01 for u in strict.units for d in u.descriptors)


def test_cls_pooling_on_bert(tmp_path):
    assert DescribeJob(dataset=_job("x").dataset).model.pooling == Pooling.mean  # the default of a describe job
    job = _job(tiny_model_dir("bert"), model=SubjectModelSpec(name=str(tiny_model_dir("bert")), pooling=Pooling.cls,
                                                             device="cpu"))
    res = run_describe_job(job, tmp_path / "o", progress=False, backend=FakeBackend(_script), embed=_embed,
                           log=lambda m: None)
    assert res.provenance.pooling == "cls" and res.n_units == 2 * 37


# --------------------------------------------------------------------------- bad input


@pytest.fixture()
def no_model(monkeypatch):
    """Fail the test if a model is loaded."""
    import neuroscribe.workers.activations as acts

    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(acts, "load_subject_model", boom)


def _cli(args):
    return CliRunner().invoke(cli, ["describe", *args], catch_exceptions=False)


@pytest.mark.parametrize("content,extra,expected", [
    ("", [], "--dataset: "),
    ("review\tstars\ngood phone\t1\nbad phone\t0\n", ["--text-col", "text"], "--text-col: "),
    ("text\tlabel\ngood phone\t1\nbad phone\t1\n", ["--label-col", "label"],
     "--label-col: 'label' is not accepted: "),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--label-col", "label", "--top-percent", "0"],
     "--top-percent: 0 is not accepted: Input should be greater than 0"),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--label-col", "label", "--label-name", "2=x"],
     "--label-name: '2=x' is not accepted: ['2'] are not labels"),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--label-name", "1=x"],
     "--label-name: '1=x' is not accepted: d.tsv has no labels"),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--label-name", "1"], "--label-name: '1' is not LABEL=NAME"),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--label-col", "label", "--k", "0"],
     "--k: 0 is not accepted: every K must be >= 1"),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--layers", "x"], "--layers: 'x' is not a list of layer numbers"),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--min-cluster-size", "1"],
     "--min-cluster-size: 1 is not accepted: "),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--cluster-selection", "eom", "--reduce-to", "1"],
     "--reduce-to: 1 is not accepted: "),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--gen-batch-size", "0"], "--gen-batch-size: 0 is not accepted: "),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--generator", "nonsense!"],
     "--generator: generator spec 'nonsense!' is not BACKEND"),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--batch-size", "0"], "--batch-size: 0 is not accepted: "),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--model", ""], "--model: '' is not accepted: "),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--explain-units", "-1"], "--explain-units: -1 is not accepted: "),
    ("text\tlabel\ngood phone\t1\nbad phone\t0\n", ["--detection-sentences", "0"],
     "--detection-sentences: 0 is not accepted: "),
])
def test_bad_input_before_any_model(tmp_path, no_model, content, extra, expected):
    """One line, exit 2, naming the flag as typed and the rejected value (not the job's field)."""
    f = tmp_path / "d.tsv"
    f.write_text(content)
    r = _cli(["--dataset", str(f), "--out", str(tmp_path / "o"), *extra])
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("neuroscribe: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"neuroscribe: error: {expected}"), r.stderr
    assert not (tmp_path / "o").exists()


def test_model_errors_before_any_generation(planted, tmp_path):
    class NoGen(FakeBackend):
        def generate(self, requests, *, progress=True):
            raise AssertionError("generated")

    from neuroscribe.errors import InvalidInput

    for kw, field in ((dict(model=SubjectModelSpec(name=str(planted), pooling=Pooling.cls, device="cpu")), "model.pooling"),
                      (dict(model=SubjectModelSpec(name=str(planted), pooling=Pooling.max, layers=(5,))),
                       "model.layers")):
        with pytest.raises(InvalidInput) as e:
            run_describe_job(_job(planted, **kw), tmp_path / "o", progress=False, backend=NoGen(_script),
                             embed=_embed, log=lambda m: None)
        assert e.value.field == field


def test_packaged_amazon_dataset_with_named_labels():
    from neuroscribe.service.describe.dataset import load_dataset_spec

    d = load_dataset_spec("amazon", label_names={})
    assert len(d.texts) == 1000 and set(d.labels) == {"0", "1"} and d.name == "amazon_cells_labelled.txt"
    assert d.reference_names() == {"0": "negative", "1": "positive"}
    mine = load_dataset_spec("amazon", label_names={"1": "good"})
    assert mine.reference_names() == {"0": "0", "1": "good"}


def test_one_giant_cluster_is_flagged():
    from neuroscribe.workers.describe.stages import vocabulary_warnings
    from neuroscribe.workers.describe.vocabulary import Cluster, Vocabulary

    def vocab(big, small, noise):
        words = [f"w{i}" for i in range(big + small + noise)]
        clusters = [Cluster(words[0], tuple((w, 1) for w in words[:big]), big, big),
                    Cluster(words[big], tuple((w, 1) for w in words[big:big + small]), small, small)]
        mapping = {w: w for w in words}
        return Vocabulary(mapping, clusters, [(w, 1) for w in words[big + small:]], {})

    (w,) = vocabulary_warnings(vocab(40, 5, 55))  # 40% of 100 descriptors in one cluster
    assert "'w0' and 39 more" in w and "40%" in w
    assert vocabulary_warnings(vocab(20, 5, 75)) == []  # 20%: fine
    assert vocabulary_warnings(vocab(10, 5, 5)) == []  # too few descriptors to judge


def test_label_word_match(planted):
    from neuroscribe.workers.describe.stages import DescriptorsArtefact, vocabulary_stage

    d = DescriptorsArtefact([["positive feedback", "phone"], ["negatively charged"], None, ["great", "positive"]],
                            {}, {"backend": "fake"})
    rows = ("a good phone", "static shock", "???", "great")
    data = DatasetSpec(name="t", texts=rows, labels=("1", "0", "0", "1"), label_names={"1": "positive", "0": "negative"})
    on = vocabulary_stage(_job(planted, dataset=data, consistency=False), d, embed=_embed)
    assert on.sets == [["phone", "positive", "positive feedback"], ["negatively charged"], None, ["great", "positive"]]
    assert on.vocabulary.params["label_word_match"] == {"sentences_gaining_a_label_name": 1}
    off = vocabulary_stage(_job(planted, dataset=data.model_copy(update={"label_word_match": False}),
                                consistency=False), d, embed=_embed)
    assert off.sets[0] == ["phone", "positive feedback"]  # whole words only: "negatively" never gives "negative"


def test_self_consistency_keeps_names_most_samples_agree_on(planted):
    """Three samples per sentence: min_votes 2 keeps what two of them say (label names from words
    count as votes too), and a sentence with one successful sample counts as failed."""
    from neuroscribe.workers.describe.stages import DescriptorsArtefact, vocabulary_stage

    samples = [[["positive feedback", "phone"], ["phone", "great"], ["phone", "positive"]],
               [["static"]],
               [["battery"], ["battery"], ["noise"]]]
    union = [list(dict.fromkeys(x for s in per for x in s)) for per in samples]
    d = DescriptorsArtefact(union, {"empty": 2}, {"backend": "fake"}, samples=samples, n_samples=3, retries=1)
    data = DatasetSpec(name="t", texts=("a good phone", "static shock", "flat battery"), labels=("1", "0", "0"),
                       label_names={"1": "positive", "0": "negative"})
    got = vocabulary_stage(_job(planted, dataset=data, consistency=False, samples=3, min_votes=2), d, embed=_embed)
    assert got.sets == [["phone", "positive"], None, ["battery"]]
    assert got.vocabulary.params["votes"] == {"samples": 3, "min_votes": 2, "dropped": 3}  # feedback, great, noise
    one = vocabulary_stage(_job(planted, dataset=data, consistency=False, samples=3), d, embed=_embed)
    assert one.sets[1] == ["static"] and "noise" in one.sets[2]


def test_descriptions_are_verified_on_the_held_out_half(run):
    """The planted unit's "cat", made on the calibration half, predicts it on the held-out half; the
    dead unit has nothing to verify; the permuted-response null verifies (almost) nothing."""
    _, res, out = run
    vr = res.verification
    assert vr is not None and vr.fdr == 0.05 and vr.n_heldout > 0
    planted = _unit(res, *PLANTED)
    cat = next(h for h in planted.held_out if h.descriptor == "cat")
    assert cat.verified and cat.auroc > 0.9 and cat.q <= 0.05 and cat.n_pos > 0 and cat.n_neg > 0
    assert planted.held_out[0].verified  # verified descriptions come first
    assert _unit(res, *DEAD).held_out == ()
    assert vr.n_verified >= 1 and vr.n_units_verified >= 1
    assert vr.n_verified_null is not None and vr.n_verified_null <= max(1, vr.n_testable // 20)
    summary = (out / "summary.txt").read_text().splitlines()
    assert summary[0].startswith(f"verified descriptions: {vr.n_verified} of {vr.n_pairs}")
    assert "chance alone (responses permuted)" in summary[0]
    units = (out / "units.csv").read_text()
    assert "cat (AUROC" in units


def test_token_evidence_in_the_result_folder(run):
    """token_evidence.npz/.json (docs/atlas.md): every unit, its exemplars as in descriptions.json, then a
    sample at each quantile level; under max pooling the peak token is the pooled response, and the
    planted unit's peak is on the word "cat"."""
    from neuroscribe.workers.describe.token_evidence import LEVELS, TokenEvidence

    job, res, out = run
    assert (out / "token_evidence.npz").is_file() and (out / "token_evidence.json").is_file()
    ev = TokenEvidence.load(out)
    meta = json.loads((out / "token_evidence.json").read_text())
    assert (meta["site"], meta["pooling"], meta["max_length"], tuple(meta["levels"])) == ("mlp_post", "max", 128, LEVELS)
    k = res.n_exemplars
    assert ev.rows.shape == (res.n_units, k + len(LEVELS)) and ev.values.size == ev.length.sum()
    texts = job.dataset.texts
    for i, u in enumerate(res.units):
        assert (ev.layer[i], ev.unit[i]) == (u.layer, u.unit)
        assert ev.rows[i, :k].tolist() == list(u.exemplars) and (ev.kind[i, :k] == 0).all()
        np.testing.assert_array_equal(ev.activation[i, :k], np.float32(u.activations))
        for e in range(ev.rows.shape[1]):
            spans = ev.spans[int(ev.rows[i, e])]
            assert len(spans) == ev.length[i, e] and all(0 <= a < b <= len(texts[ev.rows[i, e]]) for a, b in spans)
            assert ev.tokens(i, e).astype(np.float32).max() == ev.activation[i, e]  # max pooling, float16 both
    assert (np.diff(ev.activation[:, k:], axis=1) >= 0).all()  # samples ordered by level
    i = next(i for i, u in enumerate(res.units) if (u.layer, u.unit) == PLANTED)
    for e in range(k):
        row = int(ev.rows[i, e])
        a, b = ev.spans[row][int(np.argmax(ev.tokens(i, e)))]
        assert texts[row][a:b] == "cat"
    d = np.unique([" ".join(t.split()) for t in texts], return_index=True)[1]
    assert len(d) == 80 and (ev.hist_counts.sum(axis=1) == 80).all()
    assert ev.hist_edges[i, -1] == np.float32(res.units[i].max_activation)


def test_token_evidence_can_be_skipped(planted, tmp_path):
    job = _job(planted, token_evidence=False, consistency=False, explain_units=0)
    run_describe_job(job, tmp_path / "o", progress=False, backend=FakeBackend(_script), embed=_embed,
                     log=lambda m: None)
    assert (tmp_path / "o" / "descriptions.json").is_file() and not (tmp_path / "o" / "token_evidence.npz").exists()
    assert "token_evidence" not in (tmp_path / "o" / "summary.txt").read_text()
