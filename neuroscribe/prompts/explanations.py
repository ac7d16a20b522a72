"""The explanation and detection prompts (docs/methods.md#b7) and their parsers.

* **Explanation**: one request per unit. The LLM sees sentences of the calibration half the unit
  fires on (its strongest first) and sentences of the same half it does not fire on, and writes one
  sentence saying what the first have and the second lack. Template ``templates/explanation.txt``,
  one worked example answered by ``templates/explanation.example.txt``.
* **Detection**: one request per (explanation, held-out sentence). The LLM answers whether the
  sentence fits the explanation, yes or no (``templates/detection.txt``, two worked examples: one
  yes, one no, so that the examples do not lean either way).

Both are package data pinned by golden tests; a change to a template comes with a bump of its
version string, which keys the generation cache (it is part of the messages). A completion that
cannot be parsed is a typed failure, counted, never an explanation or an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from string import Template
from typing import Sequence

from neuroscribe.errors import InvalidInput
from neuroscribe.prompts import load_template

__all__ = ["EXPLANATION_PROMPT_VERSION", "DETECTION_PROMPT_VERSION", "build_explanation_messages",
           "build_detection_messages", "parse_explanation", "parse_detection", "Explanation", "ExplanationFailure",
           "Detection", "DetectionFailure", "MAX_EXPLANATION_WORDS", "MAX_SHOWN_CHARS"]

EXPLANATION_PROMPT_VERSION = "explanation-v1"
DETECTION_PROMPT_VERSION = "detection-v1"
MAX_EXPLANATION_WORDS = 30  # a longer "sentence" is a ramble, not an explanation
MAX_SHOWN_CHARS = 300  # each sentence shown to the LLM is cut here
MAX_EXPLANATION_CHARS = 400

EXAMPLE_FIRING = ("The battery died after two days, what a waste of money.",
                  "Battery life is terrible, I charge it twice a day.",
                  "After a month the battery would not hold a charge.")
EXAMPLE_CONTRAST = ("The screen is bright and sharp.", "Shipping was fast and the box was intact.")
EXAMPLE_EXPLANATION = "Complaints that a phone battery runs out too quickly."
# (sentence, answer) of the detection prompt's two worked examples, about EXAMPLE_EXPLANATION
DETECTION_EXAMPLES = (("My battery is empty by noon every day.", "yes"), ("The case fits the phone well.", "no"))

_MARKER = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)]|[a-z][.)])\s+", re.I)
_LABEL = re.compile(r"^(?:explanation|answer|the neuron responds to|it responds to|sentence)\s*[:\-\u2013]\s*", re.I)
_QUOTES = "\"'\u201c\u201d\u2018\u2019`*_ "
_SENTENCE_END = re.compile(r"(?<=[.!?])\s|(?<=[.!?][\"'\u201d\u2019])\s")
_WORD = re.compile(r"[A-Za-z]")


class ExplanationFailure(str, Enum):
    empty = "empty"
    no_text = "no text"  # only markers, quotes or punctuation
    too_long = "too long"
    truncated = "truncated"  # cut by the token limit before its sentence ended

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Explanation:
    text: str | None = None
    failure: ExplanationFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class DetectionFailure(str, Enum):
    empty = "empty"
    no_answer = "no yes or no"
    ambiguous = "both yes and no"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Detection:
    answer: bool | None = None
    failure: DetectionFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def _one_line(s: str, field: str) -> str:
    if not isinstance(s, str) or not s.strip():
        raise InvalidInput(field, "must be a non-empty string")
    return " ".join(s.split())[:MAX_SHOWN_CHARS]


def _numbered(sentences: Sequence[str], field: str) -> str:
    if not sentences:
        raise InvalidInput(field, "needs at least one sentence")
    return "\n".join(f"{i}. {_one_line(s, field)}" for i, s in enumerate(sentences, 1))


def build_explanation_messages(firing: Sequence[str], contrast: Sequence[str]) -> tuple[dict[str, str], ...]:
    """Chat messages asking for a one-sentence explanation of a unit that fires on ``firing`` and
    not on ``contrast`` (pure: the same sentences give the same messages)."""
    template = Template(load_template("explanation.txt"))
    return (
        {"role": "system", "content": load_template("system.txt")},
        {"role": "user", "content": template.substitute(firing=_numbered(EXAMPLE_FIRING, "firing"),
                                                        contrast=_numbered(EXAMPLE_CONTRAST, "contrast"))},
        {"role": "assistant", "content": load_template("explanation.example.txt")},
        {"role": "user", "content": template.substitute(firing=_numbered(firing, "firing"),
                                                        contrast=_numbered(contrast, "contrast"))},
    )


def build_detection_messages(explanation: str, sentence: str) -> tuple[dict[str, str], ...]:
    """Chat messages asking whether ``sentence`` fits ``explanation`` (yes / no)."""
    explanation = _one_line(explanation, "explanation")[:MAX_EXPLANATION_CHARS]
    template = Template(load_template("detection.txt"))
    messages = [{"role": "system", "content": load_template("system.txt")}]
    for example, answer in DETECTION_EXAMPLES:
        messages.append({"role": "user", "content": template.substitute(explanation=EXAMPLE_EXPLANATION,
                                                                        sentence=example)})
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": template.substitute(explanation=explanation,
                                                                    sentence=_one_line(sentence, "sentence"))})
    return tuple(messages)


def parse_explanation(text: str, *, truncated: bool = False) -> Explanation:
    """The first sentence of the completion's first non-empty line, stripped of list markers,
    labels ("Explanation:") and quotes; or why there is none."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return Explanation(failure=ExplanationFailure.empty)
    line = _MARKER.sub("", lines[0])
    line = _LABEL.sub("", line.strip(_QUOTES)).strip(_QUOTES)
    parts = _SENTENCE_END.split(line, maxsplit=1)
    first = parts[0].strip().strip(_QUOTES)
    if not _WORD.search(first):
        return Explanation(failure=ExplanationFailure.no_text)
    ended = len(parts) > 1 or len(lines) > 1 or first[-1] in ".!?"
    if truncated and not ended:
        return Explanation(failure=ExplanationFailure.truncated)
    if len(first.split()) > MAX_EXPLANATION_WORDS:
        return Explanation(failure=ExplanationFailure.too_long)
    return Explanation(text=" ".join(first.split()))


_YES = re.compile(r"\byes\b", re.I)
_NO = re.compile(r"\bno\b", re.I)


def parse_detection(text: str) -> Detection:
    """yes -> True, no -> False: the first word when it is one of them, else the only one of them
    on the first non-empty line; both there, or neither, is a failure."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return Detection(failure=DetectionFailure.empty)
    first = lines[0].strip(_QUOTES + ".,!:;").casefold()
    word = re.split(r"[\s.,!:;]+", first, maxsplit=1)[0]
    if word in ("yes", "no"):
        return Detection(answer=word == "yes")
    yes, no = bool(_YES.search(lines[0])), bool(_NO.search(lines[0]))
    if yes and no:
        return Detection(failure=DetectionFailure.ambiguous)
    if not (yes or no):
        return Detection(failure=DetectionFailure.no_answer)
    return Detection(answer=yes)
