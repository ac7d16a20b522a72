"""The descriptor vocabulary (docs/methods.md#b2): cluster the distinct descriptors and map
each to its cluster's name.

* Embeddings: any ``embed(texts) -> (n, d) array``; ``minilm_embedder()`` gives the packaged
  MiniLM through sentence-transformers (normalised, so Euclidean distance ranks like cosine).
* Clustering: scikit-learn's ``HDBSCAN`` (``min_cluster_size``, ``min_samples`` and the cluster
  selection exposed). Selection defaults to ``"leaf"``: with HDBSCAN's own default (``"eom"``) the
  MiniLM embeddings of real descriptors collapse into one giant cluster (measured on the SmolLM2
  descriptors of the Amazon reviews: 1,140 of 1,793 descriptors in one cluster, against 39
  clusters of at most 26 with ``"leaf"``), which would then be "assigned" to almost every unit. Optionally
  after a PCA to ``reduce_to`` dimensions for large vocabularies (UMAP is not offered).
* Names: a cluster is named by its most frequent member (frequency = sentences whose descriptors
  contain it; ties: the shorter, then alphabetical); noise points (label -1) stay themselves.
* Deterministic for a given input and seed: descriptors are sorted before embedding.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from neuroscribe.errors import InvalidInput

__all__ = ["Cluster", "Vocabulary", "build_vocabulary", "minilm_embedder"]

Embedder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Cluster:
    name: str
    members: tuple[tuple[str, int], ...]  # (descriptor, frequency), most frequent first
    size: int  # distinct descriptors
    count: int  # sum of the members' frequencies

    def to_dict(self, examples: int = 10) -> dict:
        return {"name": self.name, "size": self.size, "count": self.count,
                "members": [{"descriptor": d, "count": n} for d, n in self.members[:examples]]}


@dataclass
class Vocabulary:
    mapping: dict[str, str]  # descriptor -> vocabulary name
    clusters: list[Cluster]  # most frequent first
    noise: list[tuple[str, int]] = field(default_factory=list)  # descriptors left as themselves
    params: dict = field(default_factory=dict)

    def names(self, descriptors: Iterable[str]) -> frozenset[str]:
        """The vocabulary names of one sentence's descriptors."""
        return frozenset(self.mapping[d] for d in descriptors)

    def to_dict(self, examples: int = 10) -> dict:
        return {"params": self.params, "n_descriptors": len(self.mapping),
                "n_names": len(set(self.mapping.values())),
                "clusters": [c.to_dict(examples) for c in self.clusters],
                "noise": [{"descriptor": d, "count": n} for d, n in self.noise]}


def minilm_embedder(batch_size: int = 256, device: str = "cpu") -> Embedder:
    """The packaged MiniLM as a sentence-transformers embedder (unit-norm vectors)."""
    from sentence_transformers import SentenceTransformer

    from neuroscribe.workers.models.packaged import resolve_packaged

    model = SentenceTransformer(str(resolve_packaged("minilm").path()), device=device, local_files_only=True)

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                       show_progress_bar=False), dtype=np.float32)

    return embed


def build_vocabulary(descriptor_lists: Iterable[Iterable[str] | None], embed: Embedder, *,
                     min_cluster_size: int = 5, min_samples: int | None = None, reduce_to: int | None = None,
                     selection: str = "leaf",
                     keep: Iterable[str] = (), seed: int = 0) -> Vocabulary:
    """Cluster the distinct descriptors of ``descriptor_lists`` (one iterable per sentence; None for a
    sentence whose generation failed, skipped) and name the clusters.

    ``keep``: descriptors that stay themselves, outside every cluster (e.g. the names reference
    labels map to: "positive" and "negative" sit close in embedding space and would otherwise
    merge, which would make the evaluation against sentiment labels meaningless)."""
    if min_cluster_size < 2:
        raise InvalidInput("min_cluster_size", f"must be >= 2, got {min_cluster_size}")
    if min_samples is not None and min_samples < 1:
        raise InvalidInput("min_samples", f"must be >= 1, got {min_samples}")
    if selection not in ("leaf", "eom"):
        raise InvalidInput("selection", f"must be 'leaf' or 'eom', got {selection!r}")
    freq: Counter[str] = Counter()
    for ds in descriptor_lists:
        if ds is not None:
            freq.update(set(ds))
    if not freq:
        raise InvalidInput("descriptors", "no descriptors to cluster (every generation failed or was empty)")
    kept = sorted(set(keep) & set(freq))
    words = sorted(set(freq) - set(kept))
    params = {"min_cluster_size": min_cluster_size, "min_samples": min_samples, "selection": selection,
              "reduce_to": reduce_to,
              "seed": seed, "n_descriptors": len(freq), "kept": kept}
    if len(words) < min_cluster_size:  # too few to form any cluster: all noise
        return Vocabulary({w: w for w in freq}, [], sorted(freq.items(), key=lambda x: (-x[1], x[0])), params)
    x = np.asarray(embed(words), dtype=np.float64)
    if x.shape[0] != len(words):
        raise InvalidInput("embed", f"returned {x.shape[0]} vectors for {len(words)} descriptors")
    if reduce_to is not None and reduce_to < x.shape[1]:
        from sklearn.decomposition import PCA

        x = PCA(n_components=min(reduce_to, len(words)), random_state=seed).fit_transform(x)
    from sklearn.cluster import HDBSCAN

    labels = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, cluster_selection_method=selection,
                     copy=True).fit_predict(x)
    mapping: dict[str, str] = {}
    clusters: list[Cluster] = []
    for lab in sorted(set(labels.tolist()) - {-1}):
        members = sorted(((words[i], freq[words[i]]) for i in np.flatnonzero(labels == lab)),
                         key=lambda m: (-m[1], len(m[0]), m[0]))
        name = members[0][0]
        clusters.append(Cluster(name, tuple(members), len(members), sum(n for _, n in members)))
        mapping.update({d: name for d, _ in members})
    noise = sorted([(words[i], freq[words[i]]) for i in np.flatnonzero(labels == -1)] + [(k, freq[k]) for k in kept],
                   key=lambda m: (-m[1], m[0]))
    mapping.update({d: d for d, _ in noise})
    clusters.sort(key=lambda c: (-c.count, c.name))
    return Vocabulary(mapping, clusters, noise, params)
