"""Sentence datasets for describe (and, later, rank) jobs: one text per row, an optional label.

Formats, by file suffix:
* ``.txt``: one sentence per line; a line ``TEXT<TAB>LABEL`` carries a label (the UCI sentiment
  files: ``neuroscribe/data/amazon_cells_labelled.txt``). Blank lines are skipped.
  Its columns are fixed: a ``text_col`` or ``label_col`` given for it is an error (``None`` is
  "not given").
* ``.tsv`` / ``.csv``: a header row; the text column is named by ``text_col`` (default ``text``),
  the label column by ``label_col`` (optional).
* ``.jsonl``: one JSON object per line with those keys.

Errors (``InvalidInput``, before any model runs): a file that does not exist (or is a folder), an
unreadable file, an unknown format, a column option the format does not use, an empty dataset, a
missing text column (the columns found are listed), a malformed row (named ``FILE:LINE``), an
empty text, and a label column with a single class.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.textfiles import read_lines

__all__ = ["Dataset", "load_dataset", "check_dataset_file", "FORMATS"]

FORMATS = (".txt", ".tsv", ".csv", ".jsonl")


@dataclass(frozen=True)
class Dataset:
    texts: tuple[str, ...]
    labels: tuple[str, ...] | None  # as strings ("0", "1", "positive"...), or None without a label column
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.labels))) if self.labels is not None else ()


def _text(value, where: str) -> str:
    text = " ".join(str(value).split()) if value is not None else ""
    if not text:
        raise InvalidInput(where, "empty text")
    return text


def _rows_txt(path: Path, lines: list[str]):
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        text, tab, label = line.rstrip("\n").rpartition("\t")
        if tab:
            yield i, text, label.strip()
        else:
            yield i, line, None


def _rows_table(path: Path, lines: list[str], text_col: str, label_col: str | None, delimiter: str):
    reader = csv.DictReader(lines, delimiter=delimiter)
    cols = reader.fieldnames or []
    if text_col not in cols:
        raise InvalidInput("text_col", f"{path} has no column {text_col!r} (columns: {', '.join(cols) or 'none'})")
    if label_col is not None and label_col not in cols:
        raise InvalidInput("label_col", f"{path} has no column {label_col!r} (columns: {', '.join(cols)})")
    for row in reader:
        if None in row:
            raise InvalidInput(f"{path}:{reader.line_num}", "more fields than the header has")
        yield reader.line_num, row[text_col], row[label_col] if label_col else None


def _rows_jsonl(path: Path, lines: list[str], text_col: str, label_col: str | None):
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"{path}:{i}", f"not JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise InvalidInput(f"{path}:{i}", "expected a JSON object")
        if text_col not in obj:
            raise InvalidInput("text_col", f"{path}:{i} has no key {text_col!r} (keys: {', '.join(obj)})")
        if label_col is not None and label_col not in obj:
            raise InvalidInput("label_col", f"{path}:{i} has no key {label_col!r} (keys: {', '.join(obj)})")
        yield i, obj[text_col], obj[label_col] if label_col else None


def check_dataset_file(path: str | Path, *, packaged: tuple[str, ...] = ()) -> Path:
    """``path`` as a ``Path`` when it is a file; else ``InvalidInput("dataset")`` saying that it does
    not exist (or is a folder) and what to give instead (the formats, and the ``packaged`` names)."""
    path = Path(path)
    if path.is_file():
        return path
    formats = ", ".join(FORMATS[:-1]) + f" or {FORMATS[-1]}"
    names = "".join(f", or {n!r}" for n in packaged)
    problem = "is a folder" if path.is_dir() else "does not exist"
    raise InvalidInput("dataset", f"{str(path)!r} {problem} (give a {formats} file{names})")


def load_dataset(path: str | Path, *, text_col: str | None = None, label_col: str | None = None,
                 require_labels: bool = False) -> Dataset:
    """Read ``path``; ``label_col`` (tables / jsonl) or a TAB-separated label (txt) gives labels.
    ``text_col`` defaults to ``text`` for tables / jsonl; a .txt file takes neither column."""
    path = check_dataset_file(path)
    if path.suffix.lower() not in FORMATS:
        raise InvalidInput("dataset", f"{path}: unknown format {path.suffix!r} (expected {', '.join(FORMATS)})")
    if path.suffix.lower() == ".txt":
        for field, value in (("text_col", text_col), ("label_col", label_col)):
            if value is not None:
                raise InvalidInput(field, f"{value!r} is not used by a .txt file ({path.name}: one sentence per line, "
                                          "'TEXT<TAB>LABEL' for a labelled one; no columns); remove it")
    text_col = "text" if text_col is None else text_col
    try:
        lines = read_lines(path)
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput("dataset", f"cannot read {path}: {e}") from None
    if not any(line.strip() for line in lines):
        raise InvalidInput("dataset", f"{path} is empty: no sentences")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        rows = _rows_txt(path, lines)
    elif suffix == ".jsonl":
        rows = _rows_jsonl(path, lines, text_col, label_col)
    else:
        rows = _rows_table(path, lines, text_col, label_col, "\t" if suffix == ".tsv" else ",")
    texts, labels = [], []
    for line, text, label in rows:
        texts.append(_text(text, f"{path}:{line}"))
        labels.append(None if label is None or str(label).strip() == "" else str(label).strip())
    if not texts:
        raise InvalidInput("dataset", f"{path} holds no sentences")
    have = [x is not None for x in labels]
    if any(have) and not all(have):
        first = have.index(False) if have[0] else have.index(True)
        raise InvalidInput("label", f"{path}: some rows have a label and some do not (first differing row: "
                                    f"{first + 1})")
    out = tuple(labels) if all(have) else None
    if out is not None and len(set(out)) < 2:
        raise InvalidInput("label", f"{path}: the label column has a single class ({out[0]!r}); "
                                    "precision@K / recall@K need at least two")
    if require_labels and out is None:
        if suffix == ".txt":
            raise InvalidInput("dataset", f"{path} has no labels (a labelled line is 'TEXT<TAB>LABEL')")
        raise InvalidInput("label_col", f"{path} has no labels (name the label column)")
    return Dataset(tuple(texts), out, str(path))
