"""Turn an LLM completion into a clean list of items, or a typed failure.

Accepted shapes: numbered (``1.``, ``1)``, ``(1)``, ``1 -``, ``1:``), bulleted (``-``, ``*``,
``•``) and plain one-item-per-line text. When some lines carry a list marker, only marked lines
are items, so a preamble ("Here are 10 sentences about cats:") and trailing chatter fall away;
in plain text, lines that end with a colon, markdown headings and lines that read like chatter
are dropped. Items are cleaned of
surrounding quotes, markdown emphasis and labels such as ``Fact:``; nothing is joined across
lines. A completion that stopped at the length limit (``truncated=True``) loses its last item
unless that item ends like a sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = ["ParseFailure", "ParsedList", "parse_list"]


class ParseFailure(str, Enum):
    """Why a completion gave no items (a ``str``, so it serialises as its value)."""

    empty = "empty"  # nothing but whitespace
    no_items = "no list items"  # text, but no line survived as an item

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ParsedList:
    items: tuple[str, ...] = ()
    failure: ParseFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


_NUMBERED = re.compile(
    r"""^(?:
        \(\d{1,3}\)                 # (1)
      | \[\d{1,3}\]                 # [1]
      | \#?\d{1,3}\s*[.):\]](?!\d)  # 1.  1)  1:  #1.  (not 1.5 or 3:00)
      | \d{1,3}\s+[-\u2013\u2014]   # 1 -  1 –
    )\s*(?P<body>.*)$""",
    re.X,
)
_BULLET = re.compile(r"^[-*\u2022\u00b7\u2023\u25aa\u25cf\u2013+]\s+(?P<body>.*)$")
_BOLD = re.compile(r"\*\*|__")
_EMPHASIS = re.compile(r"\*\*|__|`|(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)")
_LABEL = re.compile(r"^(?:fact|sentence|story|example|statement)\s*\d*\s*[:.\-\u2013]\s+", re.I)
_CHATTER = re.compile(
    r"^(?:here (?:are|is)|sure\b|certainly\b|of course\b|okay\b|ok\b|i hope\b|i'm sorry|i am sorry|"
    r"as an ai\b|let me know\b|note:|these (?:sentences|facts|are)\b|i can't\b|i cannot\b)",
    re.I,
)
_HEADER = re.compile(r"^#{1,6}\s")  # a markdown heading is never an item
_QUOTES = [('"', '"'), ("\u201c", "\u201d"), ("'", "'"), ("\u2018", "\u2019"), ("\u00ab", "\u00bb")]
_SENTENCE_END = ('.', '!', '?', '\u2026', '"', '\u201d', "'", '\u2019', ')')


def _clean(item: str) -> str:
    item = _EMPHASIS.sub("", item).strip()
    item = _LABEL.sub("", item).strip()
    changed = True
    while changed and len(item) >= 2:
        changed = False
        for a, b in _QUOTES:
            inner = item[1:-1]
            if item.startswith(a) and item.endswith(b) and a not in inner and b not in inner:
                item, changed = inner.strip(), True
    return " ".join(item.split())


def _marked(line: str, pattern: re.Pattern) -> str | None:
    m = pattern.match(_BOLD.sub("", line).strip())
    return m["body"] if m else None


def parse_list(text: str, *, truncated: bool = False) -> ParsedList:
    """The items of a list-shaped completion; ``truncated``: the completion hit its length limit."""
    if not text or not text.strip():
        return ParsedList(failure=ParseFailure.empty)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    bodies: list[str] | None = None
    for pattern in (_NUMBERED, _BULLET):
        marked = [_marked(line, pattern) for line in lines]
        if any(b is not None for b in marked):
            bodies = [b for b in marked if b is not None]
            break
    if bodies is None:  # plain text, one item per line
        bodies = [line for line in lines if not _HEADER.match(line) and not _CHATTER.match(_clean(line))]
    items = [c for c in map(_clean, bodies) if c and not c.endswith(":")]
    if truncated and items and not items[-1].endswith(_SENTENCE_END):
        items.pop()
    if not items:
        return ParsedList(failure=ParseFailure.no_items)
    return ParsedList(items=tuple(items))
