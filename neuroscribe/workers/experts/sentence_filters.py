"""Checks applied to generated sentences: concept mentions, normalisation for dedupe, length.

``mentions_concept`` is how a negative sentence is proven not to be about its concept: the LLM is
asked to avoid the concept, but only this check decides. It matches the concept or a simple
inflection of its last word (plural ``-s``/``-es``, ``-y`` -> ``-ies``, ``-f``/``-fe`` -> ``-ves``,
a few irregular plurals, and the other way round for a concept given in the plural: ``dogs`` also
matches "dog", ``mice`` "mouse"; possessives and hyphenated compounds follow from the word boundaries),
case-insensitively, as a whole word: ``cat`` matches "Cats'", "cat-like", but not "category".
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["mentions_concept", "normalise", "word_count", "inflections"]

# singular -> plural forms that the suffix rules cannot make
_IRREGULAR: dict[str, tuple[str, ...]] = {
    "man": ("men",), "woman": ("women",), "child": ("children",), "person": ("people", "persons"),
    "mouse": ("mice",), "goose": ("geese",), "foot": ("feet",), "tooth": ("teeth",), "ox": ("oxen",),
    "louse": ("lice",), "die": ("dice",), "cactus": ("cacti", "cactuses"), "fungus": ("fungi", "funguses"),
}
_ES_ENDINGS = ("s", "x", "z", "ch", "sh", "o")
_VOWELS = "aeiou"
_WORD = r"[^\W_]"  # a letter or digit (the concept must not sit inside a longer word)
_TRAILING_PUNCT = ".,;:!?\u2026\"'\u201d\u2019)]}-\u2013\u2014 "


def inflections(word: str) -> tuple[str, ...]:
    """``word`` and its simple inflected forms (lower case, no duplicates, in a fixed order)."""
    w = word.casefold()
    forms = [w, w + "s"]
    if w.endswith(_ES_ENDINGS):
        forms.append(w + "es")
    if len(w) > 1 and w.endswith("y") and w[-2] not in _VOWELS:
        forms.append(w[:-1] + "ies")
    if w.endswith("fe"):
        forms.append(w[:-2] + "ves")
    elif w.endswith("f"):
        forms.append(w[:-1] + "ves")
    forms.extend(_IRREGULAR.get(w, ()))
    return tuple(dict.fromkeys(forms))


_SINGULAR_OF = {p: w for w, plurals in _IRREGULAR.items() for p in plurals}


def singular_candidates(word: str) -> tuple[str, ...]:
    """Words whose plural ``word`` may be: ``buses`` -> bus, buse; ``cities`` -> city; ``mice`` -> mouse."""
    w = word.casefold()
    out = []
    if w in _SINGULAR_OF:
        out.append(_SINGULAR_OF[w])
    if len(w) > 3 and w.endswith("ies"):
        out.append(w[:-3] + "y")
    if len(w) > 3 and w.endswith("ves"):
        out += [w[:-3] + "f", w[:-3] + "fe"]
    if len(w) > 3 and w.endswith("es") and w[:-2].endswith(_ES_ENDINGS):
        out.append(w[:-2])
    if len(w) > 2 and w.endswith("s") and not w.endswith("ss"):
        out.append(w[:-1])
    return tuple(dict.fromkeys(out))


def _all_forms(word: str) -> set[str]:
    forms = set(inflections(word))
    for base in singular_candidates(word):
        forms |= set(inflections(base))
    return forms


@lru_cache(maxsize=1024)
def _concept_pattern(concept: str) -> re.Pattern:
    words = concept.casefold().split()
    if not words:
        raise ValueError("concept must not be empty")
    head = "".join(re.escape(w) + r"[\s\-]+" for w in words[:-1])
    # longest forms first so the alternation prefers "cats" over "cat" (either way a match)
    last = "|".join(re.escape(f) for f in sorted(_all_forms(words[-1]), key=len, reverse=True))
    return re.compile(rf"(?<!{_WORD}){head}(?:{last})(?!{_WORD})", re.IGNORECASE)


def mentions_concept(text: str, concept: str) -> bool:
    """Whether ``text`` names ``concept`` (or a simple inflection of it) as a whole word."""
    return _concept_pattern(" ".join(concept.split())).search(text.casefold()) is not None


def normalise(text: str) -> str:
    """Key for duplicate detection: casefolded, whitespace collapsed, trailing punctuation removed."""
    return " ".join(text.casefold().split()).rstrip(_TRAILING_PUNCT)


def word_count(text: str) -> int:
    """Whitespace-separated words (what the ``min_words`` / ``max_words`` band counts)."""
    return len(text.split())
