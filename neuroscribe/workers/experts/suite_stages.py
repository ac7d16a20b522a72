"""The analysis suite as stages after ``experts_stage`` (docs/methods.md#a3, #a5, #a7):
``(job, artefacts) -> report`` (a pydantic model of ``neuroscribe.jobs.experts_suite``). Nothing here writes files.

* ``stability_stage``: per concept, K-fold stability at the job's tau and the (n+, n-, tau) sweep.
* ``alignment_stage``: Spearman rho against human word-pair ratings for five concept similarities,
  on the same pairs: the experts' AP vectors (cosine, raw and minus the chance level), their
  expert sets (Jaccard), and two
  baselines from the model's own hidden states (output of its last layer, mean-pooled over real
  tokens): of the concept word alone, and averaged over the concept's positive sentences.
* ``causal_stage``: the causal check of each concept's experts (decoder models only).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from neuroscribe.jobs.experts_suite import (
    AlignmentReport,
    CausalReport,
    ConceptCausal,
    ConceptStability,
    FoldStability,
    MethodAlignment,
    PairSimilarity,
    SkippedConcept,
    StabilityReport,
    SweepPoint,
)
from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import ExpertsJob
from neuroscribe.workers.experts.stages import ActivationsArtefact, ExpertsArtefact, SentencesArtefact, concept_groups

__all__ = ["stability_stage", "alignment_stage", "causal_stage", "word_pairs", "DEFAULT_CAUSAL_PROMPTS",
           "ALIGNMENT_METHODS"]

# Neutral contexts after which almost any noun may come next; the concept word's log-probability
# after them is what the causal check moves (package default, recorded in every report).
DEFAULT_CAUSAL_PROMPTS = (
    "Let me tell you about the",
    "The next thing I saw was the",
    "She pointed at the",
    "Everyone was talking about the",
    "In the picture there is a",
    "He wrote a short note about the",
    "The word on the card was",
    "My favourite thing is the",
    "We spent the whole afternoon with the",
    "The teacher asked us to describe the",
)

ALIGNMENT_METHODS = {
    "experts_ap_cosine": "cosine of the concepts' AP vectors over all units (docs/methods.md#a5 default)",
    "experts_ap_above_chance": "cosine of the concepts' AP vectors minus their chance level n+/(n+ + n-), "
                               "so that the shared baseline of uninformative units does not dominate",
    "experts_jaccard": "Jaccard of the concepts' expert sets (AP >= tau)",
    "embedding_word": "baseline: cosine of the mean-pooled last-layer hidden states of the concept word alone",
    "embedding_sentences": "baseline: cosine of the last-layer hidden states mean-pooled over each positive "
                           "sentence, averaged over the concept's positive sentences",
}


def _num(x) -> float | None:
    """NaN (undefined) -> None, for the JSON contract."""
    x = float(x)
    return None if math.isnan(x) else x


# --------------------------------------------------------------------------- stability


def _default_sizes(counts: Sequence[int]) -> tuple[int, ...]:
    low = min(counts)
    return tuple(sorted({max(1, round(low * f)) for f in (0.25, 0.5, 0.75)}))


def stability_stage(job: ExpertsJob, sentences: SentencesArtefact, acts: ActivationsArtefact,
                    *, progress: bool = True) -> StabilityReport | None:
    """K-fold stability and the subsample sweep of every concept (``None`` when the job skips it).
    Grid sizes above what a concept has are left out for that concept; a concept with fewer
    sentences per label than folds gets no fold stability (``jaccard`` None, no counts)."""
    from tqdm.auto import tqdm

    from neuroscribe.workers.experts.stability import best_per_tau, stability, stability_sweep

    spec = job.stability
    if spec is None:
        return None
    groups = concept_groups(job, sentences.records, acts.texts)
    x = acts.responses.matrix()
    n_pos = spec.n_pos or _default_sizes([int(y.sum()) for _, y in groups.values()])
    n_neg = spec.n_neg or _default_sizes([int((~y).sum()) for _, y in groups.values()])
    out = []
    for name, (rows, y) in tqdm(groups.items(), desc="stability", unit="concept", disable=not progress):
        xc = np.asarray(x[rows], dtype=np.float32)
        try:
            st = stability(xc, y, tau=job.tau, k=spec.folds, seed=job.seed)
            folds = FoldStability(tau=st.tau, k=st.k, jaccard=_num(st.jaccard), n_pairs=st.n_pairs,
                                  n_experts=st.n_experts)
        except InvalidInput:
            folds = FoldStability(tau=job.tau, k=spec.folds, jaccard=None, n_pairs=0, n_experts=())
        sizes_p = [a for a in n_pos if a <= y.sum()]
        sizes_n = [b for b in n_neg if b <= (~y).sum()]
        rows_ = stability_sweep(xc, y, n_pos=sizes_p, n_neg=sizes_n, taus=spec.taus, repeats=spec.repeats,
                                seed=job.seed) if sizes_p and sizes_n else []
        points = tuple(SweepPoint(**{**r.as_dict(), "jaccard": _num(r.jaccard)}) for r in rows_)
        best = best_per_tau(rows_)
        by_key = {(p.n_pos, p.n_neg, p.tau): p for p in points}
        best_points = {str(t): (by_key[r.n_pos, r.n_neg, r.tau] if r is not None else None) for t, r in best.items()}
        out.append(ConceptStability(concept=name, folds=folds, sweep=points, best=best_points))
    return StabilityReport(spec=spec, n_pos=tuple(n_pos), n_neg=tuple(n_neg), concepts=tuple(out))


# --------------------------------------------------------------------------- human alignment


def word_pairs(job: ExpertsJob):
    """The job's word pairs (``alignment.pairs``) or the packaged MEN."""
    from neuroscribe.workers.experts.alignment import WordPair, load_word_pairs

    spec = job.alignment
    if spec is None or spec.pairs is None:
        return load_word_pairs()
    return [WordPair(p.word1, p.word2, float(p.score)) for p in spec.pairs]


