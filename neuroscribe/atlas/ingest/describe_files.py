"""Reading a describe result folder's large files fast, with what the atlas uses of them.

* ``descriptions.json`` (``describe_result``): a pydantic dump; a Llama-3.1-8B MLP's is ~700 MB.
  Parsed by pydantic-core (Rust) against a schema of the fields the importer reads, so each unit's
  exemplar counts, consistency, reference labels... are skipped instead of becoming Python objects;
  the rest of the document is kept as it is. Any surprise (a field of another type, text jiter
  refuses) falls back to ``json.loads`` of the whole file, so the result is always what
  ``json.loads`` would give for the fields read.
* ``sentences.jsonl`` (``sentence_records``): row, text and label of each line, the same way.
* ``token_evidence.json`` (``evidence_meta``): each sentence's token spans are kept as the JSON
  text ``json.dumps`` gives them (what the atlas stores), cut from the file's compact text by a
  strict pattern; anything else in that object falls back to ``json.loads`` + ``json.dumps``.
"""

from __future__ import annotations

import gc
import json
import re
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

__all__ = ["describe_result", "sentence_records", "evidence_meta", "paused_gc"]


@contextmanager
def paused_gc():
    """The cyclic garbage collector off while the block runs (process-wide). A large result is
    millions of dicts and lists that live for the whole import: each full collection would walk
    them all again, for nothing (they hold no cycles; reference counting frees them)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _schema():
    from pydantic import ConfigDict, TypeAdapter

    ignore = ConfigDict(extra="ignore")

    class Descriptor(TypedDict, total=False):
        __pydantic_config__ = ignore  # type: ignore[misc]
        descriptor: Any
        count: Any
        f: Any
        base_rate: Any
        enrichment: Any
        p: Any
        q: Any

    class HeldOut(TypedDict, total=False):
        __pydantic_config__ = ignore  # type: ignore[misc]
        descriptor: Any
        auroc: Any
        verified: Any

    class Unit(TypedDict, total=False):
        __pydantic_config__ = ignore  # type: ignore[misc]
        layer: Any
        unit: Any
        descriptors: list[Descriptor] | None
        held_out: list[HeldOut] | None
        status: Any
        max_activation: Any
        firing_density: Any
        quantiles: Any
        exemplars: Any
        activations: Any

    class Result(TypedDict, total=False):
        __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
        units: list[Unit]

    class Sentence(TypedDict, total=False):
        __pydantic_config__ = ignore  # type: ignore[misc]
        row: Any
        text: Any
        label: Any

    return TypeAdapter(Result), TypeAdapter(list[Sentence])


@lru_cache(maxsize=1)
def _adapters():
    return _schema()


def describe_result(path: Path) -> dict | None:
    """``descriptions.json`` with its units reduced to the fields the importer reads; None when the
    fast parse does not apply (the caller reads it with ``json.loads``)."""
    from pydantic import ValidationError

    try:
        data = path.read_bytes()
        with paused_gc():
            out = _adapters()[0].validate_json(data)
    except (OSError, ValidationError, ValueError):
        return None
    return out if isinstance(out.get("units"), list) else None


def sentence_records(path: Path) -> list[dict]:
    """Each line of ``sentences.jsonl`` as {row, text, label} (the keys it has)."""
    from pydantic import ValidationError

    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.split("\n") if ln.strip()]
    try:
        return _adapters()[1].validate_json("[" + ",".join(lines) + "]")
    except (ValidationError, ValueError):
        return [json.loads(ln) for ln in lines]


_SPANS = re.compile(r'"(\d+)":(\[(?:\[-?\d+(?:,-?\d+)*\](?:,\[-?\d+(?:,-?\d+)*\])*)?\])(,|\})')
_KEY = '"sentences":{'


def _cut_spans(text: str) -> tuple[str, dict[str, str]] | None:
    """The file's text with its sentences object emptied, and that object's values as
    ``json.dumps`` text; None unless the object is exactly compact int lists."""
    at = text.find(_KEY)
    if at < 0:
        return None
    start = at + len(_KEY) - 1  # the object's "{"
    if text.startswith("{}", start):
        return text, {}
    spans, pos = {}, start + 1
    for m in _SPANS.finditer(text, pos):
        if m.start() != pos:
            return None
        spans[m.group(1)] = m.group(2).replace(",", ", ")  # json.dumps's separators; only ints inside
        pos = m.end()
        if m.group(3) == "}":
            return text[:start] + "{}" + text[pos:], spans
    return None


def evidence_meta(path: Path) -> tuple[dict, dict[str, str]]:
    """``token_evidence.json`` without its sentences, and each sentence's spans as JSON text."""
    text = path.read_text(encoding="utf-8")
    cut = _cut_spans(text)
    if cut is not None:
        rest = json.loads(cut[0])
        if isinstance(rest, dict) and rest.get("sentences") == {}:
            return rest, cut[1]
    meta = json.loads(text)
    sentences = meta.pop("sentences", None) or {}
    meta["sentences"] = {}
    return meta, {k: json.dumps(v) for k, v in sentences.items() if v is not None}
