"""Concept sentence stage: batching per round, filters and their counts, shortfall, determinism,
the user-sentence loader and ``mentions_concept``. A scripted backend stands in for the LLM."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import SamplingSpec, SentenceRecord
from neuroscribe.prompts import PROMPT_VERSION, build_concept_messages
from neuroscribe.workers.experts.sentences import (
    DROP_REASONS,
    generate_concept_sentences,
    load_sentences_jsonl,
    mentions_concept,
    normalise,
)


@dataclass(frozen=True)
class Gen:  # the shape of neuroscribe.workers.generate.Generation
    key: str
    text: str
    generator: dict
    sampling: dict
    finish_reason: str
    n_tokens: int


class ScriptedBackend:
    """``script(request, round)`` returns the completion text, or (text, finish_reason)."""

    info = {"backend": "scripted", "model": "script-1"}

    def __init__(self, script: Callable):
        self.script = script
        self.calls: list[list] = []

    def generate(self, requests, *, progress=True):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            res = self.script(r, len(self.calls) - 1)
            text, finish = res if isinstance(res, tuple) else (res, "stop")
            out.append(Gen(r.key, text, dict(self.info), r.sampling.model_dump(), finish, len(text.split())))
        return out


def numbered(lines):
    return "\n".join(f"{i}. {s}" for i, s in enumerate(lines, 1))


def unique_lists(req, round_):
    """``n`` distinct, valid sentences; positives name the concept, negatives do not."""
    m = req.meta
    word = m["concept"] if m["polarity"] == "pos" else "the weather"
    return numbered(
        f"Sentence {i} of part {m['part']} round {round_} is about {word} in {m['style']} style."
        for i in range(m["n"])
    )


def counts(**kw):
    return {reason: kw.get(reason, 0) for reason in DROP_REASONS}


# --------------------------------------------------------------------------- generation


def test_happy_path_one_call_all_concepts_batched():
    be = ScriptedBackend(unique_lists)
    out = generate_concept_sentences(be, ["cat", "ice cream"], n_pos=3, n_neg=2, progress=False)
    assert len(be.calls) == 1  # every concept and slot in one round, one call
    assert {(r.meta["concept"], r.meta["polarity"], r.meta["style"]) for r in be.calls[0]} == {
        (c, p, s) for c in ("cat", "ice cream") for p in ("pos", "neg") for s in ("fact", "story")
    }
    # targets: pos fact 2, pos story 1, neg fact 1, neg story 1; asked a bit more than missing
    assert [r.meta["n"] for r in be.calls[0][:4]] == [5, 5, 5, 5]  # raised to MIN_REQUEST
    assert [(r.concept, r.label, r.style) for r in out.records] == [
        (c, lab, sty) for c in ("cat", "ice cream")
        for lab, sty in ((1, "fact"), (1, "fact"), (1, "story"), (0, "fact"), (0, "story"))
    ]
    assert out.drops == {c: counts(generated=20, kept=5, surplus=15) for c in ("cat", "ice cream")}
    rec = out.records[0]
    assert rec.text == "Sentence 0 of part 0 round 0 is about cat in fact style."
    assert rec.prompt_version == PROMPT_VERSION and rec.generator == ScriptedBackend.info
    assert rec.sampling == be.calls[0][0].sampling.model_dump()
    assert all(isinstance(r, SentenceRecord) for r in out.records)


def test_requests_carry_meta_messages_and_distinct_seeds():
    be = ScriptedBackend(lambda r, k: "" if k == 0 else unique_lists(r, k))
    sampling = SamplingSpec(temperature=0.3, max_new_tokens=123)
    generate_concept_sentences(be, ["cat", "dog"], n_pos=4, n_neg=4, sampling=sampling, seed=5, progress=False)
    reqs = [r for call in be.calls for r in call]
    assert len(be.calls) == 2
    assert len({r.key for r in reqs}) == len(reqs)
    assert len({r.sampling.seed for r in reqs}) == len(reqs)  # differ per concept, slot and round
    for r in reqs:
        m = r.meta
        assert {"concept", "polarity", "style", "n", "round"} <= set(m)
        assert r.sampling == sampling.model_copy(update={"seed": r.sampling.seed})
        assert r.messages == build_concept_messages(m["concept"], m["polarity"], m["style"], m["n"], seed=r.sampling.seed)
    assert {r.meta["round"] for r in be.calls[1]} == {1}


def test_deterministic():
    def run(seed):
        be = ScriptedBackend(unique_lists)
        out = generate_concept_sentences(be, ["cat", "bus"], n_pos=5, n_neg=3, seed=seed, progress=False)
        return out, [(r.key, r.sampling.seed, r.messages) for r in be.calls[0]]

    (a, ra), (b, rb), (c, rc) = run(0), run(0), run(1)
    assert a == b and ra == rb
    assert [x[1] for x in ra] != [x[1] for x in rc]


def test_filters_counted_exactly():
    long = " ".join(["word"] * 41) + "."
    script = {
        ("pos", "fact", 0): numbered(["Too short.", long, "The cat sat on the mat today.",
                                      "the  CAT sat on the mat today!"]),
        ("pos", "story", 0): numbered(["THE CAT   sat on the mat today", "Whiskers slept in the warm sun."]),
        ("neg", "fact", 0): numbered(["My cats' toys were everywhere today.", "Dogs like to play fetch outside.",
                                      "Rain fell on the quiet town.", "Rain fell on the quiet town!"]),
        ("neg", "story", 0): "",  # unparsable: retried next round
        ("neg", "story", 1): numbered(["whiskers slept in the warm sun", "The cat-like statue stood there.",
                                       "A bus stopped near the bakery."]),
    }
    be = ScriptedBackend(lambda r, k: script[(r.meta["polarity"], r.meta["style"], k)])
    out = generate_concept_sentences(be, ["cat"], n_pos=2, n_neg=2, progress=False)
    assert [(r.text, r.label, r.style) for r in out.records] == [
        ("The cat sat on the mat today.", 1, "fact"),
        ("Whiskers slept in the warm sun.", 1, "story"),
        ("Dogs like to play fetch outside.", 0, "fact"),
        ("A bus stopped near the bakery.", 0, "story"),
    ]
    assert out.drops["cat"] == counts(
        generated=13, kept=4, unparsable=1, too_short=1, too_long=1,
        duplicate=3,  # "...today!" (same slot), "THE CAT ..." (across styles), "whiskers ..." (across polarities)
        mentions_concept=2,  # "cats'", "cat-like"
        surplus=2,  # both "Rain ..." lines: a surplus item is not kept, so it is no duplicate either
    )
    assert len(be.calls) == 2 and [r.meta["polarity"] + r.meta["style"] for r in be.calls[1]] == ["negstory"]
    d = out.drops["cat"]
    assert d["generated"] == sum(d[k] for k in ("kept", "too_short", "too_long", "duplicate", "mentions_concept", "surplus"))


def test_rounds_stop_when_full_and_only_ask_for_missing():
    def one_good(req, k):  # one usable sentence per completion, then junk
        m = req.meta
        word = m["concept"] if m["polarity"] == "pos" else "rain"
        return numbered([f"Round {k} part {m['part']} {m['style']} is about {word}.", "Short."])

    be = ScriptedBackend(one_good)
    out = generate_concept_sentences(be, ["cat", "dog", "bus"], n_pos=6, n_neg=2, per_request=10, progress=False)
    # pos fact/story need 3 each: round 0 and 1 add one each, round 2 the last; negatives are full after round 0
    assert len(be.calls) == 3
    assert len(be.calls[0]) == 12 and len(be.calls[1]) == 6 and len(be.calls[2]) == 6
    assert {r.meta["polarity"] for r in be.calls[1] + be.calls[2]} == {"pos"}
    assert [r.meta["n"] for r in be.calls[1]] == [5] * 6  # missing 2 -> ask 3, raised to MIN_REQUEST
    assert {c: d["kept"] for c, d in out.drops.items()} == {"cat": 8, "dog": 8, "bus": 8}
    assert all(d["shortfall"] == 0 and d["too_short"] == 8 for d in out.drops.values())


def test_large_targets_split_into_requests_of_at_most_per_request():
    be = ScriptedBackend(unique_lists)
    out = generate_concept_sentences(be, ["cat"], n_pos=40, n_neg=2, per_request=8, progress=False)
    assert len(be.calls) == 1
    pos_fact = [r for r in be.calls[0] if r.meta["polarity"] == "pos" and r.meta["style"] == "fact"]
    assert [r.meta["n"] for r in pos_fact] == [7, 6, 6, 6]  # 20 missing -> ask 25 in 4 parts
    assert [r.meta["part"] for r in pos_fact] == [0, 1, 2, 3]
    assert len(out.records) == 42 and out.drops["cat"]["shortfall"] == 0


def test_shortfall_after_max_rounds():
    be = ScriptedBackend(lambda r, k: "I'm sorry, I cannot do that." if r.meta["polarity"] == "neg" else unique_lists(r, k))
    out = generate_concept_sentences(be, ["cat"], n_pos=2, n_neg=3, max_rounds=3, progress=False)
    assert len(be.calls) == 3
    assert [len(c) for c in be.calls] == [4, 2, 2]
    assert out.drops["cat"]["shortfall"] == 3 and out.drops["cat"]["unparsable"] == 6
    assert [r.label for r in out.records] == [1, 1]


def test_truncated_completion_loses_its_cut_last_item():
    def cut(req, k):
        return numbered(["The first cat sentence is complete.", "The second cat sentence is cut off"]), "length"

    out = generate_concept_sentences(ScriptedBackend(cut), ["cat"], n_pos=2, n_neg=0, max_rounds=1, progress=False)
    assert [r.text for r in out.records] == ["The first cat sentence is complete."]
    # fact and story got the same completion: the story copy is a duplicate, the story slot stays short
    assert out.drops["cat"] == counts(generated=2, kept=1, duplicate=1, shortfall=1)


def test_odd_counts_and_zero():
    out = generate_concept_sentences(ScriptedBackend(unique_lists), ["cat"], n_pos=1, n_neg=0, progress=False)
    assert [(r.label, r.style) for r in out.records] == [(1, "fact")]


def test_with_the_generate_packages_fake_backend():
    fake = pytest.importorskip("neuroscribe.workers.generate").FakeBackend
    out = generate_concept_sentences(fake(), ["cat", "ice cream"], n_pos=6, n_neg=5, seed=3, progress=False)
    for c in ("cat", "ice cream"):
        recs = [r for r in out.records if r.concept == c]
        assert [r.label for r in recs].count(1) == 6 and [r.label for r in recs].count(0) == 5
        assert not any(mentions_concept(r.text, c) for r in recs if r.label == 0)
        assert out.drops[c]["shortfall"] == 0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(concepts=[]), "concepts"),
        (dict(concepts=["cat", " cat "]), "concepts"),
        (dict(concepts=["cat", ""]), "concepts"),
        (dict(n_pos=-1), "n_pos"),
        (dict(n_neg=1.5), "n_neg"),
        (dict(min_words=0), "min_words"),
        (dict(min_words=5, max_words=4), "max_words"),
        (dict(per_request=0), "per_request"),
        (dict(max_rounds=0), "max_rounds"),
    ],
)
def test_argument_errors(kwargs, field):
    args = dict(concepts=["cat"], n_pos=2, n_neg=2) | kwargs
    be = ScriptedBackend(unique_lists)
    with pytest.raises(InvalidInput) as e:
        generate_concept_sentences(be, args.pop("concepts"), progress=False, **args)
    assert e.value.field == field and not be.calls


# --------------------------------------------------------------------------- mentions_concept / normalise

MENTIONS = [
    ("cat", "The cat slept.", True),
    ("cat", "CATS are everywhere.", True),
    ("cat", "The cat's bowl was empty.", True),
    ("cat", "The cats' bowls were empty.", True),
    ("cat", "The cat\u2019s bowl.", True),
    ("cat", "A cat-like grace.", True),
    ("cat", "\"Cat!\" she shouted.", True),
    ("cat", "Pick a category.", False),
    ("cat", "They ate at a cafe on Catalina.", False),
    ("cat", "A bobcat hunted.", False),
    ("cat", "The scatter plot.", False),
    ("bus", "The bus was late.", True),
    ("bus", "Two buses left.", True),
    ("bus", "She was busy.", False),
    ("bus", "A business plan.", False),
    ("bus", "The minibus was late.", False),
    ("fox", "Three foxes ran.", True),
    ("church", "Old churches.", True),
    ("potato", "Fried potatoes.", True),
    ("city", "Big cities grow.", True),
    ("city", "The city's lights.", True),
    ("city", "Electricity failed.", False),
    ("toy", "Many toys.", True),
    ("leaf", "Falling leaves.", True),
    ("leaf", "Leafs hockey.", True),
    ("knife", "Sharp knives.", True),
    ("wolf", "A pack of wolves.", True),
    ("mouse", "Two mice.", True),
    ("child", "The children played.", True),
    ("ice cream", "We ate ice cream.", True),
    ("ice cream", "Two ICE   CREAMS please.", True),
    ("ice cream", "An ice-cream van.", True),
    ("ice cream", "The ice was thin and the cream sour.", False),
    ("ice cream", "Cream cheese.", False),
    ("Ice  Cream", "ice creams", True),
    ("New York", "New York's streets.", True),
    ("dog", "Hot dogs and doggy bags.", True),
    ("dog", "A doggy bag.", False),
    ("art", "Heart and smart start.", False),
    ("art", "Modern arts.", True),
    ("café", "The CAFÉ opened.", True),
    ("c++", "I like C++ a lot.", True),
]


@pytest.mark.parametrize("concept, text, expected", MENTIONS)
def test_mentions_concept(concept, text, expected):
    assert mentions_concept(text, concept) is expected


@pytest.mark.parametrize(
    "a, b",
    [
        ("The Cat sat.", "the cat sat"),
        ("  the   cat\tsat!! ", "the cat sat"),
        ("the cat sat...", "THE CAT SAT"),
        ("Straße", "STRASSE"),
    ],
)
def test_normalise_equal(a, b):
    assert normalise(a) == normalise(b)


def test_normalise_keeps_inner_punctuation():
    assert normalise("Hello, world.") == "hello, world"
    assert normalise("the cat sat") != normalise("the cats sat")


# --------------------------------------------------------------------------- load_sentences_jsonl


def write(tmp_path, *lines):
    p = tmp_path / "s.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_load_happy_path(tmp_path):
    p = write(
        tmp_path,
        json.dumps({"text": "A cat sat.", "concept": "cat", "label": 1}),
        "",
        json.dumps({"text": " It rained. ", "concept": " ice  cream ", "label": 0, "id": 7}),
        json.dumps({"text": "x y", "concept": "cat", "label": True, "style": "fact"}),
        "   ",
        json.dumps({"text": "x z", "concept": "cat", "label": "neg", "style": "story"}),
        json.dumps({"text": "x w", "concept": "cat", "label": "1"}),
        json.dumps({"text": "x v", "concept": "cat", "label": "0"}),
        json.dumps({"text": "x u", "concept": "cat", "label": False}),
        json.dumps({"text": "x t", "concept": "cat", "label": "POS"}),
    )
    recs = load_sentences_jsonl(p)
    assert [(r.text, r.concept, r.label, r.style) for r in recs] == [
        ("A cat sat.", "cat", 1, "user"),
        ("It rained.", "ice cream", 0, "user"),
        ("x y", "cat", 1, "fact"),
        ("x z", "cat", 0, "story"),
        ("x w", "cat", 1, "user"),
        ("x v", "cat", 0, "user"),
        ("x u", "cat", 0, "user"),
        ("x t", "cat", 1, "user"),
    ]
    assert load_sentences_jsonl(str(p)) == recs


def test_load_empty_file(tmp_path):
    assert load_sentences_jsonl(write(tmp_path, "")) == []


GOOD = json.dumps({"text": "A cat sat.", "concept": "cat", "label": 1})


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ('{"text": "A cat sat.", "concept": "cat", "label": 1', "not valid JSON"),
        ("not json", "not valid JSON"),
        ('["A cat sat.", "cat", 1]', "expected a JSON object"),
        ('{"concept": "cat", "label": 1}', "missing key 'text'"),
        ('{"text": "A cat sat.", "label": 1}', "missing key 'concept'"),
        ('{"text": "A cat sat.", "concept": "cat"}', "missing key 'label'"),
        ('{"text": "   ", "concept": "cat", "label": 1}', "'text' must be a non-empty string"),
        ('{"text": 3, "concept": "cat", "label": 1}', "'text' must be a non-empty string"),
        ('{"text": "A cat sat.", "concept": "", "label": 1}', "'concept' must be a non-empty string"),
        ('{"text": "A cat sat.", "concept": "cat", "label": 2}', "'label' must be 1/0"),
        ('{"text": "A cat sat.", "concept": "cat", "label": "maybe"}', "'label' must be 1/0"),
        ('{"text": "A cat sat.", "concept": "cat", "label": null}', "'label' must be 1/0"),
        ('{"text": "A cat sat.", "concept": "cat", "label": 1, "style": "poem"}', "'style' must be"),
    ],
)
def test_load_malformed_line_names_path_and_line(tmp_path, bad, fragment):
    p = write(tmp_path, GOOD, "", bad, GOOD)
    with pytest.raises(InvalidInput) as e:
        load_sentences_jsonl(p)
    assert e.value.field == f"{p}:3"
    assert fragment in e.value.message


def test_load_missing_file(tmp_path):
    with pytest.raises(InvalidInput) as e:
        load_sentences_jsonl(tmp_path / "nope.jsonl")
    assert e.value.field == "sentences" and "not found" in e.value.message


def test_load_not_utf8(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"text": "\xff\xfe", "concept": "cat", "label": 1}\n')
    with pytest.raises(InvalidInput) as e:
        load_sentences_jsonl(p)
    assert e.value.field == "sentences"


@pytest.mark.parametrize(
    "concept, text",
    [("dogs", "The dog barked loudly."), ("buses", "A bus stopped."), ("mice", "A mouse ran by."),
     ("children", "The child slept."), ("cities", "One city woke."), ("knives", "A sharp knife.")],
)
def test_a_plural_concept_also_matches_its_singular(concept, text):
    assert mentions_concept(text, concept)


# (a concept that only looks plural errs on the safe side: "news" also drops negatives saying "new")
@pytest.mark.parametrize("concept, text", [("glass", "He sat in class."), ("bus", "A busy street.")])
def test_singular_candidates_do_not_overreach(concept, text):
    assert not mentions_concept(text, concept)
