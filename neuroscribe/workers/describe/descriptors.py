"""Descriptors per sentence (docs/methods.md#b1): one LLM request per distinct sentence,
generated in batches by any backend of ``workers.generate``, parsed into a clean list or a typed
failure (counted, never turned into a descriptor).

Caching: wrap the backend in ``CachedBackend`` (as the runner does); a request's cache key holds
its messages (hence the sentence and ``DESCRIPTOR_PROMPT_VERSION``), its sampling and the
generator, so a re-run on the same sentences costs nothing and a changed prompt is regenerated.
Request seeds derive from the job seed and the sentence's hash, so a sentence gets the same
completion whatever else is in the dataset or its batch.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import SamplingSpec
from neuroscribe.prompts.descriptors import DESCRIPTOR_PROMPT_VERSION, build_descriptor_messages, parse_descriptors
from neuroscribe.workers.generate.base import GenerationRequest

__all__ = ["DescriptorSet", "generate_descriptors", "DEFAULT_SAMPLING"]

# short answers; a low temperature keeps the 135M default on the list format
DEFAULT_SAMPLING = SamplingSpec(temperature=0.2, top_p=0.9, max_new_tokens=48, repetition_penalty=1.15)


@dataclass
class DescriptorSet:
    """Per input sentence (input order) its descriptors, or None where the generation failed."""

    descriptors: list[tuple[str, ...] | None]
    failures: Counter = field(default_factory=Counter)  # reason -> count (distinct sentences)
    prompt_version: str = DESCRIPTOR_PROMPT_VERSION
    generator: dict | None = None

    @property
    def n_failed(self) -> int:
        return sum(d is None for d in self.descriptors)


def _seed(base: int, sentence: str) -> int:
    digest = hashlib.sha256(f"{base}\x00{sentence}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def generate_descriptors(backend, sentences: Sequence[str], *, sampling: SamplingSpec = DEFAULT_SAMPLING,
                         seed: int = 0, progress: bool = True) -> DescriptorSet:
    """Descriptors of every sentence (duplicates asked once)."""
    if not sentences:
        raise InvalidInput("dataset", "no sentences to describe")
    distinct = list(dict.fromkeys(" ".join(s.split()) for s in sentences))
    requests = [
        GenerationRequest(key=f"d{i}", messages=build_descriptor_messages(s),
                          sampling=sampling.model_copy(update={"seed": _seed(seed, s)}),
                          meta={"sentence": s, "kind": "descriptors"})
        for i, s in enumerate(distinct)
    ]
    gens = {g.key: g for g in backend.generate(requests, progress=progress)}
    by_text: dict[str, tuple[str, ...] | None] = {}
    failures: Counter = Counter()
    for r, s in zip(requests, distinct):
        g = gens[r.key]
        parsed = parse_descriptors(g.text, truncated=g.finish_reason == "length")
        if parsed.ok:
            by_text[s] = parsed.items
        else:
            by_text[s] = None
            failures[str(parsed.failure)] += 1
    return DescriptorSet([by_text[" ".join(s.split())] for s in sentences], failures, DESCRIPTOR_PROMPT_VERSION,
                         dict(getattr(backend, "info", {}) or {}))
