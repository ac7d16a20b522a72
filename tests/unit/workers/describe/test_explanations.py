"""Explanations scored on held-out sentences (docs/methods.md#b7), on constructed data with known
answers: units planted to fire exactly on the sentences holding a word get that word from the fake
LLM, and their explanations score well above another unit's (the shuffled baseline) by detection
and by MiniLM embedding; units firing on random sentences do not. Explanations are made from the
calibration half only and never scored on a sentence they were made from."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from neuroscribe.jobs import DescribeJob, DescribeResult, GeneratorSpec, SubjectModelSpec
from neuroscribe.jobs.describe import DatasetSpec, HeldOutDescriptor, UnitReport
from neuroscribe.workers.describe.calibration_sample import CalibrationSample, sample_rows
from neuroscribe.workers.describe.exemplar_stream import QUANTILE_LEVELS, ExemplarsArtefact, FiringStats
from neuroscribe.workers.describe.explanation_scores import auroc, derangement, detection_score, summarise
from neuroscribe.workers.describe.explanations import explain_stage
from neuroscribe.workers.generate import FakeBackend
from neuroscribe.workers.generate.fake import default_reply

FILLER = ("apple river window garden yellow music doctor market winter bottle mountain kitchen letter pencil "
          "summer train coffee island forest castle bridge candle mirror rabbit blanket jacket orange silver "
          "button carpet ladder engine farmer camera cookie basket pillow rocket tunnel wallet").split()
PLANTED = ("zebra", "violin", "volcano", "umbrella")  # far apart in meaning: "piano" is close to "violin"
N, K = 480, 6


def _texts(rng) -> list[str]:
    out, seen = [], set()
    while len(out) < N:
        words = list(rng.choice(FILLER, size=5, replace=False))
        for w in PLANTED:
            if rng.random() < 0.18:
                words.insert(int(rng.integers(0, len(words) + 1)), w)
        s = "the " + " ".join(words)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _topk(resp: np.ndarray, rows: np.ndarray):
    order = np.argsort(-resp[rows], axis=0, kind="stable")[:K].T  # (U, K) positions
    return rows[order], np.take_along_axis(resp[rows].T, order, axis=1)


def make_case(kind: str, seed: int = 0, **job_kw):
    """(job, result, halves, exemplars, sample): 4 units, each planted on one word ("planted") or
    firing on a random 30% of the sentences ("random"); responses 1 + noise when firing, -0.1 else."""
    rng = np.random.default_rng(seed)
    texts = _texts(rng)
    words = [set(t.split()) for t in texts]
    fires = np.zeros((N, 4), bool)
    for u in range(4):
        fires[:, u] = [PLANTED[u] in w for w in words] if kind == "planted" else rng.random(N) < 0.3
    resp = np.where(fires, 1.0 + rng.random((N, 4)), -0.1 - 0.01 * rng.random((N, 4))).astype(np.float32)
    perm = rng.permutation(N)
    halves = [np.sort(perm[: N // 2]), np.sort(perm[N // 2:])]
    rows, values = _topk(resp, np.arange(N))
    cal, val = _topk(resp, halves[0]), _topk(resp, halves[1])
    firing = FiringStats("zero", N, np.zeros(4, np.float32), fires.sum(0).astype(np.int64), resp.max(0),
                         np.quantile(resp, QUANTILE_LEVELS, axis=0).T.astype(np.float32), QUANTILE_LEVELS)
    ex = ExemplarsArtefact([0], 4, K, rows, values, [cal, val], {}, firing, resp[halves[1]].astype(np.float16))
    srows = sample_rows(texts, halves[0], 200, seed)
    sample = CalibrationSample(srows, resp[srows].astype(np.float16))
    units = tuple(UnitReport(
        layer=0, unit=u, descriptors=(), exemplars=tuple(map(int, rows[u])), activations=tuple(map(float, values[u])),
        n_firing=int(fires[:, u].sum()), max_activation=float(resp[:, u].max()),
        held_out=(HeldOutDescriptor(descriptor=PLANTED[u], n_pos=40, n_neg=200, auroc=1.0 - u / 100, verified=True),)
        if kind == "planted" else ()) for u in range(4))
    job = DescribeJob(dataset=DatasetSpec(name="toy", texts=tuple(texts)), generator=GeneratorSpec(backend="fake"),
                      model=SubjectModelSpec(name="toy", device="cpu"), **job_kw)
    return job, DescribeResult.model_construct(units=units, warnings=()), halves, ex, sample


@pytest.fixture(scope="module")
def minilm():
    from neuroscribe.workers.describe.vocabulary import minilm_embedder

    return minilm_embedder()


def _explain(case, backend=None, embed=None):
    job, result, halves, ex, sample = case
    return explain_stage(job, result, halves, ex, sample, backend or FakeBackend(), embed, progress=False)


def test_planted_units_are_explained_by_their_word_and_beat_the_shuffled_baseline(minilm):
    case = make_case("planted")
    rep = _explain(case, embed=minilm).explanations
    assert rep.n_selected == rep.n_explained == 4 and not rep.failures
    for u in rep.units:
        word = PLANTED[u.unit]
        assert u.verified and f"'{word}'" in u.explanation
        n = case[0].detection_sentences
        assert u.detection.balanced_accuracy == 1.0 and u.detection.n_pos == u.detection.n_neg == n
        assert u.shuffled_from != (u.layer, u.unit) and word not in u.shuffled_explanation
        assert u.shuffled_detection.balanced_accuracy < 0.7
        assert u.embedding_auroc > 0.8 > u.shuffled_embedding_auroc + 0.2
    for s in (rep.detection, rep.embedding):
        assert s.n_units == 4 and s.difference_ci[0] > 0.2 and s.verdict == "above the shuffled baseline"
        assert s.ci[0] <= s.mean <= s.ci[1]


def test_units_firing_on_random_sentences_do_not_beat_the_shuffled_baseline(minilm):
    rep = _explain(make_case("random", seed=1), embed=minilm).explanations
    assert rep.n_explained == 4
    for s in (rep.detection, rep.embedding):
        assert s.difference_ci[0] <= 0 <= s.difference_ci[1] and "not above the shuffled baseline" in s.verdict
        assert abs(s.mean - 0.5) < 0.15


def test_explanations_use_the_calibration_half_and_are_scored_on_held_out_sentences_never_shown():
    case = make_case("planted", detection_sentences=7)
    job, _, halves, _, _ = case
    backend = FakeBackend()
    rep = _explain(case, backend, embed=lambda xs: np.ones((len(xs), 3))).explanations
    texts = job.dataset.texts
    calibration, held = {texts[r] for r in halves[0]}, {texts[r] for r in halves[1]}
    reqs = [r for call in backend.calls for r in call]
    shown = {s for r in reqs if r.meta["kind"] == "explanation" for s in r.meta["firing"] + r.meta["contrast"]}
    asked = {r.meta["sentence"] for r in reqs if r.meta["kind"] == "detection"}
    assert shown <= calibration and asked <= held and not shown & asked
    for u in rep.units:  # 7 + 7 sentences, asked with its own explanation and with the shuffled one
        assert (u.detection.n_pos, u.detection.n_neg) == (u.shuffled_detection.n_pos, u.shuffled_detection.n_neg) == (7, 7)
    # each distinct (explanation, sentence) question asked once
    assert rep.n_detection_requests == len({(r.meta["explanation"], r.meta["sentence"]) for r in reqs
                                            if r.meta["kind"] == "detection"}) <= 4 * 2 * 14
    assert all(u.n_contrast_shown == 5 and u.n_firing_shown == 8 for u in rep.units)
    # a constant embedding ties every sentence: AUROC 0.5 exactly
    assert rep.embedding.mean == 0.5


def test_unparsable_explanations_are_counted_never_scored():
    def script(req):
        return "   " if req.meta.get("kind") == "explanation" else default_reply(req)

    rep = _explain(make_case("planted"), FakeBackend(script), embed=lambda xs: np.eye(len(xs), 4)).explanations
    assert rep.n_selected == 4 and rep.n_explained == 0 and rep.failures == {"empty": 4}
    assert all(u.explanation is None and u.failure == "empty" and u.detection is None for u in rep.units)
    assert rep.n_detection_requests == 0 and rep.detection.n_units == 0 and rep.detection.verdict == "no unit scored"


def test_bounded_by_explain_units_verified_first_and_off_at_zero():
    case = make_case("planted", explain_units=2)
    rep = _explain(case, embed=lambda xs: np.eye(len(xs), 4)).explanations
    # the best verified AUROC first: units 0 then 1
    assert [u.unit for u in rep.units] == [0, 1] and rep.n_requested == 2
    job, result, halves, ex, sample = make_case("planted", explain_units=0)
    assert explain_stage(job, result, halves, ex, sample, FakeBackend(), None) is result
    job, result, halves, ex, _ = make_case("planted")
    out = explain_stage(job, result, [], ex, None, FakeBackend(), None)
    assert out.explanations is None and "no halves" in out.warnings[-1]


def test_a_single_explained_unit_has_no_shuffled_baseline():
    rep = _explain(make_case("planted", explain_units=1), embed=lambda xs: np.eye(len(xs), 4)).explanations
    assert rep.n_explained == 1 and rep.units[0].shuffled_explanation is None
    assert rep.detection.n_units == 1 and rep.detection.difference_ci is None
    assert "no shuffled baseline" in rep.detection.verdict


# --------------------------------------------------------------------------- the scores themselves


def test_detection_score_is_balanced_accuracy_and_leaves_unparsed_answers_out():
    s = detection_score([True, True, False, None, False, False, True], [True, True, True, True, False, False, False])
    assert (s.true_positive_rate, s.true_negative_rate) == (2 / 3, 2 / 3) and s.balanced_accuracy == 2 / 3
    assert (s.n_pos, s.n_neg, s.n_unparsed) == (3, 3, 1)
    # all "yes": chance whatever the class sizes
    assert detection_score([True] * 5, [True, False, False, False, False]).balanced_accuracy == 0.5
    assert detection_score([True, None], [True, False]).balanced_accuracy is None


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, 50).astype(float), rng.random(50) < 0.4
    assert auroc(x, y) == pytest.approx(roc_auc_score(y, x))
    assert auroc(x, np.ones(50, bool)) is None


@pytest.mark.parametrize("n", [2, 3, 7, 20])
def test_derangement_moves_every_unit_and_is_seeded(n):
    p = derangement(n, 5)
    assert sorted(p) == list(range(n)) and not (p == np.arange(n)).any()
    assert (p == derangement(n, 5)).all()
    with pytest.raises(ValueError):
        derangement(1, 0)


def test_summary_says_below_chance_and_not_above_the_shuffled_baseline():
    s = summarise([0.3, 0.4, 0.35, 0.45], [0.5, 0.6, 0.4, 0.55], seed=0)
    assert s.mean == pytest.approx(0.375) and s.shuffled_mean == pytest.approx(0.5125)
    assert s.difference_ci[1] < 0 and s.verdict == "below chance; below the shuffled baseline"
    s = summarise([0.6, 0.5, 0.55], [0.5, 0.6, 0.55], seed=0)
    assert s.verdict == "not above the shuffled baseline"
    s = summarise([0.3, 0.7, 0.45], [0.5, 0.6, 0.4], seed=0)
    assert s.verdict == "below chance (its interval holds 0.5); not above the shuffled baseline"
