"""Human alignment (METHODS.md A.5): MEN parsing, pair selection, Spearman against ratings."""

import math
from importlib import resources

import numpy as np
import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.experts.alignment import (
    NO_PAIR,
    WordPair,
    binary_jaccard_similarity,
    compare_alignment,
    cosine_similarity_matrix,
    human_alignment,
    load_word_pairs,
    men_concepts,
    pairs_among,
)

MEN = resources.files("neuroscribe") / "data" / "men"


@pytest.fixture(scope="module")
def men():
    return load_word_pairs()


def test_men_is_packaged_with_licence_and_notice(men):
    for name in ("MEN_dataset_natural_form_full", "licence.txt", "NOTICE.md"):
        assert (MEN / name).is_file(), name
    assert "Bruni" in (MEN / "NOTICE.md").read_text() and "CC BY" in (MEN / "NOTICE.md").read_text()
    assert len(men) == 3000
    assert men[0] == WordPair("sun", "sunlight", 50.0)
    assert all(0.0 <= p.score <= 50.0 for p in men)


def test_load_without_header_pos_suffixes_and_tabs(tmp_path, men):
    lines = (MEN / "MEN_dataset_natural_form_full").read_text().splitlines()
    assert lines[0].split() == ["word1", "word2", "score"]
    (tmp_path / "noheader.txt").write_text("\n".join(lines[1:]) + "\n")
    assert load_word_pairs(tmp_path / "noheader.txt") == men
    (tmp_path / "pos.txt").write_text("# comment\n\nsun-n\tsunlight-n\t50\nrun-v fast-j 12.5\nt-shirt shirt 40\n")
    assert load_word_pairs(str(tmp_path / "pos.txt")) == [
        WordPair("sun", "sunlight", 50.0),
        WordPair("run", "fast", 12.5),
        WordPair("t-shirt", "shirt", 40.0),
    ]


