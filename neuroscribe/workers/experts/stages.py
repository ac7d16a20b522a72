"""The experts job as three pure stages: ``(typed inputs, frozen job) -> typed artefact``.

The embedded runner (``neuroscribe.service.experts.embedded``) calls them in one process; the service's
workers will call the same functions from their queues. Nothing here writes files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import ConceptExperts, ExpertsJob, ExpertsResult, Provenance, SentenceRecord
from neuroscribe.workers.activations import Responses, SubjectModel, cached_capture
from neuroscribe.workers.experts.ap import ap_matrix, concept_experts

__all__ = [
    "SentencesArtefact",
    "ActivationsArtefact",
    "ExpertsArtefact",
    "sentences_stage",
    "activations_stage",
    "experts_stage",
    "records_sha256",
    "concept_groups",
]


@dataclass
class SentencesArtefact:
    records: list[SentenceRecord]
    drops: dict[str, dict[str, int]] = field(default_factory=dict)
    generator: dict | None = None  # None when the user brought the sentences
    prompt_version: str | None = None


@dataclass
class ActivationsArtefact:
    texts: list[str]  # unique sentence texts, row order of the responses
    responses: Responses
    environment: dict = field(default_factory=dict)  # device, dtype, library versions
    from_cache: bool = False  # the responses were read from the cache: no forward pass ran


@dataclass
class ExpertsArtefact:
    result: ExpertsResult
    unit_layers: np.ndarray  # (U,)
    unit_index: np.ndarray  # (U,)
    ap: np.ndarray  # (U, n_concepts), columns in job.concepts order


def records_sha256(records: Sequence[SentenceRecord]) -> str:
    """sha256 over (text, concept, label) of every record, in order."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.text, r.concept, r.label], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def concept_groups(job: ExpertsJob, records: Sequence[SentenceRecord], texts: Sequence[str]) -> dict:
    """Concept -> (row indices into ``texts``, labels as bool) for ``ap_matrix``, in job order."""
    row = {t: i for i, t in enumerate(texts)}
    groups = {}
    for c in job.concepts:
        recs = [r for r in records if r.concept == c.name]
        groups[c.name] = (np.array([row[r.text] for r in recs], dtype=np.int64),
                          np.array([r.label for r in recs], dtype=bool))
    return groups


def sentences_stage(job: ExpertsJob, backend=None, *, progress: bool = True) -> SentencesArtefact:
    """The job's own sentences when it carries them, else sentences written by ``backend``."""
    names = [c.name for c in job.concepts]
    if job.sentences is not None:
        return SentencesArtefact([s for s in job.sentences if s.concept in names])
    if backend is None:
        raise InvalidInput("generator", "no sentences given and no generator to write them")
    from neuroscribe.prompts import PROMPT_VERSION
    from neuroscribe.workers.experts.sentences import generate_concept_sentences

    sset = generate_concept_sentences(
        backend,
        names,
        n_pos=job.n_pos,
        n_neg=job.n_neg,
        seed=job.seed,
        sampling=job.generator.sampling,
        min_words=job.min_words,
        max_words=job.max_words,
        per_request=job.per_request,
        max_rounds=job.max_rounds,
        progress=progress,
    )
    for name in names:
        labels = {r.label for r in sset.records if r.concept == name}
        if labels != {0, 1}:
            missing = "positive" if 1 not in labels else "negative"
            raise InvalidInput(
                "concept", f"the generator wrote no usable {missing} sentence for {name!r} (drops: {sset.drops.get(name)})"
            )
    return SentencesArtefact(sset.records, sset.drops, dict(backend.info), PROMPT_VERSION)


def activations_stage(
    job: ExpertsJob,
    subject: SubjectModel,
    records: Sequence[SentenceRecord],
    *,
    cache_dir=None,
    progress: bool = True,
) -> ActivationsArtefact:
    """Responses of every unit to every distinct sentence (a sentence shared by two concepts is run
    once), read from ``cache_dir`` when an earlier run already computed them."""
    texts = list(dict.fromkeys(r.text for r in records))
    spec = job.model
    resp, hit = cached_capture(
        subject,
        texts,
        cache_dir,
        site=spec.site,
        pooling=spec.pooling.value,
        layers=spec.layers,
        batch_size=spec.batch_size,
        max_length=spec.max_length,
        progress=progress,
    )
    return ActivationsArtefact(texts, resp, subject.environment(), hit)


def experts_stage(
    job: ExpertsJob,
    sentences: SentencesArtefact,
    acts: ActivationsArtefact,
    *,
    neuroscribe_version: str,
) -> ExpertsArtefact:
    """AP of every unit for every concept, experts (AP >= tau) and the top-N units."""
    groups = concept_groups(job, sentences.records, acts.texts)
    counts = {name: (int(y.sum()), int((~y).sum())) for name, (_, y) in groups.items()}
    resp = acts.responses
    unit_layers, unit_index, ap = ap_matrix(resp.arrays, groups)
    per_concept: list[ConceptExperts] = []
    for j, c in enumerate(job.concepts):
        n_pos, n_neg = counts[c.name]
        per_concept.append(
            concept_experts(
                c, ap[:, j], unit_layers, unit_index, resp.layers, tau=job.tau, top_n=job.top_n, n_pos=n_pos, n_neg=n_neg
            )
        )
    meta = resp.meta
    provenance = Provenance(
        neuroscribe_version=neuroscribe_version,
        model=meta.model_id,
        revision=meta.revision,
        requested_revision=job.model.revision,
        weight_sha256=meta.weight_sha256,
        site=meta.site,
        pooling=meta.pooling,
        data_sha256=records_sha256(sentences.records),
        texts_sha256=meta.data_sha256,
        environment=acts.environment,
        generator=sentences.generator,
        prompt_version=sentences.prompt_version,
        seed=job.seed,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    result = ExpertsResult(
        tau=job.tau,
        layers=tuple(resp.layers),
        units_per_layer=meta.units_per_layer,
        concepts=tuple(per_concept),
        drops=sentences.drops,
        provenance=provenance,
    )
    return ExpertsArtefact(result, unit_layers, unit_index, ap)
