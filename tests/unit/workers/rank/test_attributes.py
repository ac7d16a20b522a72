"""Attribute data (tsv / csv / jsonl / txt, packaged amazon) and the responses a ranking ranks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs.rank import AttributeDataSpec
from neuroscribe.workers.activations import capture_responses
from neuroscribe.workers.activations.capture import token_values
from neuroscribe.workers.rank.attributes import attribute_responses, load_attribute_data, word_spans
from tiny_models import tiny_subject

# 6 + 6 examples; the target word is the noun after "the"/"my" (word 1) or later
ROWS = [
    ("the cat is good", "1", 1),
    ("my dog was great !", "1", 1),
    ("this phone works very well", "1", 1),
    ("i love the guitar", "1", 3),
    ("the screen is excellent", "1", 1),
    ("the sound quality is really good", "1", 2),
    ("the bus was bad", "0", 1),
    ("my battery broke after a week", "0", 1),
    ("i hate this headset", "0", 3),
    ("the case is poor", "0", 1),
    ("that product was terrible , i hate it", "0", 1),
    ("the price is too bad", "0", 1),
]


def write(path, rows, fmt, *, word=True, header=("text", "label", "word")):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(dict(zip(header, r if word else r[:2]))) + "\n" for r in rows))
    else:
        sep = "\t" if fmt == "tsv" else ","
        cols = header if word else header[:2]
        lines = [sep.join(cols)] + [sep.join(str(x) for x in (r if word else r[:2])) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    return path


def raises(field, fn, *a, **kw) -> InvalidInput:
    with pytest.raises(InvalidInput) as e:
        fn(*a, **kw)
    assert e.value.field == field, str(e.value)
    return e.value


# rows without commas (csv)
PLAIN = [r for r in ROWS if "," not in r[0]] + [("the cat was poor", "0", 1)]


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_load_with_and_without_word_column(tmp_path, fmt):
    rows = PLAIN
    p = write(tmp_path / f"d.{fmt}", rows, fmt)
    spec = load_attribute_data(p, word_col="word")
    assert isinstance(spec, AttributeDataSpec)
    assert spec.name == f"d.{fmt}"
    assert spec.texts == tuple(r[0] for r in rows)
    assert spec.labels == tuple(r[1] for r in rows)
    assert spec.word_index == tuple(r[2] for r in rows)
    plain = load_attribute_data(p)
    assert plain.word_index is None and plain.texts == spec.texts and plain.labels == spec.labels
    p2 = write(tmp_path / f"e.{fmt}", rows, fmt, word=False, header=("sentence", "y"))
    other = load_attribute_data(p2, text_col="sentence", label_col="y")
    assert other.texts == spec.texts and other.word_index is None
    raises("word_col", load_attribute_data, p2, text_col="sentence", label_col="y", word_col="word")


def test_txt_and_packaged_amazon(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("".join(f"{t}\t{y}\n" for t, y, _ in ROWS))
    spec = load_attribute_data(p)
    assert len(spec.texts) == 12 and spec.class_counts() == {"0": 6, "1": 6}
    raises("word_col", load_attribute_data, p, word_col="word")
    amazon = load_attribute_data("amazon")
    assert len(amazon.texts) == 1000 and set(amazon.labels) == {"0", "1"} and amazon.word_index is None


def test_bad_inputs_name_their_field(tmp_path):
    # no label column / no labels at all
    raises("label_col", load_attribute_data, write(tmp_path / "a.csv", PLAIN, "csv", word=False,
                                                   header=("text", "other")))
    nolab = tmp_path / "n.txt"
    nolab.write_text("".join(f"{t}\n" for t, _, _ in ROWS))
    e = raises("dataset", load_attribute_data, nolab)  # a .txt file has no label column to name
    assert "TEXT<TAB>LABEL" in e.message
    # one class
    raises("labels", load_attribute_data, write(tmp_path / "b.tsv", [(t, "1", w) for t, _, w in ROWS], "tsv"))
    # a class with 3 examples
    rows = ROWS[:6] + [(t, "x", w) for t, _, w in ROWS[6:9]]
    e = raises("labels", load_attribute_data, write(tmp_path / "c.tsv", rows, "tsv"))
    assert "'x' has 3" in e.message and "'1'" not in e.message
    # a word index that is not an integer: the row is named
    rows = list(ROWS)
    rows[4] = (rows[4][0], rows[4][1], "two")
    for fmt, line in (("tsv", 6), ("jsonl", 5)):  # the tsv has a header line
        e = raises("word_col", load_attribute_data, write(tmp_path / f"d.{fmt}", rows, fmt), word_col="word")
        assert f"d.{fmt}:{line}:" in e.message and "'two'" in e.message
    rows[4] = (rows[4][0], rows[4][1], 1.5)
    raises("word_col", load_attribute_data, write(tmp_path / "f.jsonl", rows, "jsonl"), word_col="word")
    # a word index outside its sentence (4 words: 0..3)
    rows = list(ROWS)
    rows[0] = (rows[0][0], rows[0][1], 4)
    e = raises("word_index", load_attribute_data, write(tmp_path / "g.tsv", rows, "tsv"), word_col="word")
    assert "sentence 0" in e.message
    rows[0] = (rows[0][0], rows[0][1], -1)
    raises("word_index", load_attribute_data, write(tmp_path / "h.jsonl", rows, "jsonl"), word_col="word")
    # empty file, missing file, missing word column
    (tmp_path / "empty.tsv").write_text("")
    raises("dataset", load_attribute_data, tmp_path / "empty.tsv")
    e = raises("dataset", load_attribute_data, tmp_path / "missing.tsv")
    assert e.message == f"{str(tmp_path / 'missing.tsv')!r} does not exist (give a .txt, .tsv, .csv or .jsonl file, or 'amazon')"
    raises("word_col", load_attribute_data, write(tmp_path / "i.tsv", ROWS, "tsv"), word_col="target")


@pytest.mark.parametrize("kw", [{"text_col": "review"}, {"label_col": "stars"}, {"word_col": "word"}])
def test_columns_given_for_fixed_formats_are_errors(tmp_path, kw):
    """The packaged amazon and a .txt file have fixed columns: a column option is refused, not ignored."""
    (field, value), = kw.items()
    e = raises(field, load_attribute_data, "amazon", **kw)
    assert e.message.startswith(f"{value!r} is not used by the packaged dataset 'amazon' (") and "remove it" in e.message
    p = tmp_path / "s.txt"
    p.write_text("".join(f"{t}\t{y}\n" for t, y, _ in ROWS))
    e = raises(field, load_attribute_data, p, **kw)
    assert e.message.startswith(f"{value!r} is not used by a .txt file")


def test_columns_default_to_text_and_label(tmp_path):
    p = write(tmp_path / "d.tsv", PLAIN, "tsv")
    assert load_attribute_data(p) == load_attribute_data(p, text_col="text", label_col="label")


def spec(word_index=True) -> AttributeDataSpec:
    return AttributeDataSpec(name="t", texts=tuple(r[0] for r in ROWS), labels=tuple(r[1] for r in ROWS),
                             word_index=tuple(r[2] for r in ROWS) if word_index else None)


@pytest.mark.parametrize("arch", ["bert", "gpt_neox"])
def test_sentence_level_equals_capture(arch):
    s, data = tiny_subject(arch), spec(False)
    for layer in (0, 1):
        got = attribute_responses(s, data, layer, pooling="mean", batch_size=5)
        want = capture_responses(s, list(data.texts), pooling="mean", layers=[layer], progress=False)
        assert got.dtype == np.float32 and got.shape == (12, 37)
        # float16 responses: another batch size pads differently, which may move a value by one float16 step
        np.testing.assert_allclose(got, want.arrays[layer].astype(np.float32), rtol=2 ** -10, atol=1e-4)
    raises("layer", attribute_responses, s, data, 2)
    raises("layer", attribute_responses, s, data, -1)


@pytest.mark.parametrize("arch,shift", [("bert", 1), ("gpt_neox", 0)])
def test_token_level_is_the_first_token_of_the_word(arch, shift):
    s, data = tiny_subject(arch), spec()
    values, _, _ = token_values(s, list(data.texts), layers=[0, 1])
    for layer in (0, 1):
        got = attribute_responses(s, data, layer, batch_size=5)  # batches smaller than n, longest first
        assert got.dtype == np.float32 and got.shape == (12, 37)
        # the tiny tokenizers give one token per word here; BERT's [CLS] shifts positions by one
        want = np.stack([values[layer][i, w + shift].numpy() for i, w in enumerate(data.word_index)])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert not np.allclose(got[0], got[1], atol=1e-3)
    # input order: reversed input, reversed rows
    rev = AttributeDataSpec(name="r", texts=data.texts[::-1], labels=data.labels[::-1],
                            word_index=data.word_index[::-1])
    np.testing.assert_allclose(attribute_responses(s, rev, 1, batch_size=4)[::-1],
                               attribute_responses(s, data, 1, batch_size=32), rtol=1e-5, atol=1e-5)


def test_token_level_word_split_into_sub_tokens():
    # the word-level tiny tokenizer splits "great!" into "great" "!": its first sub-token is "great";
    # "cat," (word 1) -> "cat"; after a split word the positions shift
    s = tiny_subject("gpt_neox")
    texts = ["the cat, is great!", "my dog is great! really"] * 3 + ["the bus was bad", "the case is poor"] * 3
    widx = [3, 4] * 3 + [1, 3] * 3
    data = AttributeDataSpec(name="t", texts=tuple(texts), labels=("1",) * 6 + ("0",) * 6, word_index=tuple(widx))
    values, _, _ = token_values(s, texts, layers=[0])
    got = attribute_responses(s, data, 0, batch_size=3)
    pos = [4, 5] * 3 + [1, 3] * 3  # "the cat , is great !" -> great at 4; "my dog is great ! really" -> really at 5
    want = np.stack([values[0][i, p].numpy() for i, p in enumerate(pos)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_token_level_word_cut_off_by_max_length():
    s, data = tiny_subject("bert"), spec()
    # max_length 5 keeps [CLS] + 3 words + [SEP]: sentence 3's word 3 ("guitar") is cut off
    e = raises("word_index", attribute_responses, s, data, 0, max_length=5)
    assert "sentence 3" in e.message and "max_length" in e.message
    attribute_responses(s, data, 0, max_length=6)  # fits


def test_word_spans_match_split():
    text = "  the\tcat \n is  good "
    assert [text[a:b] for a, b in word_spans(text)] == text.split()
