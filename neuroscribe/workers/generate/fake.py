"""``FakeBackend``: a scripted, deterministic LLM for tests and dry runs (no model, no network).

Default behaviour (no script): when ``request.meta`` has ``concept``, ``polarity`` ("pos"/"neg"),
``style`` ("fact"/"story") and ``n``, it writes a numbered list of ``n`` distinct sentences.
Positives mention the concept in varied forms; negatives are about other everyday topics and
never contain it. The choice of sentences depends on the request seed. With ``kind`` =
"descriptors" and ``sentence`` it lists ``fake_descriptors(sentence)``; with ``kind`` = "explanation"
(``firing``, ``contrast``) it writes ``fake_explanation``, with ``kind`` = "detection"
(``explanation``, ``sentence``) ``fake_detection``. Without such meta it
echoes a deterministic line derived from the messages and the seed. Outputs are cut to
``max_new_tokens`` whitespace-separated "tokens".
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import threading
from collections import Counter
from typing import Callable, Sequence

from neuroscribe.errors import GenerationError

from neuroscribe.workers.generate.base import Generation, GenerationRequest

__all__ = ["FakeBackend", "fake_sentences", "fake_descriptors", "fake_explanation", "fake_detection", "default_reply"]

Script = Callable[[GenerationRequest], str] | Sequence[str] | None

_PLACE = ["at the market", "in the park", "near the station", "at school", "in the kitchen", "by the river",
          "in the old town", "at the office", "in a small village", "on the beach", "in the museum", "downtown"]
_PERSON = ["my neighbour", "a young teacher", "the baker", "my grandmother", "a tired student", "our driver",
           "the new manager", "a curious child", "my best friend", "an old fisherman", "the nurse", "my uncle"]
_TIME = ["last summer", "one rainy morning", "after dinner", "on a quiet Sunday", "before sunrise",
         "during the holidays", "late at night", "last week", "in the spring", "one cold winter"]
_ADJ = ["useful", "familiar", "surprisingly complex", "easy to recognise", "widely discussed", "quite common",
        "important to many families", "simple but interesting", "well documented", "part of daily life"]
_POS_FACT = ["Many people think of the {c} as {adj}.", "{P} are often seen {place}.",
             "A {c} is {adj} in most countries.", "Experts describe every {c} they study as {adj}.",
             "You can usually find a {c} {place}.", "The {c} comes up in many conversations about {topic}.",
             "{P} have been {adj} for centuries.", "Knowing about the {c} is {adj}."]
_POS_STORY = ["{T}, {person} found a {c} {place}.", "{Person} told us about the {c} {time}.",
              "When {person} saw the {c} {place}, everyone laughed.", "{T}, {person} drew two {p} {place}.",
              "{Person} could not stop thinking about the {c} {time}.", "{T}, {person} bought a {c} {place}."]
_TOPICS = ["bread", "the weather", "train tickets", "a birthday party", "the football match", "tomato soup",
           "a new phone", "the garden", "a math exam", "winter coats", "the library", "coffee prices",
           "a wooden chair", "the city council", "a music lesson", "the evening news", "paper towels",
           "a bicycle repair", "the swimming pool", "a job interview"]
_NEG_FACT = ["Most people have an opinion about {topic}.", "Questions about {topic} come up {place}.",
             "The cost of {topic} changes every year.", "Studies of {topic} are {adj}.",
             "Talking about {topic} is {adj} {place}."]
_NEG_STORY = ["{T}, {person} complained about {topic} {place}.", "{Person} forgot about {topic} {time}.",
              "{T}, {person} and I argued about {topic}.", "{Person} read an article about {topic} {place}."]


def _plural(word: str) -> str:
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def fake_sentences(concept: str, polarity: str, style: str, n: int, seed: int) -> list[str]:
    """``n`` distinct sentences, deterministic in all arguments (the seed changes the choice)."""
    rng = random.Random(f"{concept}|{polarity}|{style}|{seed}")
    pos = polarity == "pos"
    templates = (_POS_STORY if style == "story" else _POS_FACT) if pos else (
        _NEG_STORY if style == "story" else _NEG_FACT)
    banned = re.compile(r"\b" + re.escape(concept.lower()))
    out: list[str] = []
    seen: set[str] = set()
    for attempt in itertools.count():
        if len(out) >= n:
            break
        t = rng.choice(templates)
        person, time = rng.choice(_PERSON), rng.choice(_TIME)
        s = t.format(c=concept, p=_plural(concept), P=_cap(_plural(concept)), adj=rng.choice(_ADJ),
                     place=rng.choice(_PLACE), person=person,
                     Person=_cap(person), time=time, T=_cap(time), topic=rng.choice(_TOPICS))
        if attempt > 200 * n:  # combinations exhausted: make the sentence distinct by a counter
            s = s[:-1] + f", as note {len(out) + 1} says."
        if attempt > 400 * n:
            raise GenerationError(f"FakeBackend cannot write {n} distinct {polarity} sentences for {concept!r}")
        if s in seen or (not pos and banned.search(s.lower())):
            continue
        seen.add(s)
        out.append(s)
    return out


_STOP = set("""the a an this that these those my your our their its it is was are were be been has have had
and but or not so too very really with for from into onto about after before than then them they you
just also only even still what when which while would could should will can does did don't there here where
some any more most much many unless""".split())
_POSITIVE = {"good", "great", "love", "excellent", "best", "nice", "works", "happy", "recommend", "perfect"}
_NEGATIVE = {"bad", "poor", "broke", "terrible", "worst", "hate", "waste", "disappointed", "useless", "junk"}


def fake_descriptors(sentence: str) -> list[str]:
    """Descriptors a fake LLM gives a sentence: its first three content words (longest first kept
    in sentence order) and an opinion word when the sentence holds one."""
    words = [w for w in re.findall(r"[a-z']+", sentence.lower()) if len(w) > 3 and w not in _STOP]
    content = [w for w in dict.fromkeys(words) if w not in _POSITIVE | _NEGATIVE][:3]
    pos, neg = any(w in _POSITIVE for w in words), any(w in _NEGATIVE for w in words)
    return content + (["positive"] if pos and not neg else ["negative"] if neg and not pos else [])


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) >= 3 and w not in _STOP}


def fake_explanation(firing: Sequence[str], contrast: Sequence[str]) -> str:
    """The word held by most ``firing`` sentences (then by fewest ``contrast`` ones, then first
    alphabetically), as a one-sentence explanation."""
    count, against = Counter(), Counter()
    for s in firing:
        count.update(_content_words(s))
    for s in contrast:
        against.update(_content_words(s))
    if not count:
        return "Sentences of any kind."
    word = min(count, key=lambda w: (-count[w], against[w], w))
    return f"Sentences with the word '{word}'."


def fake_detection(explanation: str, sentence: str) -> str:
    """"yes" when the sentence holds the explanation's quoted word (else any of its content words)."""
    quoted = re.findall(r"'([a-z']+)'", explanation.lower())
    words = set(quoted) if quoted else _content_words(explanation) - {"sentences", "sentence", "word", "words"}
    return "yes" if words & _content_words(sentence) else "no"


