"""The descriptor prompt (pinned by golden files) and its parser on recorded completions of the
packaged SmolLM2-135M-Instruct, broken ones included.

Regenerate the golden files after a deliberate template change (and a DESCRIPTOR_PROMPT_VERSION bump):
    NEUROSCRIBE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/unit/prompts/test_descriptor_prompts.py
"""

import json
import os
from pathlib import Path

import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.prompts.descriptors import (
    DESCRIPTOR_PROMPT_VERSION,
    MAX_WORDS,
    DescriptorFailure,
    build_descriptor_messages,
    parse_descriptors,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NEUROSCRIBE_UPDATE_GOLDEN") == "1"
CASES = {"jawbone": "Great for the jawbone.",
         "quotes": 'The design is very odd, as the ear "clip" is not very comfortable at all.'}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_messages(name):
    path = GOLDEN / f"descriptors_{name}.json"
    got = {"prompt_version": DESCRIPTOR_PROMPT_VERSION, "messages": list(build_descriptor_messages(CASES[name]))}
    if UPDATE:
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with NEUROSCRIBE_UPDATE_GOLDEN=1"
    assert got == json.loads(path.read_text(encoding="utf-8")), \
        "rendered prompt changed: bump DESCRIPTOR_PROMPT_VERSION and regenerate the golden files"


def test_messages_are_a_one_shot_chat_ending_with_the_sentence():
    m = build_descriptor_messages("  The mic   is great. ")
    assert [x["role"] for x in m] == ["system", "user", "assistant", "user"]
    assert '"The mic is great."' in m[-1]["content"]
    assert parse_descriptors(m[2]["content"]).ok  # the worked example parses
    with pytest.raises(InvalidInput, match="sentence"):
        build_descriptor_messages("   ")


# Completions recorded from the packaged SmolLM2-135M-Instruct (temperature 0.2) on the Amazon file
RECORDED = [
    ("1. safety features\n2. protection devices\n3. security measures",
     ("safety features", "protection devices", "security measures")),
    ("1. Music\n2. Audio playback device\n3. Entertainment\n4. Good value for money",
     ("music", "audio playback device", "entertainment", "good value for money")),
    ("1. uncomfortable in ears", ("uncomfortable in ears",)),
    ("1. Need-to-knows\n2. cheap\n3. expensive\n4. Wasteful.", ("need-to-knows", "cheap", "expensive", "wasteful")),
    ("- **Topic:** headset\n- Sentiment: Positive\n- sound, quality", ("headset", "positive", "sound", "quality")),
    ("1. cheap\n2. Cheap\n3. \"cheap\"", ("cheap",)),
]
BROKEN = [
    ("", DescriptorFailure.empty),
    ("   \n ", DescriptorFailure.empty),
    ("Sure! Here are some keywords", DescriptorFailure.no_items),
    ("This sentence has multiple adjectives that add complexity but also makes it more", DescriptorFailure.no_descriptors),
    ("1. This sentence describes a positive trait that many people have in their lives", DescriptorFailure.no_descriptors),
    ("1. ***\n2. ...", DescriptorFailure.no_descriptors),
]


@pytest.mark.parametrize("text, want", RECORDED)
def test_recorded_completions_parse_to_clean_descriptors(text, want):
    got = parse_descriptors(text)
    assert got.ok and got.items == want
    assert all(len(d.split()) <= MAX_WORDS and d == d.casefold() for d in got.items)


@pytest.mark.parametrize("text, failure", BROKEN)
def test_broken_completions_are_typed_failures_never_descriptors(text, failure):
    got = parse_descriptors(text)
    assert not got.ok and got.failure == failure and got.items == ()


def test_truncated_completion_loses_its_cut_item():
    got = parse_descriptors("1. battery\n2. charger\n3. very long and still goi", truncated=True)
    assert got.items == ("battery", "charger")
