"""The one way neuroscribe splits a text file into lines: on ``\\n`` only (``\\r\\n`` too).

``str.splitlines`` also breaks at U+0085 (NEL), U+2028, U+2029, form feeds and other separators
that occur *inside* sentences of real data (labelled sentence files such as IMDb's contain NEL):
a labelled line was cut in two ("some rows have a label and some do not"), an unlabelled one split
mid-sentence, and a valid JSONL line with a raw NEL rejected. Every reader of user files and of
our own JSONL goes through ``split_lines`` / ``read_lines``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["split_lines", "read_lines"]


def split_lines(text: str) -> list[str]:
    """``text`` cut at ``\\n`` (a ``\\r`` before it is dropped); no empty last line for a final newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path: str | Path, *, encoding: str = "utf-8") -> list[str]:
    """The lines of the file at ``path`` (``split_lines``); raises what ``Path.read_text`` raises."""
    return split_lines(Path(path).read_text(encoding=encoding))
