"""Labelled attribute data for neuron rankings (docs/methods.md#c), and the responses ranked.

``load_attribute_data(path, text_col=, label_col=, word_col=)`` -> ``AttributeDataSpec``
    The rows come from ``datasets.load_dataset`` (txt with ``TEXT<TAB>LABEL``, tsv, csv, jsonl);
    labels are required. ``text_col`` / ``label_col`` default to ``text`` / ``label`` (tsv / csv /
    jsonl). ``word_col`` (tsv / csv / jsonl only) names a column with the target word of each text
    (0-based index into ``text.split()``): a token-level attribute. The packaged name ``amazon``
    (when no such file exists) is the Amazon sentiment sentences (labels ``"0"`` / ``"1"``). A .txt
    file and a packaged dataset have fixed columns: any column given for them is an error.
    Every error is an ``InvalidInput`` whose field names what is wrong: ``dataset`` (missing,
    unreadable, empty file), ``text_col`` / ``label_col`` / ``word_col`` (a column that is missing,
    holds something unusable (the row is named ``FILE:LINE``) or is not used), ``labels`` (one class, classes with
    fewer than ``MIN_PER_CLASS`` examples, rows with and without a label), ``word_index`` (a target
    word outside its sentence), ``texts``.

``attribute_responses(subject, data, layer, site=, pooling=, ...)`` -> ``(n, units)`` float32
    Sentence level (no ``word_index``): the pooled responses of ``capture_responses`` (float16
    there, widened to float32). Token level: the site's value at the *first sub-token* of the target
    word, one forward pass per right-padded batch (longest first), rows in input order; ``pooling``
    is then unused.

How a whitespace word is found among the tokens: the text is tokenized exactly as
``capture_responses`` tokenizes it (same ids, specials, truncation), with the fast tokenizer's
character offsets; the word's first sub-token is the first non-special token whose character span
overlaps the word's span in the text. Tokenizing ``text.split()`` with ``is_split_into_words=True``
and reading ``word_ids()`` was not chosen: byte-level BPE tokenizers (GPT-2, GPT-NeoX) need
``add_prefix_space`` for it and then tokenize the first word differently from the running text
(with a leading space), so the values would not be the ones the model sees for the sentence.
A slow tokenizer (no offsets) is refused.
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from pydantic import ValidationError
from tqdm.auto import tqdm

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs.rank import AttributeDataSpec
from neuroscribe.workers.activations.capture import Tokenized, capture_responses, iter_batches
from neuroscribe.workers.activations.hooks import SiteHooks
from neuroscribe.workers.activations.loading import SubjectModel
from neuroscribe.workers.activations.pooling import check_pooling
from neuroscribe.workers.activations.sites import get_site
from neuroscribe.workers.datasets import FORMATS, check_dataset_file, load_dataset
from neuroscribe.workers.textfiles import read_lines

__all__ = ["PACKAGED_ATTRIBUTES", "load_attribute_data", "attribute_responses", "word_spans",
           "first_token_positions"]

PACKAGED_ATTRIBUTES = {"amazon": "amazon_cells_labelled.txt"}

_SPEC_FIELDS = tuple(AttributeDataSpec.model_fields)


# --------------------------------------------------------------------------------------- loading


def _word_column(path: Path, word_col: str) -> list[tuple[str, object]]:
    """``(where, raw value)`` of ``word_col`` per row, in the rows' order as ``load_dataset`` reads them."""
    suffix = path.suffix.lower()
    lines = read_lines(path)
    out: list[tuple[str, object]] = []
    if suffix == ".jsonl":
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            obj = json.loads(line)  # load_dataset has checked every line is a JSON object
            if word_col not in obj:
                raise InvalidInput("word_col", f"{path}:{i} has no key {word_col!r} (keys: {', '.join(obj)})")
            out.append((f"{path}:{i}", obj[word_col]))
        return out
    reader = csv.DictReader(lines, delimiter="\t" if suffix == ".tsv" else ",")
    cols = reader.fieldnames or []
    if word_col not in cols:
        raise InvalidInput("word_col", f"{path} has no column {word_col!r} (columns: {', '.join(cols)})")
    for row in reader:
        out.append((f"{path}:{reader.line_num}", row[word_col]))
    return out