def _default_text(req: GenerationRequest) -> str:
    m = req.meta
    if m.get("kind") == "explanation" and "firing" in m:
        return fake_explanation(list(m["firing"]), list(m.get("contrast", ())))
    if m.get("kind") == "detection" and "explanation" in m and "sentence" in m:
        return fake_detection(str(m["explanation"]), str(m["sentence"]))
    if m.get("kind") == "descriptors" and "sentence" in m:
        items = fake_descriptors(str(m["sentence"])) or ["other"]
        return "\n".join(f"{i}. {d}" for i, d in enumerate(items, 1))
    if all(k in m for k in ("concept", "polarity", "style", "n")):
        sents = fake_sentences(str(m["concept"]), str(m["polarity"]), str(m["style"]), int(m["n"]), req.sampling.seed)
        return "\n".join(f"{i}. {s}" for i, s in enumerate(sents, 1))
    blob = json.dumps([list(map(dict, req.messages)), req.sampling.seed], sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
    last = next((x["content"] for x in reversed(req.messages) if x["role"] == "user"), "")
    return f"Fake reply {digest} to: {' '.join(last.split())[:80]}"


default_reply = _default_text  # what the default writer answers: for scripts that handle some requests only


def _truncate(text: str, max_tokens: int) -> tuple[str, str, int]:
    """Cut to ``max_tokens`` whitespace tokens (layout kept): (text, finish_reason, n_tokens)."""
    pieces = re.findall(r"\S+\s*", text)
    if len(pieces) <= max_tokens:
        return text, "stop", len(pieces)
    return "".join(pieces[:max_tokens]).rstrip(), "length", max_tokens


class FakeBackend:
    """Scripted backend. ``script``: a callable applied per request, a sequence of texts consumed
    in order across calls (running out raises ``GenerationError``), or None (the default writer).
    ``calls`` records every ``generate`` call's requests."""

    uses_meta = True  # the default writer reads request.meta, so CachedBackend keys on it

    def __init__(self, script: Script = None):
        self._script = script
        self._lock = threading.Lock()
        self._queue = iter(list(script)) if script is not None and not callable(script) else None
        kind = "default" if script is None else ("callable" if callable(script) else "sequence")
        self.info = {"backend": "fake", "model": "fake", "revision": None, "weight_sha256": None,
                     "script": kind, "version": 1}
        self.calls: list[tuple[GenerationRequest, ...]] = []

    @property
    def n_generated(self) -> int:
        return sum(len(c) for c in self.calls)

    def _text(self, req: GenerationRequest) -> str:
        if self._script is None:
            return _default_text(req)
        if self._queue is None:
            return str(self._script(req))
        try:
            return str(next(self._queue))
        except StopIteration:
            raise GenerationError("FakeBackend script exhausted: it has fewer texts than requests") from None

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = True) -> list[Generation]:
        requests = tuple(requests)
        with self._lock:
            self.calls.append(requests)
            texts = [self._text(r) for r in requests]
        out = []
        for req, text in zip(requests, texts):
            text, finish, n_tok = _truncate(text, req.sampling.max_new_tokens)
            sampling = req.sampling.model_dump() | {"seed_used": req.sampling.seed, "seeding": "per_request",
                                                    "batch_size": len(requests)}
            out.append(Generation(req.key, text, dict(self.info), sampling, finish, n_tok))
        return out
