"""Descriptors per sentence (docs/methods.md#b1): LLM requests per distinct sentence, generated in
batches by any backend of ``workers.generate``, parsed into a clean list or a typed failure
(counted, never turned into a descriptor).

Less noise from a weak generator (docs/methods.md#b1, beyond the paper):

* **samples**: each distinct sentence is asked ``samples`` times, each sample with its own seed;
  every successful sample's list is kept (``DescriptorSet.samples``), so the vocabulary stage can
  keep a descriptor only where it appears in at least ``min_votes`` of them (self-consistency);
* **retries**: a sample whose generation fails (empty, unparsable, truncated) is asked again with
  another seed, up to ``retries`` more times; what still fails is counted by its last reason.

Caching: wrap the backend in ``CachedBackend`` (as the runner does); a request's cache key holds
its messages (hence the sentence and ``DESCRIPTOR_PROMPT_VERSION``), its sampling and the
generator, so a re-run on the same sentences costs nothing and a changed prompt is regenerated.
Request seeds derive from the job seed, the sentence's text, the sample and the attempt, so a
sentence gets the same completion whatever else is in the dataset or its batch; sample 0's first
attempt keeps the seed a single-sample run has always used, so runs with more samples or retries
reuse every generation a simpler run cached.
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

__all__ = ["DescriptorSet", "generate_descriptors", "request_seed", "DEFAULT_SAMPLING"]

# short answers; a low temperature keeps the 135M default on the list format
DEFAULT_SAMPLING = SamplingSpec(temperature=0.2, top_p=0.9, max_new_tokens=48, repetition_penalty=1.15)


@dataclass
class DescriptorSet:
    """Per input sentence (input order): ``descriptors``, the union of its successful samples'
    lists in first-seen order, or None where every sample failed; ``samples``, each successful
    sample's list (sample order). ``failures`` counts the final failures by reason (per sample)."""

    descriptors: list[tuple[str, ...] | None]
    failures: Counter = field(default_factory=Counter)  # reason -> count (distinct sentence-samples)
    prompt_version: str = DESCRIPTOR_PROMPT_VERSION
    generator: dict | None = None
    samples: list[list[tuple[str, ...]]] = field(default_factory=list)
    n_retried: int = 0  # sentence-samples asked again after a failure
    n_recovered: int = 0  # of them, succeeded on a later attempt

    @property
    def n_failed(self) -> int:
        return sum(d is None for d in self.descriptors)


def request_seed(base: int, sentence: str, sample: int = 0, attempt: int = 0) -> int:
    """The seed of one request: a hash of the job seed, the text, the sample and the attempt
    (sample 0, attempt 0 is the seed single-sample runs have always used)."""
    tail = "" if sample == 0 and attempt == 0 else f"\x00{sample}\x00{attempt}"
    digest = hashlib.sha256(f"{base}\x00{sentence}{tail}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def generate_descriptors(backend, sentences: Sequence[str], *, sampling: SamplingSpec = DEFAULT_SAMPLING,
                         seed: int = 0, samples: int = 1, retries: int = 0, progress: bool = True) -> DescriptorSet:
    """Descriptors of every sentence (duplicates asked once), ``samples`` seeded samples each, a
    failed sample retried up to ``retries`` times with another seed."""
    if not sentences:
        raise InvalidInput("dataset", "no sentences to describe")
    if samples < 1:
        raise InvalidInput("samples", f"must be >= 1, got {samples}")
    if retries < 0:
        raise InvalidInput("retries", f"must be >= 0, got {retries}")
    distinct = list(dict.fromkeys(" ".join(s.split()) for s in sentences))
    ok: dict[tuple[int, int], tuple[str, ...]] = {}
    reason: dict[tuple[int, int], str] = {}
    pending = [(i, j) for i in range(len(distinct)) for j in range(samples)]
    n_retried = n_recovered = 0
    for attempt in range(retries + 1):
        if not pending:
            break
        requests = [
            GenerationRequest(key=f"d{i}.{j}.{attempt}", messages=build_descriptor_messages(distinct[i]),
                              sampling=sampling.model_copy(update={"seed": request_seed(seed, distinct[i], j, attempt)}),
                              meta={"sentence": distinct[i], "kind": "descriptors"})
            for i, j in pending
        ]
        if attempt:
            n_retried += len(pending)
        gens = {g.key: g for g in backend.generate(requests, progress=progress)}
        failed = []
        for r, (i, j) in zip(requests, pending):
            g = gens[r.key]
            parsed = parse_descriptors(g.text, truncated=g.finish_reason == "length")
            if parsed.ok:
                ok[i, j] = parsed.items
                reason.pop((i, j), None)
                n_recovered += attempt > 0
            else:
                reason[i, j] = str(parsed.failure)
                failed.append((i, j))
        pending = failed
    per_text: dict[str, list[tuple[str, ...]]] = {
        s: [ok[i, j] for j in range(samples) if (i, j) in ok] for i, s in enumerate(distinct)}
    keys = [" ".join(s.split()) for s in sentences]
    union = {s: (tuple(dict.fromkeys(d for lst in got for d in lst)) if got else None) for s, got in per_text.items()}
    return DescriptorSet([union[k] for k in keys], Counter(reason.values()), DESCRIPTOR_PROMPT_VERSION,
                         dict(getattr(backend, "info", {}) or {}), [list(per_text[k]) for k in keys], n_retried,
                         n_recovered)