def _parse_index(value: object, where: str, word_col: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InvalidInput("word_col", f"{where}: {word_col} {value!r} is not an integer word index "
                                   "(0-based, whitespace words)")


def _spec_error(e: ValidationError) -> InvalidInput:
    """The first pydantic error as ``InvalidInput``, its field the spec field the message starts with."""
    err = e.errors()[0]
    cause = (err.get("ctx") or {}).get("error")
    msg = str(cause) if cause is not None else str(err.get("msg", e))
    head, sep, rest = msg.partition(": ")
    if sep and head in _SPEC_FIELDS:
        return InvalidInput(head, rest)
    loc = err.get("loc") or ()
    field = str(loc[0]) if loc else "dataset"
    return InvalidInput(field, msg)


def _packaged(path: str | Path) -> str | None:
    name = str(path)
    return PACKAGED_ATTRIBUTES.get(name) if not Path(name).exists() else None


def load_attribute_data(path: str | Path, *, text_col: str | None = None, label_col: str | None = None,
                        word_col: str | None = None) -> AttributeDataSpec:
    """Labelled examples from ``path`` (or the packaged ``amazon``), as an ``AttributeDataSpec``
    named after the file. ``word_col`` makes it a token-level attribute (target word per text).
    A column left None is "not given": ``text`` / ``label`` for tables, nothing for fixed formats."""
    packaged = _packaged(path)
    if packaged is not None:
        for field, value, fixed in (("text_col", text_col, "its sentences are fixed"),
                                    ("label_col", label_col, "its labels are fixed"),
                                    ("word_col", word_col, "it has no target words")):
            if value is not None:
                raise InvalidInput(field, f"{value!r} is not used by the packaged dataset {str(path)!r} ({fixed}); "
                                          "remove it")
        with resources.as_file(resources.files("neuroscribe") / "data" / packaged) as p:
            return _load(Path(p), None, None, None)
    path = check_dataset_file(path, packaged=tuple(PACKAGED_ATTRIBUTES))
    suffix = path.suffix.lower()
    if suffix == ".txt" and word_col is not None:
        raise InvalidInput("word_col", f"{word_col!r} is not used by a .txt file ({path.name}: no columns); give "
                                       "the target words in a .tsv, .csv or .jsonl file, or remove it")
    if suffix in FORMATS and suffix != ".txt" and label_col is None:
        label_col = "label"
    return _load(path, text_col, label_col, word_col)


def _load(path: Path, text_col: str | None, label_col: str | None, word_col: str | None) -> AttributeDataSpec:
    try:
        ds = load_dataset(path, text_col=text_col, label_col=label_col, require_labels=True)
    except InvalidInput as e:
        if e.field == "label":  # a single class / rows with and without a label: the spec's field
            raise InvalidInput("labels", e.message) from None
        raise
    word_index = None
    if word_col is not None:
        raw = _word_column(path, word_col)
        if len(raw) != len(ds.texts):  # cannot happen while both read the file alike
            raise RuntimeError(f"{path}: {len(raw)} values of {word_col!r} for {len(ds.texts)} texts")
        word_index = tuple(_parse_index(v, where, word_col) for where, v in raw)
    try:
        return AttributeDataSpec(name=path.name, texts=tuple(ds.texts), labels=tuple(ds.labels),
                                 word_index=word_index)
    except ValidationError as e:
        raise _spec_error(e) from None


# ------------------------------------------------------------------------------------- responses


def word_spans(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` character span of each word of ``text.split()``."""
    spans, start = [], None
    for i, ch in enumerate(text):
        if ch.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _first_overlap(offsets, special, span: tuple[int, int]) -> int | None:
    ws, we = span
    for j, ((a, b), sp) in enumerate(zip(offsets, special)):
        if not sp and a < we and b > ws:
            return j
    return None


def first_token_positions(tokenizer, texts: Sequence[str], word_index: Sequence[int], max_length: int
                          ) -> tuple[Tokenized, np.ndarray]:
    """Tokenize like ``capture_responses`` (truncated to ``max_length``) and find, per text, the
    position of the first sub-token of whitespace word ``word_index[i]``.
    ``InvalidInput("word_index")`` names a row whose word is cut off (or has no token at all)."""
    if not getattr(tokenizer, "is_fast", False):
        raise InvalidInput("model", "a token-level attribute needs a fast tokenizer (character offsets); "
                                    f"{type(tokenizer).__name__} is not one")
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False,
                    return_special_tokens_mask=True, return_offsets_mapping=True,
                    return_attention_mask=False, return_token_type_ids=False)
    positions = np.empty(len(texts), dtype=np.int64)
    for i, (text, w) in enumerate(zip(texts, word_index)):
        spans = word_spans(text)
        if not 0 <= w < len(spans):
            raise InvalidInput("word_index", f"{w} is outside sentence {i} ({len(spans)} words)")
        pos = _first_overlap(enc["offset_mapping"][i], enc["special_tokens_mask"][i], spans[w])
        if pos is None:
            full = tokenizer(text, truncation=False, return_special_tokens_mask=True,
                             return_offsets_mapping=True, verbose=False)
            word = text[spans[w][0]:spans[w][1]]
            if _first_overlap(full["offset_mapping"], full["special_tokens_mask"], spans[w]) is not None:
                raise InvalidInput("word_index", f"sentence {i}: word {w} ({word!r}) is cut off by "
                                                 f"max_length={max_length} tokens; raise max_length or "
                                                 "shorten the sentence")
            raise InvalidInput("word_index", f"sentence {i}: word {w} ({word!r}) has no token")
        positions[i] = pos
    lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(texts))
    total = int(lengths.sum())
    ids = np.fromiter((t for x in enc["input_ids"] for t in x), dtype=np.int64, count=total)
    special = np.fromiter((t for x in enc["special_tokens_mask"] for t in x), dtype=np.int64, count=total)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return Tokenized(ids, special, lengths, offsets), positions


def _check_layer(layer, n_layers: int) -> int:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise InvalidInput("layer", f"layer {layer!r} is not an integer")
    if not 0 <= int(layer) < n_layers:
        raise InvalidInput("layer", f"layer {layer} out of range 0..{n_layers - 1}")
    return int(layer)


def attribute_responses(subject: SubjectModel, data: AttributeDataSpec, layer: int, *, site: str = "mlp_post",
                        pooling: str = "mean", batch_size: int = 32, max_length: int = 128,
                        progress: bool = False) -> np.ndarray:
    """``(n, units)`` float32 responses of ``site`` at ``layer`` per example, rows in input order:
    pooled over the sentence, or at the target word's first sub-token (token-level data)."""
    layer = _check_layer(layer, subject.n_layers)
    texts = list(data.texts)
    if data.word_index is None:
        r = capture_responses(subject, texts, site=site, pooling=pooling, layers=[layer], batch_size=batch_size,
                              max_length=max_length, progress=progress)
        return r.arrays[layer].astype(np.float32)
    s = get_site(subject.model_type, site)
    check_pooling(pooling)
    if int(batch_size) < 1:
        raise InvalidInput("batch_size", f"batch_size must be >= 1, got {batch_size}")
    if int(max_length) < 2:
        raise InvalidInput("max_length", f"max_length must be >= 2, got {max_length}")
    tok, positions = first_token_positions(subject.tokenizer, texts, data.word_index, int(max_length))
    pad = subject.tokenizer.pad_token_id
    batches = iter_batches(tok, int(batch_size), sort_by_length=True, pad_id=0 if pad is None else int(pad),
                           device=subject.device)
    n = len(texts)
    out: np.ndarray | None = None
    state: dict = {}

    def on_value(_layer: int, values: torch.Tensor) -> None:
        state["picked"] = values[state["rows"], state["pos"]].float()

    with torch.inference_mode(), SiteHooks(subject.model, s, [layer], on_value) as hooks, \
            tqdm(total=n, desc=f"{s.name} ({subject.model_type}), target words", unit="sent",
                 disable=not progress, leave=False) as bar:
        for batch in batches:
            state["rows"] = torch.arange(len(batch.rows), device=subject.device)
            state["pos"] = torch.from_numpy(positions[batch.rows]).to(subject.device)
            state.pop("picked", None)
            hooks.run(**batch.model_inputs())
            picked = state["picked"].cpu().numpy()
            if out is None:
                out = np.empty((n, picked.shape[1]), dtype=np.float32)
            out[batch.rows] = picked
            bar.update(len(batch.rows))
    assert out is not None
    return out
