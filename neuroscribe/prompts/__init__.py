"""Prompt templates (package data under ``templates/``) and the pure builders that render them.

Templates use ``string.Template`` placeholders (``$concept``, ``$n``, ``$topics``). The rendered
messages are pinned by golden tests (``tests/golden/``): a template change shows up there and must
come with a bump of ``PROMPT_VERSION``, which every generated sentence records.

The embedded generator is a 135M-parameter model, so the prompts are short and concrete: an
explicit count, a numbered list, one sentence per line, and for negatives a list of other topics
picked deterministically from ``templates/negative_topics.txt``. Each request carries one worked
example (the same template rendered for ``EXAMPLE_CONCEPT``, answered by
``templates/<template>.example.txt``): a one-shot exchange keeps a tiny model on the list format.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Literal

from neuroscribe.errors import InvalidInput
from neuroscribe.prompts.parse import ParsedList, ParseFailure, parse_list

__all__ = [
    "PROMPT_VERSION",
    "POLARITIES",
    "STYLES",
    "CONCEPT_TEMPLATES",
    "build_concept_messages",
    "negative_topics",
    "load_template",
    "ParsedList",
    "ParseFailure",
    "parse_list",
]

PROMPT_VERSION = "concept-v1"

Polarity = Literal["pos", "neg"]
Style = Literal["fact", "story"]
POLARITIES: tuple[str, ...] = ("pos", "neg")
STYLES: tuple[str, ...] = ("fact", "story")

SYSTEM_TEMPLATE = "system.txt"
EXAMPLE_CONCEPT = "the sun"
EXAMPLE_TOPICS: tuple[str, ...] = ("bread", "a chess game", "the ocean")
TOPICS_FILE = "negative_topics.txt"
# (polarity, style) -> template file: the registry the builder picks from.
CONCEPT_TEMPLATES: dict[tuple[str, str], str] = {
    ("pos", "fact"): "concept_fact_pos.txt",
    ("pos", "story"): "concept_story_pos.txt",
    ("neg", "fact"): "concept_fact_neg.txt",
    ("neg", "story"): "concept_story_neg.txt",
}


@lru_cache(maxsize=None)
def load_template(name: str) -> str:
    """The text of ``templates/NAME`` (package data), trailing newlines removed."""
    return resources.files(__name__).joinpath("templates", name).read_text(encoding="utf-8").rstrip("\n")


@lru_cache(maxsize=None)
def _all_topics() -> tuple[str, ...]:
    lines = (line.strip() for line in load_template(TOPICS_FILE).splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def _related(topic: str, concept: str) -> bool:
    """Conservative: a topic is skipped if it shares a word stem with the concept, either way."""
    t, c = topic.casefold(), concept.casefold()
    return any(w in t for w in c.split() if len(w) >= 3) or any(w in c for w in t.split() if len(w) >= 4)


def negative_topics(concept: str, n: int, seed: int = 0) -> tuple[str, ...]:
    """``n`` everyday topics unrelated to ``concept``, in an order fixed by ``seed``.

    The order is a sort by SHA-256 of ``(seed, topic)``, so it is the same on every platform and
    Python version; the list repeats when ``n`` exceeds the number of topics.
    """
    pool = [t for t in _all_topics() if not _related(t, concept)]
    pool.sort(key=lambda t: hashlib.sha256(f"{seed}\x00{t}".encode()).digest())
    return tuple(pool[i % len(pool)] for i in range(n))


def _check(concept: str, polarity: str, style: str, n: int, seed: int) -> str:
    if not isinstance(concept, str) or not " ".join(concept.split()):
        raise InvalidInput("concept", f"must be a non-empty string, got {concept!r}")
    if polarity not in POLARITIES:
        raise InvalidInput("polarity", f"must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    if style not in STYLES:
        raise InvalidInput("style", f"must be one of {', '.join(STYLES)}, got {style!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput("n", f"must be an integer >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput("seed", f"must be an integer >= 0, got {seed!r}")
    return " ".join(concept.split())


def build_concept_messages(
    concept: str, polarity: Polarity, style: Style, n: int, seed: int = 0
) -> tuple[dict[str, str], ...]:
    """Chat messages asking for ``n`` sentences of one (polarity, style) for ``concept``.

    ``pos``: sentences about the concept; ``neg``: sentences about other everyday topics (chosen
    with ``seed``) that must not mention it. ``fact``: encyclopedic statements; ``story``: short
    narrative sentences. Pure: the same arguments always give the same messages.
    """
    concept = _check(concept, polarity, style, n, seed)
    name = CONCEPT_TEMPLATES[(polarity, style)]
    template = Template(load_template(name))
    example = template.substitute(concept=EXAMPLE_CONCEPT, n=len(EXAMPLE_TOPICS), topics=", ".join(EXAMPLE_TOPICS))
    topics = ", ".join(negative_topics(concept, n, seed)) if polarity == "neg" else ""
    return (
        {"role": "system", "content": load_template(SYSTEM_TEMPLATE)},
        {"role": "user", "content": example},
        {"role": "assistant", "content": load_template(name.replace(".txt", ".example.txt"))},
        {"role": "user", "content": template.substitute(concept=concept, n=n, topics=topics)},
    )
