"""Token-level evidence of every unit of a describe job (docs/methods.md#b3): which tokens of its
exemplar sentences the unit responds to, a few sentences from across its response distribution,
its mean and a display histogram. Written to the result folder as ``token_evidence.npz`` and
``token_evidence.json``, in the format of docs/atlas.md ("Token-level evidence").

Per unit, E = k + len(``LEVELS``) sentences, its k top exemplars first (as ``UnitReport.exemplars``),
then one **quantile sample** per level of ``LEVELS`` (0.5, 0.9, 0.99: the median, the upper
bulk and the tail below the top exemplars; levels of ``exemplar_stream.QUANTILE_LEVELS``, so the
targets are the unit's own ``UnitReport.quantiles``):

1. ``SAMPLE`` (200) distinct rows are drawn once, seeded by the job's seed (all of them when fewer),
   and their pooled responses are captured as in the first pass (same site, pooling, layers,
   max_length: ``capture_responses``). For each unit and level, the sampled sentence whose response
   is nearest the unit's quantile at that level is its sample (ties: the lower row). Nearest-point
   choice is monotone, so the samples' responses are ordered as the levels.
2. One **per-token pass** over the distinct sentences that are some unit's exemplar or sample
   (their union, batched, tokenized and truncated exactly as the capture: ``tokenize_texts``,
   ``iter_batches``, ``SiteHooks``): inside each layer's hook only the (sentence, unit) pairs asked
   for are gathered, at the sentence's *real* tokens (``real_token_mask``: the tokens pooling
   uses), and written as float16 into one flat array. Memory: O(units x E x tokens), never
   sentences x units x tokens.

``activation`` is the pooled response of the first pass for the top exemplars and of step 1 for
the samples. Under ``max`` pooling the largest per-token value of a sentence equals it, under
``mean`` their mean, under ``last`` the last value (to float16 precision); under ``cls`` it is
position 0's value ([CLS], a special token), which is not among the real tokens shown.
Each sentence's real tokens are also given as character spans [start, end) of its text (the fast
tokenizer's offsets; with a slow tokenizer, which has none, every span is [0, 0]).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.describe.exemplar_stream import ExemplarsArtefact, first_occurrences
from neuroscribe.workers.describe.unit_summary import HIST_BINS

__all__ = ["TokenEvidence", "token_evidence", "token_evidence_stage", "quantile_samples", "sample_rows",
           "token_spans", "LEVELS", "SAMPLE"]

LEVELS = (0.5, 0.9, 0.99)
SAMPLE = 200
_F16_MAX = float(np.finfo(np.float16).max)
_SLAB = 4096  # units at a time when picking the samples


@dataclass
class TokenEvidence:
    """Per unit (layer-major, N units) E sentences; ``values[offset : offset + length]`` is the
    unit's activation at each real token of that sentence, whose character spans are
    ``spans[row]``. Arrays and their dtypes: docs/atlas.md."""

    levels: tuple[float, ...]
    site: str
    pooling: str
    max_length: int
    layer: np.ndarray  # (N,) int32
    unit: np.ndarray  # (N,) int32
    rows: np.ndarray  # (N, E) int32, -1: none
    kind: np.ndarray  # (N, E) int8: 0 top exemplar, i >= 1 sample at levels[i - 1]
    activation: np.ndarray  # (N, E) float32
    offset: np.ndarray  # (N, E) int64
    length: np.ndarray  # (N, E) int32
    values: np.ndarray  # flat float16
    mean: np.ndarray  # (N,) float32
    hist_counts: np.ndarray  # (N, B) int32
    hist_edges: np.ndarray  # (N, B + 1) float32
    spans: dict[int, list[list[int]]]  # row -> [[start, end], ...] of its real tokens

    NPZ = "token_evidence.npz"
    JSON = "token_evidence.json"
    ARRAYS = ("layer", "unit", "rows", "kind", "activation", "offset", "length", "values", "mean", "hist_counts",
              "hist_edges")

    def tokens(self, i: int, e: int) -> np.ndarray:
        """Unit ``i``'s per-token values on its ``e``-th sentence."""
        o = int(self.offset[i, e])
        return self.values[o:o + int(self.length[i, e])]

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        np.savez(directory / self.NPZ, **{name: getattr(self, name) for name in self.ARRAYS})
        meta = {"levels": list(self.levels), "site": self.site, "pooling": self.pooling, "max_length": self.max_length,
                "sentences": {str(r): self.spans[r] for r in sorted(self.spans)}}
        (directory / self.JSON).write_text(json.dumps(meta, separators=(",", ":")), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "TokenEvidence | None":
        """From ``directory``; None when it holds none (a job that skipped them, or an older artefact)."""
        directory = Path(directory)
        if not (directory / cls.NPZ).is_file():
            return None
        meta = json.loads((directory / cls.JSON).read_text(encoding="utf-8"))
        with np.load(directory / cls.NPZ, allow_pickle=False) as z:
            arrays = {name: z[name] for name in cls.ARRAYS}
        spans = {int(r): [list(map(int, s)) for s in v] for r, v in meta["sentences"].items()}
        return cls(tuple(float(q) for q in meta["levels"]), meta["site"], meta["pooling"], int(meta["max_length"]),
                   spans=spans, **arrays)


def sample_rows(texts: Sequence[str], size: int, seed: int) -> np.ndarray:
    """At most ``size`` distinct rows (first occurrences), seeded, sorted."""
    distinct = first_occurrences(texts)
    if distinct.size <= size:
        return distinct
    return np.sort(np.random.default_rng([seed, 29]).choice(distinct, size=size, replace=False))


def quantile_samples(responses: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(U, L) index into ``responses`` (S, U) of the sample nearest each target (U, L); ties: the
    first; NaN is never nearer than a number."""
    responses = np.asarray(responses, np.float32)
    units, n_levels = targets.shape
    out = np.zeros((units, n_levels), np.int64)
    for s in range(0, units, _SLAB):
        e = min(units, s + _SLAB)
        for j in range(n_levels):
            d = np.abs(responses[:, s:e] - targets[s:e, j][None, :])
            out[s:e, j] = np.where(np.isnan(d), np.inf, d).argmin(axis=0)
    return out


def _real_counts(tok) -> tuple[np.ndarray, np.ndarray]:
    """(per sentence its real tokens' count, flat mask of them): the non-special tokens, all of a
    sentence's tokens when none is (``real_token_mask``'s fallback)."""
    plain = tok.special == 0
    counts = np.add.reduceat(plain.astype(np.int64), tok.offsets) if len(tok.lengths) else np.zeros(0, np.int64)
    none = np.repeat(counts == 0, tok.lengths)
    real = plain | none
    return np.where(counts == 0, tok.lengths, counts), real


def token_spans(tokenizer, texts: Sequence[str], max_length: int, tok) -> list[list[list[int]]]:
    """Per sentence, the character spans [start, end) of its real tokens (``tok``: ``tokenize_texts``
    of the same texts), in token order; [0, 0] each when the tokenizer gives no offsets."""
    try:
        enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False,
                        return_offsets_mapping=True, return_attention_mask=False, return_token_type_ids=False)
        offsets = enc["offset_mapping"]
    except NotImplementedError:  # a slow (Python) tokenizer has no offsets
        offsets = None
    _, real = _real_counts(tok)
    out = []
    for i in range(len(texts)):
        a, n = int(tok.offsets[i]), int(tok.lengths[i])
        mask = real[a:a + n]
        if offsets is None:
            out.append([[0, 0] for _ in range(int(mask.sum()))])
            continue
        if len(offsets[i]) != n:
            raise RuntimeError(f"sentence {i}: {len(offsets[i])} offsets for {n} tokens")
        out.append([[int(s), int(e)] for (s, e), r in zip(offsets[i], mask) if r])
    return out


def _per_token(subject, texts: Sequence[str], rows: np.ndarray, layers: list[int], units_per_layer: int, *,
               site: str, max_length: int, batch_size: int, progress: bool):
    """(offset, length, values, spans) of every (unit, slot) of ``rows`` (N, E), one forward pass
    over the distinct rows named (module docstring, step 2)."""
    import torch

    from neuroscribe.workers.activations.capture import iter_batches, tokenize_texts
    from neuroscribe.workers.activations.hooks import SiteHooks
    from neuroscribe.workers.activations.pooling import real_token_mask
    from neuroscribe.workers.activations.sites import get_site

    n_slots = rows.shape[1]
    flat = rows.ravel().astype(np.int64)
    valid = flat >= 0
    sent = np.unique(flat[valid])  # the distinct sentences of the pass, by row
    length = np.zeros(flat.size, np.int64)
    if not sent.size:
        return np.zeros(rows.shape, np.int64), length.reshape(rows.shape).astype(np.int32), np.zeros(0, np.float16), {}
    sub = [texts[int(r)] for r in sent]
    tok = tokenize_texts(subject.tokenizer, sub, max_length)
    n_real, _ = _real_counts(tok)
    spans = dict(zip(sent.tolist(), token_spans(subject.tokenizer, sub, max_length, tok)))
    d = np.full(flat.size, -1, np.int64)
    d[valid] = np.searchsorted(sent, flat[valid])
    length[valid] = n_real[d[valid]]
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    values = np.zeros(int(length.sum()), np.float16)
    pairs = np.flatnonzero(valid)
    pairs = pairs[np.argsort(d[pairs], kind="stable")]  # grouped by sentence
    bounds = np.searchsorted(d[pairs], np.arange(sent.size + 1))
    position = {layer: j for j, layer in enumerate(layers)}
    state: dict = {}

    def on_value(layer: int, v: torch.Tensor) -> None:
        got = state["by_layer"].get(position[layer])
        if got is None:
            return
        p, b, u = got
        picked = v.transpose(1, 2)[b, u]  # (P, T)
        real = state["real"][b]
        out = picked[real].float().clamp(-_F16_MAX, _F16_MAX).to(torch.float16).cpu().numpy()
        lens = length[p]
        values[np.repeat(offset[p] - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))] = out

    pad = subject.tokenizer.pad_token_id
    batches = iter_batches(tok, int(batch_size), sort_by_length=True, pad_id=0 if pad is None else int(pad),
                           device=subject.device)
    with torch.inference_mode(), SiteHooks(subject.model, get_site(subject.model_type, site), layers,
                                           on_value) as hooks, \
            tqdm(total=int(sent.size), desc="token evidence", unit="sent", disable=not progress, leave=False) as bar:
        for batch in batches:
            seg = [pairs[bounds[i]:bounds[i + 1]] for i in batch.rows]
            p = np.concatenate(seg)
            b = np.repeat(np.arange(len(seg)), [len(x) for x in seg])
            unit = p // n_slots
            where = unit // units_per_layer
            state["by_layer"] = {}
            for j in np.unique(where):
                m = where == j
                state["by_layer"][int(j)] = (p[m], torch.from_numpy(b[m]).to(subject.device),
                                             torch.from_numpy(unit[m] % units_per_layer).to(subject.device))
            state["real"] = real_token_mask(batch.attention_mask, batch.special_mask)
            hooks.run(**batch.model_inputs())
            bar.update(len(batch.rows))
    return offset.reshape(rows.shape), length.reshape(rows.shape).astype(np.int32), values, spans


def token_evidence(subject, texts: Sequence[str], exemplars: ExemplarsArtefact, *, site: str, pooling: str,
                   max_length: int = 128, batch_size: int = 32, seed: int = 0, levels: Sequence[float] = LEVELS,
                   sample: int = SAMPLE, progress: bool = True) -> TokenEvidence:
    """Token-level evidence of every unit of ``exemplars`` (found on ``texts`` with the same
    ``site``, ``pooling`` and ``max_length``): module docstring."""
    from neuroscribe.workers.activations import capture_responses
    from neuroscribe.workers.activations.sites import get_site

    fs = exemplars.firing
    if fs is None:
        raise InvalidInput("exemplars", "the exemplars artefact has no firing statistics; run its stage again")
    levels = tuple(float(q) for q in levels)
    missing = [q for q in levels if q not in fs.levels]
    if missing:
        raise InvalidInput("levels", f"{missing} are not quantile levels of the exemplars ({list(fs.levels)})")
    if int(sample) < 1:
        raise InvalidInput("sample", f"must be >= 1, got {sample}")
    layers, upl = list(exemplars.layers), exemplars.units_per_layer
    n_units = exemplars.rows.shape[0]
    drawn = sample_rows(texts, int(sample), seed)
    resp = capture_responses(subject, [texts[int(r)] for r in drawn], site=site, pooling=pooling, layers=layers,
                             batch_size=batch_size, max_length=max_length, progress=False).matrix(layers)
    resp = resp.astype(np.float32)
    pick = quantile_samples(resp, fs.quantiles[:, [fs.levels.index(q) for q in levels]])
    rows = np.concatenate([exemplars.rows, drawn[pick]], axis=1).astype(np.int32)
    activation = np.concatenate([exemplars.values, resp[pick, np.arange(n_units)[:, None]]], axis=1)
    kind = np.broadcast_to(np.r_[np.zeros(exemplars.k), np.arange(1, len(levels) + 1)].astype(np.int8), rows.shape)
    offset, length, values, spans = _per_token(subject, texts, rows, layers, upl, site=site, max_length=max_length,
                                               batch_size=batch_size, progress=progress)
    s = exemplars.summary
    if s is None:  # an artefact from before the summary
        s_mean = np.full(n_units, np.nan, np.float32)
        s_counts, s_edges = np.zeros((n_units, HIST_BINS), np.int32), np.full((n_units, HIST_BINS + 1), np.nan)
    else:
        s_mean, s_counts, s_edges = s.mean, s.hist_counts, s.hist_edges
    return TokenEvidence(
        levels=levels, site=get_site(subject.model_type, site).name, pooling=str(pooling), max_length=int(max_length),
        layer=np.repeat(np.asarray(layers, np.int32), upl), unit=np.tile(np.arange(upl, dtype=np.int32), len(layers)),
        rows=rows, kind=np.ascontiguousarray(kind), activation=activation.astype(np.float32), offset=offset,
        length=length, values=values, mean=np.asarray(s_mean, np.float32),
        hist_counts=np.asarray(s_counts, np.int32), hist_edges=np.asarray(s_edges, np.float32), spans=spans)


def token_evidence_stage(job, subject, exemplars: ExemplarsArtefact, *, progress: bool = True) -> TokenEvidence | None:
    """The describe job's token evidence (None when the job skips it: ``token_evidence`` false),
    with the job's site, pooling, max_length, batch size and seed."""
    if not getattr(job, "token_evidence", True):
        return None
    spec = job.model
    return token_evidence(subject, job.dataset.texts, exemplars, site=spec.site, pooling=spec.pooling.value,
                          max_length=spec.max_length, batch_size=spec.batch_size, seed=job.seed, progress=progress)
