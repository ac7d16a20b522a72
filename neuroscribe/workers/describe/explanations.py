"""Explanations of units and their scores on held-out sentences (docs/methods.md#b7; beyond the
paper, after OpenAI's automated interpretability and EleutherAI's delphi).

``explain_stage`` runs after the analysis, where the generator is:

1. **Units**: those with a description verified on the held-out half (best verified AUROC first),
   then the others by their largest response ("top-firing"), up to ``job.explain_units``; a unit
   is taken only when it has at least ``MIN_FIRING_SHOWN`` calibration sentences it fires on, one
   it does not, and ``MIN_PER_CLASS`` held-out sentences on each side.
2. **Explanation** (one LLM request per unit, ``prompts.explanations``): up to ``N_FIRING_SHOWN``
   calibration sentences it fires on (its calibration exemplars, best first, topped up with the
   strongest of the calibration sample) and ``N_CONTRAST_SHOWN`` calibration sentences it does not
   fire on (seeded, from ``calibration_sample``). A completion that does not parse is a counted
   failure and the unit is not scored.
3. **Shuffled baseline**: each explained unit also gets another explained unit's explanation (a
   seeded derangement), scored on the same sentences.
4. **Scores**, on held-out sentences only, never one whose text was shown: *detection*, the LLM
   asked yes/no for ``job.detection_sentences`` firing and as many non-firing sentences (seeded),
   balanced accuracy against the firing; *embedding*, the MiniLM cosine of the explanation to each
   held-out sentence of a pool (at most ``EMBED_POOL``), AUROC against the firing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from neuroscribe.jobs import DescribeJob, DescribeResult, SamplingSpec
from neuroscribe.jobs.explanations import ExplanationReport, UnitExplanation
from neuroscribe.prompts.explanations import (DETECTION_PROMPT_VERSION, EXPLANATION_PROMPT_VERSION,
                                              build_detection_messages, build_explanation_messages, parse_detection,
                                              parse_explanation)
from neuroscribe.workers.describe.calibration_sample import CalibrationSample
from neuroscribe.workers.describe.exemplar_stream import ExemplarsArtefact, first_occurrences, text_key
from neuroscribe.workers.describe.explanation_scores import (BOOTSTRAP, CONFIDENCE, auroc, derangement,
                                                             detection_score, summarise)
from neuroscribe.workers.generate.base import GenerationRequest

__all__ = ["explain_stage", "explanation_order", "EXPLANATION_SAMPLING", "DETECTION_SAMPLING", "SELECTION"]

EXPLANATION_SAMPLING = SamplingSpec(temperature=0.2, top_p=0.9, max_new_tokens=48, repetition_penalty=1.15)
DETECTION_SAMPLING = SamplingSpec(temperature=0.0, top_p=1.0, max_new_tokens=4, repetition_penalty=1.0)
N_FIRING_SHOWN, N_CONTRAST_SHOWN, MIN_FIRING_SHOWN = 8, 5, 3
MIN_PER_CLASS = 2
EMBED_POOL = 5000
SELECTION = ("units with a description verified on the held-out half (best verified AUROC first), then the others "
             "by their largest response; each needs >= 3 calibration sentences it fires on, 1 it does not, and "
             f">= {MIN_PER_CLASS} held-out sentences on each side")


@dataclass
class _Plan:
    unit: int
    verified: bool
    firing: list[int]  # calibration rows shown as firing, best first
    contrast: list[int]  # calibration rows shown as not firing
    usable: np.ndarray  # (n_held,) bool: held-out sentences whose text was not shown
    detect: list[int]  # held-out positions asked (firing ones first)


def explanation_order(units) -> list[int]:
    """Unit indices: verified first (best verified held-out AUROC, then index), then the units that
    fire on something by their largest response."""
    best = {i: max(h.auroc or 0.0 for h in u.held_out if h.verified) for i, u in enumerate(units)
            if any(h.verified for h in u.held_out)}
    rest = [i for i, u in enumerate(units) if i not in best and u.n_firing]
    rest.sort(key=lambda i: (-(units[i].max_activation if units[i].max_activation is not None else -np.inf), i))
    return sorted(best, key=lambda i: (-best[i], i)) + rest


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()[:4], "big")


class _Planner:
    def __init__(self, job: DescribeJob, halves, exemplars: ExemplarsArtefact, sample: CalibrationSample):
        self.job, self.texts, self.sample = job, job.dataset.texts, sample
        self.threshold = exemplars.firing.threshold
        self.calibration = exemplars.halves[0]
        valid = np.asarray(halves[1], np.int64)
        self.held_rows = first_occurrences(self.texts, valid)  # distinct held-out sentences
        self.held = np.asarray(exemplars.heldout)[np.searchsorted(valid, self.held_rows)]
        self.held_pos = {text_key(self.texts[r]): i for i, r in enumerate(self.held_rows)}

    def plan(self, u: int, verified: bool) -> _Plan | None:
        texts, thr, n = self.texts, float(self.threshold[u]), self.job.detection_sentences
        rows, values = self.calibration
        firing = [int(r) for r, v in zip(rows[u], values[u]) if v > thr][:N_FIRING_SHOWN]
        shown = {text_key(texts[r]) for r in firing}
        resp = self.sample.responses[:, u].astype(np.float32)
        for j in np.argsort(-resp, kind="stable"):
            if len(firing) >= N_FIRING_SHOWN or resp[j] <= thr:
                break
            r = int(self.sample.rows[j])
            if text_key(texts[r]) not in shown:
                firing.append(r)
                shown.add(text_key(texts[r]))
        quiet = [int(r) for r in self.sample.rows[resp <= thr] if text_key(texts[int(r)]) not in shown]
        if len(firing) < MIN_FIRING_SHOWN or not quiet:
            return None
        rng = np.random.default_rng([self.job.seed, 23, u])
        contrast = sorted(int(r) for r in rng.choice(quiet, size=min(N_CONTRAST_SHOWN, len(quiet)), replace=False))
        shown |= {text_key(texts[r]) for r in contrast}
        usable = np.ones(len(self.held_rows), bool)
        usable[[self.held_pos[k] for k in shown if k in self.held_pos]] = False
        fires = self.held[:, u].astype(np.float32) > thr
        pos, neg = np.flatnonzero(usable & fires), np.flatnonzero(usable & ~fires)
        if pos.size < MIN_PER_CLASS or neg.size < MIN_PER_CLASS:
            return None
        detect = [int(x) for side in (pos, neg) for x in np.sort(rng.choice(side, min(n, side.size), replace=False))]
        return _Plan(u, verified, firing, contrast, usable, detect)


def _explain(backend, plans: list[_Plan], texts, seed: int, progress: bool):
    requests = []
    for p in plans:
        firing, contrast = [texts[r] for r in p.firing], [texts[r] for r in p.contrast]
        requests.append(GenerationRequest(
            key=f"e{p.unit}", messages=build_explanation_messages(firing, contrast),
            sampling=EXPLANATION_SAMPLING.model_copy(update={"seed": _seed(seed, "explanation", *firing, *contrast)}),
            meta={"kind": "explanation", "firing": firing, "contrast": contrast}))
    gens = {g.key: g for g in backend.generate(requests, progress=progress)} if requests else {}
    return [parse_explanation(gens[r.key].text, truncated=gens[r.key].finish_reason == "length") for r in requests]


def _detect(backend, asks: list[tuple[str, str]], progress: bool):
    """Parsed answers to (explanation, sentence) questions, asked once each."""
    distinct = list(dict.fromkeys(asks))
    requests = [GenerationRequest(key=f"q{i}", messages=build_detection_messages(e, s),
                                  sampling=DETECTION_SAMPLING.model_copy(update={"seed": _seed("detection", e, s)}),
                                  meta={"kind": "detection", "explanation": e, "sentence": s})
                for i, (e, s) in enumerate(distinct)]
    gens = backend.generate(requests, progress=progress) if requests else []
    by_key = {g.key: parse_detection(g.text) for g in gens}
    return {q: by_key[r.key] for q, r in zip(distinct, requests)}


def _embedder(job: DescribeJob):
    from neuroscribe.workers.describe.vocabulary import minilm_embedder

    return minilm_embedder(device=job.model.device if job.model.device != "auto" else "cpu")


def _unit_norm(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def explain_stage(job: DescribeJob, result: DescribeResult, halves: Sequence[Sequence[int]],
                  exemplars: ExemplarsArtefact, sample: CalibrationSample | None, backend, embed=None, *,
                  progress: bool = True) -> DescribeResult:
    """``result`` with its ``explanations`` (unchanged when the job asks for none)."""
    if not job.explain_units:
        return result
    if len(halves) != 2 or exemplars.heldout is None or sample is None or exemplars.firing is None:
        note = ("no explanations: they are made on the calibration half and scored on the held-out half, and this "
                "run has no halves (--no-consistency)")
        return result.model_copy(update={"warnings": result.warnings + (note,)})
    texts, seed = job.dataset.texts, job.seed
    planner = _Planner(job, halves, exemplars, sample)
    verified = {i for i, u in enumerate(result.units) if any(h.verified for h in u.held_out)}
    plans: list[_Plan] = []
    for u in explanation_order(result.units):
        if len(plans) >= job.explain_units:
            break
        p = planner.plan(u, u in verified)
        if p is not None:
            plans.append(p)
    parsed = _explain(backend, plans, texts, seed, progress)
    failures = Counter(str(x.failure) for x in parsed if not x.ok)
    done = [(p, x.text) for p, x in zip(plans, parsed) if x.ok]
    shuffled: dict[int, int] = {}
    if len(done) >= 2:
        perm = derangement(len(done), [seed, 29])
        shuffled = {i: int(perm[i]) for i in range(len(done))}
    held_texts = [texts[r] for r in planner.held_rows]
    asks = []
    for i, (p, e) in enumerate(done):
        for told in [e] + ([done[shuffled[i]][1]] if i in shuffled else []):
            asks += [(told, held_texts[j]) for j in p.detect]
    answers = _detect(backend, asks, progress)
    det_fail = Counter(str(a.failure) for a in answers.values() if not a.ok)

    pool = np.arange(len(held_texts))
    if pool.size > EMBED_POOL:
        pool = np.sort(np.random.default_rng([seed, 31]).choice(pool, EMBED_POOL, replace=False))
    embed = embed if embed is not None else (_embedder(job) if done else None)
    vec_s = _unit_norm(embed([held_texts[j] for j in pool])) if done else None
    vec_e = _unit_norm(embed([e for _, e in done])) if done else None

    units, by_plan = [], {p.unit: (i, e) for i, (p, e) in enumerate(done)}
    for p, x in zip(plans, parsed):
        layer, unit = exemplars.layers[p.unit // exemplars.units_per_layer], p.unit % exemplars.units_per_layer
        fields = dict(layer=layer, unit=unit, verified=p.verified, n_firing_shown=len(p.firing),
                      n_contrast_shown=len(p.contrast))
        if not x.ok:
            units.append(UnitExplanation(**fields, failure=str(x.failure)))
            continue
        i, e = by_plan[p.unit]
        fires = planner.held[:, p.unit].astype(np.float32) > float(planner.threshold[p.unit])
        truth = [bool(fires[j]) for j in p.detect]
        det = detection_score([answers[e, held_texts[j]].answer for j in p.detect], truth)
        keep = p.usable[pool]
        f = fires[pool][keep]
        fields.update(explanation=e, detection=det, embedding_auroc=auroc(vec_s[keep] @ vec_e[i], f),
                      embedding_n_pos=int(f.sum()), embedding_n_neg=int((~f).sum()))
        if i in shuffled:
            q, se = done[shuffled[i]]
            fields.update(shuffled_from=(exemplars.layers[q.unit // exemplars.units_per_layer],
                                         q.unit % exemplars.units_per_layer), shuffled_explanation=se,
                          shuffled_detection=detection_score([answers[se, held_texts[j]].answer for j in p.detect],
                                                             truth),
                          shuffled_embedding_auroc=auroc(vec_s[keep] @ vec_e[shuffled[i]], f))
        units.append(UnitExplanation(**fields))

    scored = [u for u in units if u.explanation is not None]
    report = ExplanationReport(
        prompt_version=EXPLANATION_PROMPT_VERSION, detection_prompt_version=DETECTION_PROMPT_VERSION,
        selection=SELECTION, n_requested=job.explain_units, detection_sentences=job.detection_sentences,
        calibration_sample=len(sample.rows), n_selected=len(plans), n_explained=len(done), failures=dict(failures),
        n_detection_requests=len(answers), detection_failures=dict(det_fail), n_embedding_sentences=int(pool.size),
        bootstrap=BOOTSTRAP, confidence=CONFIDENCE, seed=seed,
        detection=summarise([u.detection.balanced_accuracy for u in scored],
                            [u.shuffled_detection.balanced_accuracy if u.shuffled_detection else None for u in scored],
                            seed=[seed, 37]),
        embedding=summarise([u.embedding_auroc for u in scored], [u.shuffled_embedding_auroc for u in scored],
                            seed=[seed, 41]),
        units=tuple(units))
    warnings = list(result.warnings)
    if len(plans) < job.explain_units:
        warnings.append(f"explanations: {len(plans)} of the {job.explain_units} units asked for could be explained and "
                        "scored (a unit needs calibration sentences it fires on and does not, and held-out sentences "
                        "on both sides)")
    if len(done) < 2 and done:
        warnings.append("explanations: a single explained unit has no shuffled baseline")
    return result.model_copy(update={"explanations": report, "warnings": tuple(warnings)})
