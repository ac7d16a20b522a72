"""Sentence datasets: the packaged sentiment file and every format, with the errors a user meets
before any model runs."""

import json
from importlib import resources

import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.datasets import load_dataset


def test_packaged_sentiment_file():
    path = resources.files("neuroscribe").joinpath("data", "amazon_cells_labelled.txt")
    ds = load_dataset(str(path))
    assert len(ds) == 1000 and ds.classes == ("0", "1")
    assert ds.texts[2] == "Great for the jawbone." and ds.labels[2] == "1"
    assert sum(label == "1" for label in ds.labels) == 500


@pytest.mark.parametrize("name, body, kw", [
    ("d.txt", "A good phone.\t1\n\nA bad one.\t0\n", {}),
    ("d.tsv", "text\tlabel\nA good phone.\t1\nA bad one.\t0\n", {"label_col": "label"}),
    ("d.csv", 'sentence,y\n"A good phone.",1\n"A bad one.",0\n', {"text_col": "sentence", "label_col": "y"}),
    ("d.jsonl", json.dumps({"text": "A good phone.", "label": 1}) + "\n" + json.dumps({"text": "A bad one.", "label": 0}),
     {"label_col": "label"}),
])
def test_every_format_gives_the_same_dataset(tmp_path, name, body, kw):
    f = tmp_path / name
    f.write_text(body)
    ds = load_dataset(f, **kw)
    assert ds.texts == ("A good phone.", "A bad one.") and ds.labels == ("1", "0")


def test_unlabelled_text_file(tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text("one sentence\nanother   sentence\n")
    ds = load_dataset(f)
    assert ds.texts == ("one sentence", "another sentence") and ds.labels is None and ds.classes == ()
    with pytest.raises(InvalidInput, match="has no labels") as e:
        load_dataset(f, require_labels=True)
    assert e.value.field == "dataset" and "TEXT<TAB>LABEL" in e.value.message  # a .txt file has no label column


@pytest.mark.parametrize("name, body, kw, field, words", [
    ("empty.txt", "\n\n", {}, "dataset", "no sentences"),
    ("d.csv", "sentence,y\nhello,1\n", {}, "text_col", "columns: sentence, y"),
    ("d.tsv", "text\tlabel\nhello\t1\n", {"label_col": "stars"}, "label_col", "stars"),
    ("one.txt", "good\t1\nfine\t1\n", {}, "label", "single class"),
    ("mixed.txt", "good\t1\nno label here\n", {}, "label", "some rows have a label"),
    ("bad.jsonl", '{"text": "ok", "label": 1}\n{not json\n', {"label_col": "label"}, "bad.jsonl:2", "not JSON"),
    ("d.xlsx", "x", {}, "dataset", "unknown format"),
    ("blank.tsv", "text\tlabel\n \t1\nok\t0\n", {"label_col": "label"}, "blank.tsv:2", "empty text"),
])
def test_bad_datasets_are_clear_errors(tmp_path, name, body, kw, field, words):
    f = tmp_path / name
    f.write_text(body)
    with pytest.raises(InvalidInput) as e:
        load_dataset(f, **kw)
    assert e.value.field.endswith(field) and words in e.value.message


def test_missing_file_or_folder_says_so(tmp_path):
    for path, problem in ((tmp_path / "nope.txt", "does not exist"), (tmp_path / "nope", "does not exist"),
                          (tmp_path, "is a folder")):
        with pytest.raises(InvalidInput) as e:
            load_dataset(path)
        assert e.value.field == "dataset", str(e.value)
        assert e.value.message == f"{str(path)!r} {problem} (give a .txt, .tsv, .csv or .jsonl file)"


@pytest.mark.parametrize("kw, field", [({"text_col": "text"}, "text_col"), ({"label_col": "label"}, "label_col")])
def test_a_column_given_for_a_txt_file_is_an_error(tmp_path, kw, field):
    """A .txt file's columns are fixed (TEXT or TEXT<TAB>LABEL): a column option is not silently ignored."""
    f = tmp_path / "d.txt"
    f.write_text("A good phone.\t1\nA bad one.\t0\n")
    with pytest.raises(InvalidInput) as e:
        load_dataset(f, **kw)
    assert e.value.field == field and e.value.message.startswith(f"{kw[field]!r} is not used by a .txt file")
    assert e.value.message.endswith("remove it")


def test_text_column_defaults_to_text(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"text": "A good phone.", "y": 1}) + "\n" + json.dumps({"text": "A bad one.", "y": 0}))
    assert load_dataset(f).texts == load_dataset(f, text_col="text").texts == ("A good phone.", "A bad one.")
