"""The explanation and detection prompts (pinned by golden files) and their parsers on good and
broken completions: a completion that does not parse is a typed failure, never an explanation or
an answer.

Regenerate the golden files after a deliberate template change (and a version bump):
    NEUROSCRIBE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/unit/prompts/test_explanation_prompts.py
"""

import json
import os
from pathlib import Path

import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.prompts.explanations import (
    DETECTION_PROMPT_VERSION,
    EXPLANATION_PROMPT_VERSION,
    MAX_EXPLANATION_WORDS,
    DetectionFailure,
    ExplanationFailure,
    build_detection_messages,
    build_explanation_messages,
    parse_detection,
    parse_explanation,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NEUROSCRIBE_UPDATE_GOLDEN") == "1"
FIRING = ("Great for the jawbone.", "The ear  clip is not comfortable at all.", "Fits my ear well.")
CONTRAST = ("Shipping was slow.", 'The "screen" cracked.')
CASES = {
    "explanation_ears": lambda: (EXPLANATION_PROMPT_VERSION, build_explanation_messages(FIRING, CONTRAST)),
    "detection_ears": lambda: (DETECTION_PROMPT_VERSION,
                               build_detection_messages("Comments on how a headset fits the ear.", "It hurts my ear.")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_messages(name):
    path = GOLDEN / f"{name}.json"
    version, messages = CASES[name]()
    got = {"prompt_version": version, "messages": list(messages)}
    if UPDATE:
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with NEUROSCRIBE_UPDATE_GOLDEN=1"
    assert got == json.loads(path.read_text(encoding="utf-8")), \
        "rendered prompt changed: bump its version and regenerate the golden files"


def test_explanation_messages_show_firing_and_contrast_sentences_numbered():
    m = build_explanation_messages(FIRING, CONTRAST)
    assert [x["role"] for x in m] == ["system", "user", "assistant", "user"]
    last = m[-1]["content"]
    assert "1. Great for the jawbone.\n2. The ear clip is not comfortable at all." in last
    assert last.index("jawbone") < last.index("do not make it respond") < last.index("Shipping")
    assert parse_explanation(m[2]["content"]).ok  # the worked example parses
    with pytest.raises(InvalidInput, match="contrast"):
        build_explanation_messages(FIRING, [])
    with pytest.raises(InvalidInput, match="firing"):
        build_explanation_messages(["ok", "  "], CONTRAST)


def test_detection_messages_have_one_yes_and_one_no_example():
    m = build_detection_messages("Sentences about ears.", "  My ear   hurts. ")
    answers = [x["content"] for x in m if x["role"] == "assistant"]
    assert sorted(answers) == ["no", "yes"] and [parse_detection(a).answer for a in answers] == [True, False]
    assert 'Text: "My ear hurts."' in m[-1]["content"] and "Sentences about ears." in m[-1]["content"]
    with pytest.raises(InvalidInput, match="explanation"):
        build_detection_messages(" ", "x")


GOOD = [
    ("Complaints about ear comfort.", "Complaints about ear comfort."),
    ("1. Texts about how a headset fits.\n2. More", "Texts about how a headset fits."),
    ('Explanation: "Praise for sound quality." It also ...', "Praise for sound quality."),
    ("**Answer:** Reviews that mention the price.", "Reviews that mention the price."),
    ("  - Short negative remarks  \n", "Short negative remarks"),
]
BAD = [
    ("", ExplanationFailure.empty, False),
    ("  \n\n ", ExplanationFailure.empty, False),
    ("1. ...", ExplanationFailure.no_text, False),
    (" ".join(["word"] * (MAX_EXPLANATION_WORDS + 1)) + ".", ExplanationFailure.too_long, False),
    ("The neuron responds to sentences that talk about the way the", ExplanationFailure.truncated, True),
]


@pytest.mark.parametrize("text, want", GOOD)
def test_completions_parse_to_one_sentence(text, want):
    got = parse_explanation(text)
    assert got.ok and got.text == want


@pytest.mark.parametrize("text, failure, truncated", BAD)
def test_broken_completions_are_typed_failures_never_explanations(text, failure, truncated):
    got = parse_explanation(text, truncated=truncated)
    assert not got.ok and got.failure == failure and got.text is None


def test_a_cut_completion_keeps_its_finished_first_sentence():
    assert parse_explanation("Reviews about batteries. And then some more wor", truncated=True).text == \
        "Reviews about batteries."


@pytest.mark.parametrize("text, want", [("yes", True), ("No.", False), ("Yes, it does.", True), (" no\nyes", False),
                                        ("The answer is yes", True), ('"NO"', False)])
def test_detection_answers(text, want):
    got = parse_detection(text)
    assert got.ok and got.answer is want


@pytest.mark.parametrize("text, failure", [("", DetectionFailure.empty), ("Maybe.", DetectionFailure.no_answer),
                                           ("It mentions yes and no", DetectionFailure.ambiguous),
                                           ("Yesterday it broke", DetectionFailure.no_answer)])
def test_unclear_detection_answers_are_typed_failures(text, failure):
    got = parse_detection(text)
    assert not got.ok and got.failure == failure and got.answer is None
