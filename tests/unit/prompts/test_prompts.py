"""Prompt builders (pinned by golden files) and the list parser.

Regenerate the golden files after a deliberate template change (and a PROMPT_VERSION bump):
    NEUROSCRIBE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/unit/prompts/test_prompts.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroscribe.errors import InvalidInput
from neuroscribe.prompts import (
    CONCEPT_TEMPLATES,
    PROMPT_VERSION,
    ParsedList,
    ParseFailure,
    build_concept_messages,
    load_template,
    negative_topics,
    parse_list,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NEUROSCRIBE_UPDATE_GOLDEN") == "1"

GOLDEN_CASES = [
    ("cat", "pos", "fact", 10, 0),
    ("cat", "pos", "story", 5, 0),
    ("cat", "neg", "fact", 10, 0),
    ("ice cream", "neg", "story", 3, 7),
]


def _golden_name(concept, polarity, style, n, seed):
    return f"concept_{concept.replace(' ', '-')}_{polarity}_{style}_n{n}_s{seed}.json"


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda c: _golden_name(*c))
def test_golden_messages(case):
    path = GOLDEN / _golden_name(*case)
    got = {"prompt_version": PROMPT_VERSION, "messages": list(build_concept_messages(*case[:4], seed=case[4]))}
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with NEUROSCRIBE_UPDATE_GOLDEN=1"
    want = json.loads(path.read_text(encoding="utf-8"))
    assert got == want, "rendered prompt changed: bump PROMPT_VERSION and regenerate the golden files"


def test_prompt_version():
    assert PROMPT_VERSION == "concept-v1"


@pytest.mark.parametrize("polarity", ["pos", "neg"])
@pytest.mark.parametrize("style", ["fact", "story"])
def test_messages_shape(polarity, style):
    msgs = build_concept_messages("red panda", polarity, style, 7, seed=3)
    assert isinstance(msgs, tuple)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} and m["content"].strip() for m in msgs)
    user = msgs[-1]["content"]
    assert "red panda" in user and "numbered list" in user and "1 to 7" in user and "$" not in user
    if polarity == "neg":
        assert 'Do not mention "red panda"' in user
    # the one-shot example answers 3 items in the same numbered format
    assert parse_list(msgs[2]["content"]).items and len(parse_list(msgs[2]["content"]).items) == 3


def test_pure_and_seeded():
    a = build_concept_messages("cat", "neg", "fact", 10, seed=1)
    assert a == build_concept_messages("cat", "neg", "fact", 10, seed=1)
    assert a != build_concept_messages("cat", "neg", "fact", 10, seed=2)
    # positives do not depend on the seed
    assert build_concept_messages("cat", "pos", "fact", 4, seed=1) == build_concept_messages("cat", "pos", "fact", 4)


def test_concept_whitespace_is_collapsed():
    assert build_concept_messages("  ice   cream ", "pos", "fact", 3) == build_concept_messages("ice cream", "pos", "fact", 3)


def test_negative_topics():
    topics = negative_topics("cat", 10, seed=0)
    assert len(topics) == 10 and len(set(topics)) == 10
    assert topics == negative_topics("cat", 10, seed=0)
    assert topics != negative_topics("cat", 10, seed=1)
    # topics sharing a stem with the concept are never offered
    assert not any("bread" in t for t in negative_topics("bread", 200, seed=5))
    assert not any("football" in t for t in negative_topics("football", 200))
    # more topics than the list holds: it repeats
    long = negative_topics("cat", 120)
    assert len(long) == 120 and long[: len(set(long))] == long[len(set(long)) : 2 * len(set(long))]


def test_templates_are_package_data():
    for name in CONCEPT_TEMPLATES.values():
        assert "$n" in load_template(name) and "$concept" in load_template(name)
        assert load_template(name.replace(".txt", ".example.txt")).startswith("1. ")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(concept="", polarity="pos", style="fact", n=3), "concept"),
        (dict(concept="   ", polarity="pos", style="fact", n=3), "concept"),
        (dict(concept=None, polarity="pos", style="fact", n=3), "concept"),
        (dict(concept="cat", polarity="positive", style="fact", n=3), "polarity"),
        (dict(concept="cat", polarity="pos", style="poem", n=3), "style"),
        (dict(concept="cat", polarity="pos", style="fact", n=0), "n"),
        (dict(concept="cat", polarity="pos", style="fact", n=-2), "n"),
        (dict(concept="cat", polarity="pos", style="fact", n=2.0), "n"),
        (dict(concept="cat", polarity="pos", style="fact", n=True), "n"),
        (dict(concept="cat", polarity="neg", style="fact", n=3, seed=-1), "seed"),
    ],
)
def test_builder_validation(kwargs, field):
    with pytest.raises(InvalidInput) as e:
        build_concept_messages(**kwargs)
    assert e.value.field == field
    assert "must be" in e.value.message


# --------------------------------------------------------------------------- parse_list

THREE = ("The cat sat on the mat.", "Cats sleep a lot.", "A cat purred softly.")


@pytest.mark.parametrize(
    "text",
    [
        "1. The cat sat on the mat.\n2. Cats sleep a lot.\n3. A cat purred softly.",
        "1) The cat sat on the mat.\n2) Cats sleep a lot.\n3) A cat purred softly.",
        "(1) The cat sat on the mat.\n(2) Cats sleep a lot.\n(3) A cat purred softly.",
        "1 - The cat sat on the mat.\n2 - Cats sleep a lot.\n3 - A cat purred softly.",
        "1: The cat sat on the mat.\n2: Cats sleep a lot.\n3: A cat purred softly.",
        "- The cat sat on the mat.\n- Cats sleep a lot.\n- A cat purred softly.",
        "* The cat sat on the mat.\n* Cats sleep a lot.\n* A cat purred softly.",
        "\u2022 The cat sat on the mat.\n\u2022 Cats sleep a lot.\n\u2022 A cat purred softly.",
        "The cat sat on the mat.\nCats sleep a lot.\nA cat purred softly.",
        # preamble and trailing chatter
        "Here are 3 sentences about cats:\n\n1. The cat sat on the mat.\n2. Cats sleep a lot.\n"
        "3. A cat purred softly.\n\nI hope these help!",
        "# Cats\n\nThe cat sat on the mat.\nCats sleep a lot.\nA cat purred softly.",
        "Sure! Here are some facts:\nThe cat sat on the mat.\nCats sleep a lot.\nA cat purred softly.\n"
        "I hope this helps.",
        # quotes, markdown, labels, indentation, trailing whitespace, CRLF
        '1. "The cat sat on the mat."\n2. **Cats sleep a lot.**\n3. \u201cA cat purred softly.\u201d   ',
        "**1.** The cat sat on the mat.\n**2.** *Cats sleep a lot.*\n**3.** A cat purred softly.",
        "   1. Fact: The cat sat on the mat.\r\n   2. Fact: Cats sleep a lot.\r\n   3. Sentence 3: A cat purred softly.",
        # numbered lines win over unmarked continuation lines, which are never joined
        "1. The cat sat on the mat.\nand then it left.\n2. Cats sleep a lot.\n3. A cat purred softly.",
        # a header inside the list is dropped
        "1. **Facts about cats:**\n2. The cat sat on the mat.\n3. Cats sleep a lot.\n4. A cat purred softly.",
    ],
)
def test_parse_formats(text):
    assert parse_list(text) == ParsedList(items=THREE)


def test_parse_plain_lines_starting_with_numbers_are_not_list_markers():
    text = "1.5 million cats live in the city.\n3:00 is when the cat eats.\nThe cat naps."
    assert parse_list(text).items == tuple(text.splitlines())


def test_parse_keeps_inner_quotes_and_bullet_numbers():
    got = parse_list('1. "Sit," she said to the cat, "now."\n2. The 2 cats ate.')
    assert got.items == ('"Sit," she said to the cat, "now."', "The 2 cats ate.")


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
def test_parse_empty(text):
    got = parse_list(text)
    assert got == ParsedList(items=(), failure=ParseFailure.empty) and not got.ok
    assert got.failure == "empty"


@pytest.mark.parametrize(
    "text",
    [
        "Here are some sentences about cats:",
        "I'm sorry, but I can't help with that.",
        "1. Facts:\n2. Stories:",
        "1. \n2. **",
    ],
)
def test_parse_no_items(text):
    got = parse_list(text)
    assert got.failure is ParseFailure.no_items and got.items == () and str(got.failure) == "no list items"


def test_parse_truncated_last_item():
    text = "1. The cat sat on the mat.\n2. Cats sleep a lot.\n3. A cat purred"
    assert parse_list(text).items[-1] == "A cat purred"
    assert parse_list(text, truncated=True).items == THREE[:2]
    # a complete last line survives truncation
    assert parse_list(text + " softly.", truncated=True).items == THREE
    assert parse_list("1. A cat purred", truncated=True).failure is ParseFailure.no_items


def test_parse_failure_is_typed_and_serialisable():
    assert isinstance(ParseFailure.empty, str)
    assert json.dumps({"failure": ParseFailure.no_items}) == '{"failure": "no list items"}'
    assert parse_list("1. A cat.").ok


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300), st.booleans())
def test_parse_never_raises_and_items_are_clean(text, truncated):
    got = parse_list(text, truncated=truncated)
    assert got.ok == bool(got.items)
    assert all(i and i == i.strip() and "\n" not in i and "\r" not in i for i in got.items)


_WORDS = st.sampled_from(["cat", "sat", "on", "the", "mat", "2", "big", "red", "quietly", "it's", "-", "(x)"])
_SENTENCE = st.builds(
    "{} {}{}".format,
    st.sampled_from(["The", "A", "My", "Every", "Cats"]),
    st.lists(_WORDS, min_size=2, max_size=8).map(" ".join),
    st.sampled_from([".", "!", "?"]),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(_SENTENCE, min_size=1, max_size=12), st.sampled_from(["{i}. ", "{i}) ", "({i}) ", "- ", "* ", ""]))
def test_parse_round_trips_generated_lists(sentences, marker):
    text = "\n".join(marker.format(i=i) + s for i, s in enumerate(sentences, 1))
    assert parse_list(text).items == tuple(sentences)
