"""The JSON-able artefacts the first two describe stages hand on (descriptors -> vocabulary ->
exemplars), and the self-consistency vote that turns a sentence's descriptor samples into its
set of vocabulary names (docs/methods.md#b1)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

from neuroscribe.prompts.descriptors import DESCRIPTOR_PROMPT_VERSION
from neuroscribe.workers.describe.vocabulary import Cluster, Vocabulary

__all__ = ["DescriptorsArtefact", "VocabularyArtefact", "vote"]


@dataclass
class DescriptorsArtefact:
    descriptors: list[list[str] | None]  # per sentence (input order): the union of its samples; None: all failed
    failures: dict[str, int]
    generator: dict
    prompt_version: str = DESCRIPTOR_PROMPT_VERSION
    # per sentence, each successful sample's descriptors ([] for none: then ``descriptors`` is the one sample)
    samples: list[list[list[str]]] = field(default_factory=list)
    n_samples: int = 1
    retries: int = 0
    n_retried: int = 0
    n_recovered: int = 0

    def sample_lists(self) -> list[list[list[str]]]:
        """Per sentence its successful samples (a single-sample artefact: its one list, or none)."""
        if self.samples:
            return self.samples
        return [[] if d is None else [d] for d in self.descriptors]

    def to_json(self) -> dict:
        return {"descriptors": self.descriptors, "failures": self.failures, "generator": self.generator,
                "prompt_version": self.prompt_version, "samples": self.samples, "n_samples": self.n_samples,
                "retries": self.retries, "n_retried": self.n_retried, "n_recovered": self.n_recovered}

    @classmethod
    def from_json(cls, data: dict) -> "DescriptorsArtefact":
        return cls([None if d is None else list(d) for d in data["descriptors"]], dict(data["failures"]),
                   dict(data["generator"]), data["prompt_version"],
                   [[list(x) for x in per] for per in data.get("samples", [])], int(data.get("n_samples", 1)),
                   int(data.get("retries", 0)), int(data.get("n_retried", 0)), int(data.get("n_recovered", 0)))


def _vocab_json(v: Vocabulary) -> dict:
    return {"mapping": v.mapping, "params": v.params, "noise": [list(x) for x in v.noise],
            "clusters": [{"name": c.name, "members": [list(m) for m in c.members], "size": c.size, "count": c.count}
                         for c in v.clusters]}


def _vocab_from_json(d: dict) -> Vocabulary:
    clusters = [Cluster(c["name"], tuple((m[0], int(m[1])) for m in c["members"]), int(c["size"]), int(c["count"]))
                for c in d["clusters"]]
    return Vocabulary(dict(d["mapping"]), clusters, [(x[0], int(x[1])) for x in d["noise"]], dict(d["params"]))


@dataclass
class VocabularyArtefact:
    vocabulary: Vocabulary
    sets: list[list[str] | None]  # per sentence its vocabulary names (sorted); None: failed
    halves: list[list[int]] = field(default_factory=list)  # [calibration rows, validation rows] or []

    def to_json(self) -> dict:
        return {"vocabulary": _vocab_json(self.vocabulary), "sets": self.sets, "halves": self.halves}

    @classmethod
    def from_json(cls, data: dict) -> "VocabularyArtefact":
        return cls(_vocab_from_json(data["vocabulary"]), [None if s is None else list(s) for s in data["sets"]],
                   [list(map(int, h)) for h in data["halves"]])

    def frozensets(self) -> list[frozenset[str] | None]:
        return [None if s is None else frozenset(s) for s in self.sets]


def vote(samples: Sequence[Sequence[Sequence[str]]], names: Callable[[Sequence[str]], set[str]],
         min_votes: int) -> tuple[list[list[str] | None], int]:
    """Per sentence, the vocabulary names held by at least ``min_votes`` of its successful samples
    (``names`` maps one sample's descriptors to its names), sorted; None for a sentence with fewer
    successful samples than ``min_votes`` (its descriptors are not known well enough to count as
    "none"). Also returns how many (sentence, name) pairs the vote dropped."""
    out: list[list[str] | None] = []
    dropped = 0
    for per in samples:
        if len(per) < min_votes or not per:
            out.append(None)
            continue
        counts = Counter(n for s in per for n in set(names(s)))
        kept = sorted(n for n, c in counts.items() if c >= min_votes)
        dropped += len(counts) - len(kept)
        out.append(kept)
    return out, dropped
