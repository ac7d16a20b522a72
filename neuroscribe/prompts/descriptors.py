"""The descriptor prompt (docs/methods.md#b1) and its parser.

One request per sentence: the LLM lists short descriptors of the sentence (topic, aspect,
sentiment, style). The template is package data (``templates/descriptors.txt``, one worked example
in ``templates/descriptors.example.txt``), pinned by golden tests; any change to either comes with
a bump of ``DESCRIPTOR_PROMPT_VERSION``, which keys the descriptor cache.

``parse_descriptors`` returns a clean list (lower-cased, trimmed of punctuation and labels, at most
``MAX_WORDS`` words per descriptor, deduplicated, in order) or a typed failure: a completion that
cannot be parsed is a failure, never a descriptor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from string import Template

from neuroscribe.errors import InvalidInput
from neuroscribe.prompts import load_template
from neuroscribe.prompts.parse import parse_list

__all__ = ["DESCRIPTOR_PROMPT_VERSION", "EXAMPLE_SENTENCE", "build_descriptor_messages", "parse_descriptors",
           "DescriptorFailure", "Descriptors", "MAX_WORDS"]

DESCRIPTOR_PROMPT_VERSION = "descriptors-v1"
EXAMPLE_SENTENCE = "The battery died after two days, what a waste of money."
N_DESCRIPTORS = 4
MAX_WORDS = 4  # a longer "descriptor" is a sentence, not a descriptor: dropped
MAX_SENTENCE_CHARS = 1000

_LABEL = re.compile(r"^(?:topic|aspect|sentiment|style|tone|descriptor)s?\s*[:\-\u2013]\s*", re.I)
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


class DescriptorFailure(str, Enum):
    empty = "empty"
    no_items = "no list items"
    no_descriptors = "no usable descriptors"  # items, but every one too long or empty once cleaned

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Descriptors:
    items: tuple[str, ...] = ()
    failure: DescriptorFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def build_descriptor_messages(sentence: str) -> tuple[dict[str, str], ...]:
    """Chat messages asking for the descriptors of ``sentence`` (pure: same input, same messages)."""
    if not isinstance(sentence, str) or not sentence.strip():
        raise InvalidInput("sentence", "must be a non-empty string")
    text = " ".join(sentence.split())[:MAX_SENTENCE_CHARS]
    template = Template(load_template("descriptors.txt"))
    return (
        {"role": "system", "content": load_template("system.txt")},
        {"role": "user", "content": template.substitute(sentence=EXAMPLE_SENTENCE, n=N_DESCRIPTORS)},
        {"role": "assistant", "content": load_template("descriptors.example.txt")},
        {"role": "user", "content": template.substitute(sentence=text, n=N_DESCRIPTORS)},
    )


def _clean(item: str) -> str:
    item = _LABEL.sub("", item.strip())
    item = " ".join(item.casefold().split())
    return _EDGE.sub("", item)


def parse_descriptors(text: str, *, truncated: bool = False) -> Descriptors:
    """The descriptors of a completion, or why there are none."""
    parsed = parse_list(text, truncated=truncated)
    if not parsed.ok:
        return Descriptors(failure=DescriptorFailure(parsed.failure.value))
    out: list[str] = []
    for item in parsed.items:
        # "topic: phone, sentiment: negative" on one line: split on commas / semicolons
        for part in re.split(r"[;,]", item):
            d = _clean(part)
            if d and len(d.split()) <= MAX_WORDS and d not in out:
                out.append(d)
    if not out:
        return Descriptors(failure=DescriptorFailure.no_descriptors)
    return Descriptors(items=tuple(out))