def _hidden_means(subject, texts: list[str], job: ExpertsJob, cache_dir, progress: bool) -> tuple[np.ndarray, int]:
    from neuroscribe.workers.activations import cached_capture

    layer = subject.n_layers - 1
    resp, _ = cached_capture(subject, texts, cache_dir, site="residual", pooling="mean", layers=[layer],
                             batch_size=job.model.batch_size, max_length=job.model.max_length, progress=progress)
    return np.asarray(resp.arrays[layer], dtype=np.float64), layer


def alignment_stage(job: ExpertsJob, subject, sentences: SentencesArtefact, acts: ActivationsArtefact,
                    experts: ExpertsArtefact, *, cache_dir=None, progress: bool = True) -> AlignmentReport | None:
    """Spearman rho of each similarity in ``ALIGNMENT_METHODS`` against the human scores, on the
    pairs whose both words are concepts of the job (and every similarity is defined)."""
    from neuroscribe.workers.experts.alignment import alignment_table, binary_jaccard_similarity, cosine_similarity_matrix

    spec = job.alignment
    if spec is None:
        return None
    names = [c.name for c in job.concepts]
    ap_vectors = {n: experts.ap[:, j].astype(np.float64) for j, n in enumerate(names)}
    chance = {c.concept: c.n_pos / (c.n_pos + c.n_neg) for c in experts.result.concepts}
    expert_sets = {c.concept: {(u.layer, u.unit) for u in c.experts} for c in experts.result.concepts}
    words, layer = _hidden_means(subject, names, job, cache_dir, progress)
    pos_texts = list(dict.fromkeys(r.text for r in sentences.records if r.label == 1))
    sent_h, _ = _hidden_means(subject, pos_texts, job, cache_dir, progress)
    row = {t: i for i, t in enumerate(pos_texts)}
    sent_vec = {n: sent_h[[row[r.text] for r in sentences.records if r.concept == n and r.label == 1]].mean(axis=0)
                for n in names}
    sims = {
        "experts_ap_cosine": cosine_similarity_matrix(ap_vectors),
        "experts_ap_above_chance": cosine_similarity_matrix({n: v - chance[n] for n, v in ap_vectors.items()}),
        "experts_jaccard": binary_jaccard_similarity(expert_sets),
        "embedding_word": cosine_similarity_matrix({n: words[i] for i, n in enumerate(names)}),
        "embedding_sentences": cosine_similarity_matrix(sent_vec),
    }
    t = alignment_table(sims, word_pairs(job), names, dataset=spec.dataset)
    return AlignmentReport(
        dataset=spec.dataset, n_pairs=t["n_pairs"],
        methods=tuple(MethodAlignment(method=m, description=ALIGNMENT_METHODS[m], rho=_num(r), p_value=_num(p))
                      for m, (r, p) in t["rho"].items()),
        pairs=tuple(PairSimilarity(word1=p.word1, word2=p.word2, human=p.score,
                                   similarity={k: float(v) for k, v in vals.items()}) for p, vals in t["rows"]),
        skipped=tuple(SkippedConcept(concept=s.concept, reason=s.reason) for s in t["skipped"]),
        dropped_pairs=tuple({"word1": a, "word2": b, "reason": why} for a, b, why in t["dropped"]),
        baseline_layer=layer,
    )


