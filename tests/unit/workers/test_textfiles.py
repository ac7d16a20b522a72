"""Lines are split at \\n only: U+0085 (NEL), U+2028 and form feeds inside a sentence stay in it, for
every format a user file can have (the reproducer of the descriptions issue among them)."""

import json

import pytest

from neuroscribe.workers.datasets import load_dataset
from neuroscribe.workers.experts.sentences import load_sentences_jsonl
from neuroscribe.workers.textfiles import read_lines, split_lines

NEL, LS = "\u0085", "\u2028"


def test_split_lines_only_at_newlines():
    assert split_lines(f"a{NEL}b\r\nc{LS}d\ne\x0cf\n") == [f"a{NEL}b", f"c{LS}d", "e\x0cf"]
    assert split_lines("") == [] and split_lines("x") == ["x"] and split_lines("x\n\ny\n") == ["x", "", "y"]


def test_the_reported_labelled_txt_loads(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes(b"good film\t1\nbad\xc2\x85film\t0\nok\t1\nawful\t0\n")
    ds = load_dataset(p)
    assert ds.texts[1] == "bad film"  # one sentence; its whitespace (NEL included) normalised to a space
    assert len(ds.texts) == 4 and ds.labels == ("1", "0", "1", "0")


def test_an_unlabelled_txt_is_not_split_mid_sentence(tmp_path):
    p = tmp_path / "u.txt"
    p.write_text(f"first{NEL}half of one sentence\nsecond sentence\n", encoding="utf-8")
    assert len(load_dataset(p).texts) == 2


@pytest.mark.parametrize("suffix,body", [
    (".jsonl", "\n".join(json.dumps({"text": t, "label": l}, ensure_ascii=False)
                         for t, l in [(f"bad{NEL}film", "0"), ("good", "1"), (f"fine{LS}ok", "1")]) + "\n"),
    (".tsv", f"text\tlabel\nbad{NEL}film\t0\ngood\t1\nfine{LS}ok\t1\n"),
    (".csv", f"text,label\nbad{NEL}film,0\ngood,1\nfine{LS}ok,1\n"),
])
def test_tables_and_jsonl_keep_separators_inside_a_row(tmp_path, suffix, body):
    p = tmp_path / f"d{suffix}"
    p.write_text(body, encoding="utf-8")
    ds = load_dataset(p, label_col="label")
    assert len(ds.texts) == 3 and ds.labels == ("0", "1", "1")


def test_concept_sentences_jsonl_with_a_raw_nel(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"text": f"A cat{NEL}sleeps on the mat.", "concept": "cat", "label": 1},
        {"text": "The bus is late.", "concept": "cat", "label": 0}]) + "\n", encoding="utf-8")
    recs = load_sentences_jsonl(p)
    assert len(recs) == 2 and NEL in recs[0].text


def test_rank_attribute_file_with_a_raw_nel(tmp_path):
    from neuroscribe.workers.rank.attributes import load_attribute_data

    rows = [(f"great{NEL}phone", "1"), ("bad", "0")] * 6
    p = tmp_path / "a.tsv"
    p.write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
    data = load_attribute_data(p, label_col="label")
    assert len(data.texts) == 12


def test_read_lines_reads_a_file(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text(f"a{NEL}b\nc\n", encoding="utf-8")
    assert read_lines(p) == [f"a{NEL}b", "c"]