@pytest.mark.parametrize(
    "text, lineno",
    [
        ("word1 word2 score\ncat dog 40\n\ncat mouse\n", 4),  # two fields
        ("cat dog 40\ncat mouse high\n", 2),  # a header is only allowed first
        ("cat dog 40\ncat car 3 4\n", 2),
        ("cat dog nan\n", 1),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, lineno):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(InvalidInput) as e:
        load_word_pairs(path)
    assert e.value.field == f"{path}:{lineno}"


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(InvalidInput, match="cannot read"):
        load_word_pairs(tmp_path / "absent.txt")
    (tmp_path / "h.txt").write_text("word1 word2 score\n")
    with pytest.raises(InvalidInput, match="no word pairs"):
        load_word_pairs(tmp_path / "h.txt")


PAIRS = [
    WordPair("cat", "dog", 40.0),
    WordPair("dog", "car", 10.0),
    WordPair("car", "dog", 11.0),  # the same pair again, reversed: kept once
    WordPair("sun", "moon", 45.0),
    WordPair("cat", "cat", 50.0),
]


def test_pairs_among_case_insensitive_with_skipped_reasons():
    used, skipped = pairs_among(PAIRS, ["Cat", "dog", "CAR", "sun", "zzzq"])
    assert used == [WordPair("Cat", "dog", 40.0), WordPair("dog", "CAR", 10.0)]
    assert dict(skipped) == {"sun": NO_PAIR, "zzzq": f"{NO_PAIR} (not in the word-pair file at all)"}
    assert NO_PAIR == "not in any pair with another requested concept"
    with pytest.raises(InvalidInput) as e:
        pairs_among(PAIRS, ["cat", "Cat"])
    assert e.value.field == "concepts"


def _clique(n=6):
    words = [f"w{i}" for i in range(n)]
    rng = np.random.default_rng(0)
    scores = rng.permutation(len(words) * (len(words) - 1) // 2) * 2.0 + 1.0  # distinct
    pairs = [WordPair(a, b, 0.0) for i, a in enumerate(words) for b in words[i + 1 :]]
    return words, [p._replace(score=float(s)) for p, s in zip(pairs, scores)]


def test_human_alignment_monotone_transform_gives_rho_one():
    words, pairs = _clique()
    human = {frozenset((p.word1, p.word2)): p.score for p in pairs}
    r = human_alignment(lambda a, b: math.exp(human[frozenset((a, b))] / 10), pairs + [WordPair("w0", "x", 3)], words + ["y"])
    assert r.rho == pytest.approx(1.0) and r.p_value < 1e-6 and r.n_pairs == 15
    assert [s.concept for s in r.skipped] == ["y"]
    assert {(w1, w2): h for w1, w2, h, _ in r.table} == {(p.word1, p.word2): p.score for p in pairs}
    # a (names, matrix) tuple, either order; a decreasing transform gives -1
    mat = np.zeros((6, 6))
    for p in pairs:
        i, j = words.index(p.word1), words.index(p.word2)
        mat[i, j] = mat[j, i] = -(p.score**3)
    assert human_alignment((words, mat), pairs, words).rho == pytest.approx(-1.0)
    assert human_alignment((mat, words), pairs, words).rho == pytest.approx(-1.0)
    assert human_alignment((mat, words), pairs, words).to_dict()["table"][0]["model"] == mat[0, 1]
    with pytest.raises(InvalidInput) as e:
        human_alignment((words[:5], mat[:5, :5]), pairs, words)
    assert e.value.field == "similarity" and "'w5'" in str(e.value)


def test_fewer_than_three_pairs_is_an_error_with_the_count():
    with pytest.raises(InvalidInput) as e:
        human_alignment(lambda a, b: 0.0, PAIRS, ["cat", "dog", "car", "sun"])
    assert e.value.field == "concepts"
    assert "only 2 MEN pairs found among the concepts (need >= 3)" in str(e.value)
    with pytest.raises(InvalidInput, match="only 0 MEN pairs"):
        human_alignment(lambda a, b: 0.0, PAIRS, ["zzz", "yyy"])


def test_cosine_and_binary_jaccard_similarity():
    names, s = cosine_similarity_matrix({"a": np.array([1.0, 0.0]), "b": [0.0, 2.0], "c": [3.0, 3.0], "z": [0, 0]})
    assert names == ["a", "b", "c", "z"]
    assert s[0, 1] == 0.0 and s[0, 2] == pytest.approx(1 / math.sqrt(2)) and s[2, 2] == pytest.approx(1.0)
    assert np.isnan(s[3]).all()  # a zero vector has no direction
    with pytest.raises(InvalidInput):
        cosine_similarity_matrix({"a": [1.0, 0.0], "b": [1.0]})
    ind = {"a": np.array([1, 1, 0, 0], bool), "b": np.array([0, 1, 1, 0], bool), "c": np.zeros(4, bool)}
    n1, j1 = binary_jaccard_similarity(ind)
    n2, j2 = binary_jaccard_similarity({"a": {0, 1}, "b": {1, 2}, "c": set()})
    assert n1 == n2 and j1[0, 1] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(j1, j2)


def test_undefined_similarity_drops_the_pair_and_compare_uses_same_pairs():
    words, pairs = _clique()
    vectors = {w: np.array([1.0, i]) for i, w in enumerate(words)}
    vectors["w5"] = np.zeros(2)  # its 5 pairs have no cosine
    r = human_alignment(cosine_similarity_matrix(vectors), pairs, words)
    assert r.n_pairs == 10 and len(r.dropped_pairs) == 5 and all("undefined" in d[2] for d in r.dropped_pairs)

    human = {frozenset((p.word1, p.word2)): p.score for p in pairs}
    experts = lambda a, b: human[frozenset((a, b))]  # noqa: E731
    baseline = lambda a, b: float("nan") if "w0" in (a, b) else -human[frozenset((a, b))]  # noqa: E731
    out = compare_alignment(experts, baseline, pairs, words)
    assert out["n_pairs"] == 10 and len(out["table"]) == 10  # the 5 pairs with w0 dropped for both
    assert out["experts"]["rho"] == pytest.approx(1.0) and out["baseline"]["rho"] == pytest.approx(-1.0)
    assert {"word1", "word2", "human", "experts", "baseline"} == set(out["table"][0])


def test_men_concepts_share_many_pairs(men):
    chosen = men_concepts(men, 20, seed=0)
    assert len(chosen) == len(set(chosen)) == 20 and chosen == sorted(chosen)
    assert chosen == men_concepts(men, 20, seed=0)  # deterministic
    used, skipped = pairs_among(men, chosen)
    assert len(used) >= 100 and not skipped  # measured: 129 of the 190 possible pairs
    r = human_alignment(lambda a, b: 0.0 if a < b else 1.0, men, chosen)
    assert r.n_pairs == len(used)
    assert len(pairs_among(men, men_concepts(men, 5, seed=1))[0]) >= 3
    # the swap search pays off on larger sets: greedy growth alone finds 299 pairs among 50 words
    assert len(pairs_among(men, men_concepts(men, 50, seed=0))[0]) >= 310  # measured: 322
    with pytest.raises(InvalidInput) as e:
        men_concepts(men, 10_000, seed=0)
    assert e.value.field == "n"