# --------------------------------------------------------------------------- causal check


def causal_stage(job: ExpertsJob, subject, sentences: SentencesArtefact, acts: ActivationsArtefact,
                 experts: ExpertsArtefact, *, log: Callable[[str], None] = print) -> CausalReport | None:
    """Fix each concept's experts (the best ``max_experts`` by AP) to their median response on the
    concept's positive sentences; change in log P(concept word) after neutral prompts against as
    many random units of the same layers (``workers.causal.causal_effect``)."""
    from neuroscribe.workers.experts.causal import DECODER_MODEL_TYPES, causal_effect, load_causal_lm

    spec = job.causal
    if spec is None:
        return None
    prompts = tuple(spec.prompts or DEFAULT_CAUSAL_PROMPTS)
    site = job.model.site
    if subject.model_type not in DECODER_MODEL_TYPES:
        return CausalReport(site=site, confidence=spec.confidence, prompts=prompts, concepts=(),
                            skipped=f"the causal check needs a decoder model with an LM head; {job.model.name} is "
                                    f"a {subject.model_type} model")
    log(f"causal check: loading {job.model.name} with its LM head")
    model, tokenizer = load_causal_lm(job.model.name, revision=job.model.revision, device=str(subject.device),
                                      trust_remote_code=job.model.trust_remote_code)
    groups = concept_groups(job, sentences.records, acts.texts)
    resp = acts.responses
    out = []
    for j, c in enumerate(experts.result.concepts):
        units = [(u.layer, u.unit) for u in c.experts[: spec.max_experts]]
        if not units:
            out.append(ConceptCausal(concept=c.concept, n_units=0, n_prompts=len(prompts), n_random=spec.n_random,
                                     words=(c.concept,), skipped=f"no experts at tau {job.tau}"))
            continue
        rows, y = groups[c.concept]
        positives = rows[y]
        values = {layer: np.asarray(resp.arrays[layer][positives], dtype=np.float64)
                  for layer in {u[0] for u in units}}
        try:
            r = causal_effect(model, tokenizer, subject.model_type, site=site, experts=units, unit_value=values,
                              prompts=prompts, words=[c.concept], n_random=spec.n_random, seed=job.seed + j,
                              confidence=spec.confidence, batch_size=job.model.batch_size)
        except InvalidInput as e:
            out.append(ConceptCausal(concept=c.concept, n_units=len(units), n_prompts=len(prompts),
                                     n_random=spec.n_random, words=(c.concept,), skipped=e.message))
            continue
        ci = lambda pair: tuple(_num(v) for v in pair)  # noqa: E731
        out.append(ConceptCausal(
            concept=c.concept, n_units=r.n_units, n_prompts=r.n_prompts, n_random=r.n_random, words=(c.concept,),
            mean_experts=_num(r.mean_experts), ci_experts=ci(r.ci_experts), mean_random=_num(r.mean_random),
            ci_random=ci(r.ci_random), mean_difference=_num(r.mean_difference), ci_difference=ci(r.ci_difference),
        ))
    del model
    return CausalReport(site=site, confidence=spec.confidence, prompts=prompts, concepts=tuple(out))

