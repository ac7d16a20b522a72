"""Sweeps (docs/methods.md#a6): expert counts per layer over several models, revisions (training
checkpoints) and a random-initialisation baseline, on one set of sentences.

* ``check_targets`` resolves every target before any work (a missing revision is an error then,
  not after the sentences are written) and checks the layers asked for exist in each model.
* ``run_sweep`` loads one model at a time, reads its responses through the responses cache (so a
  re-run, or a sweep with one more revision, runs forward passes only for what is new), counts
  experts per concept and layer at the job's tau, and frees the model before the next.
* Weight files are hashed per target (``workers.hashing``; random inits hash their tensors):
  targets that share a hash are reported as ``identical_weights`` (a mis-served checkpoint).
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from neuroscribe.jobs.experts_suite import SweepEntry, SweepReport, SweepTarget
from neuroscribe.errors import InvalidInput, ModelNotFound
from neuroscribe.jobs import ExpertsJob, SentenceRecord
from neuroscribe.workers.activations import SubjectModel, cached_capture, load_subject_model, random_init_subject
from neuroscribe.workers.experts.ap import ap_matrix
from neuroscribe.workers.models.hub import first_line, resolve_model
from neuroscribe.workers.experts.stages import concept_groups

__all__ = ["sweep_targets", "check_targets", "run_sweep", "parse_step", "identical_weight_groups"]

_STEP = re.compile(r"^step(\d+)$")


def parse_step(revision: str | None) -> int | None:
    """``"step1000"`` -> 1000 (Pythia's checkpoint names); anything else -> None."""
    m = _STEP.match(revision or "")
    return int(m.group(1)) if m else None


def sweep_targets(job: ExpertsJob) -> list[SweepTarget]:
    """The job's main model first, then ``job.sweep`` in the order given."""
    return [SweepTarget(name=job.model.name, revision=job.model.revision), *job.sweep]


@dataclass(frozen=True)
class _Checked:
    target: SweepTarget
    n_layers: int


def check_targets(job: ExpertsJob) -> list[_Checked]:
    """Resolve every sweep target (weights present or downloadable, revision exists) and check that
    the job's layers exist in each; raises ``ModelNotFound`` / ``InvalidInput`` naming the target."""
    from transformers import AutoConfig

    from neuroscribe.workers.activations.sites import ARCHITECTURES, default_n_layers

    out = []
    for i, t in enumerate(job.sweep):
        field = f"sweep.{i}"
        try:
            src = resolve_model(t.name, revision=t.revision, trust_remote_code=job.model.trust_remote_code)
        except ModelNotFound as e:
            raise ModelNotFound(f"{field}.{e.field}", e.message) from None
        try:
            config = AutoConfig.from_pretrained(src.load_from, **src.pretrained_kwargs(job.model.trust_remote_code))
        except (OSError, ValueError, KeyError) as e:
            raise ModelNotFound(field, f"cannot read the config of {t.name!r}: {first_line(e)}") from None
        arch = ARCHITECTURES.get(config.model_type)
        n_layers = (arch.n_layers if arch else default_n_layers)(config)
        layers = job.model.layers
        if layers is not None and max(layers) >= n_layers:
            raise InvalidInput(f"{field}.layers", f"{list(layers)} out of range: {t.name} has layers 0..{n_layers - 1}")
        out.append(_Checked(t, n_layers))
    return out


def _load(target: SweepTarget, job: ExpertsJob) -> SubjectModel:
    spec = job.model
    if target.random_init:
        return random_init_subject(target.name, revision=target.revision, seed=job.seed, device=spec.device,
                                   trust_remote_code=spec.trust_remote_code)
    return load_subject_model(target.name, revision=target.revision, device=spec.device,
                              trust_remote_code=spec.trust_remote_code)


def _entry(target: SweepTarget, subject: SubjectModel, job: ExpertsJob, records, texts, cache_dir,
           progress: bool, given=None) -> SweepEntry:
    spec = job.model
    if given is not None:  # the main model's responses, already captured for the job
        resp, hit = given
    else:
        resp, hit = cached_capture(subject, texts, cache_dir, site=spec.site, pooling=spec.pooling.value,
                                   layers=spec.layers, batch_size=spec.batch_size, max_length=spec.max_length,
                                   progress=progress)
    unit_layers, _, ap = ap_matrix(resp.arrays, concept_groups(job, records, texts))
    counts = {}
    for j, c in enumerate(job.concepts):
        per = np.bincount(unit_layers[ap[:, j] >= job.tau], minlength=max(resp.layers) + 1)
        counts[c.name] = {int(layer): int(per[layer]) for layer in resp.layers}
    return SweepEntry(
        model=target.name, requested_revision=target.revision, revision=subject.revision,
        random_init=target.random_init, weight_sha256=subject.weight_sha256,
        n_params=int(sum(p.numel() for p in subject.model.parameters())), n_layers=subject.n_layers,
        units_per_layer=resp.meta.units_per_layer, layers=tuple(resp.layers),
        step=None if target.random_init else parse_step(target.revision), counts_per_layer=counts, from_cache=hit,
    )


def run_sweep(job: ExpertsJob, records: Sequence[SentenceRecord], *, main: SubjectModel | None = None,
              main_acts=None, cache_dir=None, progress: bool = True, log: Callable[[str], None] = print) -> SweepReport:
    """Expert counts per concept and layer for the main model and every ``job.sweep`` target.

    ``main``: the already loaded main model (reused, not loaded again); ``main_acts``: its
    ``ActivationsArtefact`` for ``records`` (used as is, its ``from_cache`` reported)."""
    texts = list(dict.fromkeys(r.text for r in records))
    if main_acts is not None and list(main_acts.texts) != texts:
        raise ValueError("main_acts were captured for other sentences")
    entries = []
    for i, target in enumerate(sweep_targets(job)):
        label = target.name + (f"@{target.revision}" if target.revision else "") + (
            " (random init)" if target.random_init else "")
        if i == 0 and main is not None:
            subject = main
        else:
            log(f"sweep {i + 1}/{len(job.sweep) + 1}: loading {label}")
            subject = _load(target, job)
        given = (main_acts.responses, main_acts.from_cache) if i == 0 and main_acts is not None else None
        entry = _entry(target, subject, job, records, texts, cache_dir, progress, given)
        if i > 0:
            log(f"sweep {i + 1}/{len(job.sweep) + 1}: {label}: {entry.total()} experts"
                + (" (responses from the cache)" if entry.from_cache else ""))
        entries.append(entry)
        del subject
        gc.collect()
    # models in the order the user named them: the sweep's trained models, then the main model
    order = [t.name for t in job.sweep if not t.random_init] + [job.model.name] + [t.name for t in job.sweep]
    entries = _ordered(entries, list(dict.fromkeys(order)))
    return SweepReport(tau=job.tau, entries=tuple(entries), identical_weights=identical_weight_groups(entries))


def _ordered(entries: list[SweepEntry], models: list[str]) -> list[SweepEntry]:
    """Trained models first, grouped by model in ``models`` order, checkpoints by step (revisions
    without a step keep their order), random inits last (in the same model order)."""
    first = {m: i for i, m in enumerate(models)}
    return [e for _, e in sorted(enumerate(entries), key=lambda ie: (
        ie[1].random_init, first[ie[1].model], ie[1].step is None, ie[1].step or 0, ie[0]))]


def identical_weight_groups(entries: Sequence[SweepEntry]) -> tuple[tuple[str, ...], ...]:
    """Labels of entries that share one weight hash, one group per hash seen more than once."""
    by_hash: dict[str, list[str]] = {}
    for e in entries:
        by_hash.setdefault(e.weight_sha256, []).append(e.label)
    return tuple(tuple(v) for v in by_hash.values() if len(v) > 1)
