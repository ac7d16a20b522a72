"""Concept data (docs/methods.md#a1): generated positive / negative sentences, or a user's file.

``generate_concept_sentences`` asks an LLM backend for sentences in rounds. Each (concept,
polarity, style) slot has a target (positives split between fact and story, fact taking the odd
one; negatives likewise). A round sends every unfinished slot of every concept in ONE
``backend.generate`` call; completions are parsed, filtered (length band, duplicates across the
concept's positives and negatives, negatives that mention the concept) and kept until the slot
is full. Every drop is counted per concept; whatever is still missing after ``max_rounds`` is
recorded as ``shortfall``. Request seeds come from SHA-256 of (seed, concept, polarity, style,
round, part), so a run is reproducible and no two requests share a seed by construction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import SamplingSpec, SentenceRecord
from neuroscribe.prompts import POLARITIES, PROMPT_VERSION, STYLES, build_concept_messages, parse_list
from neuroscribe.workers.generate import GenerationRequest
from neuroscribe.workers.experts.sentence_filters import mentions_concept, normalise, word_count
from neuroscribe.workers.textfiles import read_lines

__all__ = [
    "SentenceSet",
    "DROP_REASONS",
    "generate_concept_sentences",
    "mentions_concept",
    "normalise",
    "load_sentences_jsonl",
]

LABELS = {"pos": 1, "neg": 0}
# every key of a concept's drops, in report order ("generated" and "kept" are counts, not drops)
DROP_REASONS = (
    "generated", "kept", "unparsable", "too_short", "too_long", "duplicate", "mentions_concept",
    "surplus", "shortfall",
)


@dataclass
class SentenceSet:
    records: list[SentenceRecord]
    drops: dict[str, dict[str, int]]  # concept -> reason -> count (keys: DROP_REASONS)


@dataclass
class _Slot:
    concept: str
    polarity: str
    style: str
    target: int
    kept: list[SentenceRecord] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return self.target - len(self.kept)


def request_seed(seed: int, concept: str, polarity: str, style: str, round_: int, part: int = 0) -> int:
    """A 31-bit seed for one request, stable across processes and platforms (not ``hash``)."""
    key = json.dumps([seed, concept, polarity, style, round_, part]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") & 0x7FFFFFFF


def _split(n: int) -> dict[str, int]:
    return {"fact": n - n // 2, "story": n // 2}


MIN_REQUEST = 5


def _request_sizes(missing: int, per_request: int) -> list[int]:
    """Ask a bit more than is missing (filters drop some), at most ``per_request`` per request,
    and never fewer than 5 (up to ``per_request``): small models write short lists badly."""
    want = max(missing + max(1, -(-missing // 4)), min(per_request, MIN_REQUEST))
    parts = -(-want // per_request)
    return [want // parts + (1 if i < want % parts else 0) for i in range(parts)]


def _check_args(concepts, n_pos, n_neg, min_words, max_words, per_request, max_rounds) -> list[str]:
    names = [" ".join(str(c).split()) for c in concepts]
    if not names or not all(names):
        raise InvalidInput("concepts", "give at least one non-empty concept")
    if len(set(names)) != len(names):
        raise InvalidInput("concepts", f"concepts must not repeat: {names}")
    for name, value, low in (("n_pos", n_pos, 0), ("n_neg", n_neg, 0), ("min_words", min_words, 1),
                             ("per_request", per_request, 1), ("max_rounds", max_rounds, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInput(name, f"must be an integer >= {low}, got {value!r}")
    if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < min_words:
        raise InvalidInput("max_words", f"must be an integer >= min_words ({min_words}), got {max_words!r}")
    return names


def generate_concept_sentences(
    backend,
    concepts: Sequence[str],
    *,
    n_pos: int,
    n_neg: int,
    seed: int = 0,
    sampling: SamplingSpec | None = None,
    min_words: int = 4,
    max_words: int = 40,
    per_request: int = 10,
    max_rounds: int = 4,
    progress: bool = True,
) -> SentenceSet:
    """``n_pos`` positive and ``n_neg`` negative sentences per concept, written by ``backend``."""
    names = _check_args(concepts, n_pos, n_neg, min_words, max_words, per_request, max_rounds)
    sampling = sampling or SamplingSpec()
    slots = [
        _Slot(c, pol, sty, target)
        for c in names
        for pol, n in (("pos", n_pos), ("neg", n_neg))
        for sty, target in _split(n).items()
        if target > 0
    ]
    drops = {c: dict.fromkeys(DROP_REASONS, 0) for c in names}
    seen: dict[str, set[str]] = {c: set() for c in names}

    for round_ in range(max_rounds):
        pending = [s for s in slots if s.missing > 0]
        if not pending:
            break
        requests, owner = [], {}
        for slot in pending:
            for part, n in enumerate(_request_sizes(slot.missing, per_request)):
                s_seed = request_seed(seed, slot.concept, slot.polarity, slot.style, round_, part)
                key = f"{slot.concept}|{slot.polarity}|{slot.style}|r{round_}|p{part}"
                requests.append(GenerationRequest(
                    key=key,
                    messages=build_concept_messages(slot.concept, slot.polarity, slot.style, n, seed=s_seed),
                    sampling=sampling.model_copy(update={"seed": s_seed}),
                    meta={"concept": slot.concept, "polarity": slot.polarity, "style": slot.style,
                          "n": n, "round": round_, "part": part},
                ))
                owner[key] = slot
        by_key = {g.key: g for g in backend.generate(requests, progress=progress)}
        for req in requests:  # request order, so the outcome does not depend on completion order
            gen, slot = by_key.get(req.key), owner[req.key]
            if gen is None:  # a backend that skipped a request: as good as an unusable completion
                drops[slot.concept]["unparsable"] += 1
                continue
            _take(slot, gen, drops[slot.concept], seen[slot.concept], min_words, max_words)

    for slot in slots:
        drops[slot.concept]["shortfall"] += slot.missing
    records = [r for slot in slots for r in slot.kept]  # slots are already in output order
    return SentenceSet(records=records, drops=drops)


def _take(slot: _Slot, gen, counts: dict[str, int], seen: set[str], min_words: int, max_words: int) -> None:
    parsed = parse_list(gen.text, truncated=gen.finish_reason == "length")
    if not parsed.ok:
        counts["unparsable"] += 1
        return
    for text in parsed.items:
        counts["generated"] += 1
        n_words, key = word_count(text), normalise(text)
        if n_words < min_words:
            reason = "too_short"
        elif n_words > max_words:
            reason = "too_long"
        elif key in seen:
            reason = "duplicate"
        elif slot.polarity == "neg" and mentions_concept(text, slot.concept):
            reason = "mentions_concept"
        elif slot.missing <= 0:
            reason = "surplus"
        else:
            seen.add(key)
            slot.kept.append(SentenceRecord(
                text=text, concept=slot.concept, label=LABELS[slot.polarity], style=slot.style,
                prompt_version=PROMPT_VERSION, generator=gen.generator, sampling=gen.sampling,
            ))
            reason = "kept"
        counts[reason] += 1


# --------------------------------------------------------------------------- user sentences

_LABEL_VALUES: dict[Any, int] = {"1": 1, "0": 0, "pos": 1, "neg": 0, "positive": 1, "negative": 0, "true": 1,
                                 "false": 0}
_EXPECTED = 'one JSON object per line like {"text": "...", "concept": "cat", "label": 1}'


def _label(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str):
        return _LABEL_VALUES.get(value.strip().casefold())
    return None


def _record(obj: Any, where: str) -> SentenceRecord:
    if not isinstance(obj, dict):
        raise InvalidInput(where, f"expected a JSON object, got {type(obj).__name__}; {_EXPECTED}")
    for key in ("text", "concept", "label"):
        if key not in obj:
            raise InvalidInput(where, f"missing key {key!r}; {_EXPECTED}")
    text, concept = obj["text"], obj["concept"]
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(where, f"'text' must be a non-empty string, got {text!r}")
    if not isinstance(concept, str) or not concept.strip():
        raise InvalidInput(where, f"'concept' must be a non-empty string, got {concept!r}")
    label = _label(obj["label"])
    if label is None:
        raise InvalidInput(where, f"'label' must be 1/0, true/false or \"pos\"/\"neg\", got {obj['label']!r}")
    style = obj.get("style", "user")
    if style not in ("fact", "story", "user"):
        raise InvalidInput(where, f"'style' must be fact, story or user, got {style!r}")
    return SentenceRecord(text=text.strip(), concept=" ".join(concept.split()), label=label, style=style)


def load_sentences_jsonl(path: str | Path) -> list[SentenceRecord]:
    """A user's sentences: one JSON object per line with ``text``, ``concept`` and ``label``.

    Blank lines are skipped; other keys are ignored except an optional ``style`` (fact, story or
    user; default user). A bad line raises ``InvalidInput("PATH:LINE", ...)`` (1-based line).
    """
    p = Path(path)
    try:
        lines = read_lines(p, encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInput("sentences", f"file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput("sentences", f"cannot read {p} as UTF-8 text: {e}") from None
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInput(where, f"not valid JSON ({e.msg} at column {e.colno}); {_EXPECTED}") from None
        records.append(_record(obj, where))
    return records
