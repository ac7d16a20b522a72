"""Per-request seeds inside one transformers batch.

``model.generate(do_sample=True)`` draws every row from the one global torch RNG, so a row's
sample depends on its batch mates. ``RowSampler`` instead is a logits processor that does the
sampling itself -- temperature, then top-p, then one uniform draw from *that row's own*
``torch.Generator`` per step (inverse-CDF) -- and returns scores that are 0 for the chosen token
and -inf elsewhere; run with ``do_sample=False``, greedy decoding then picks exactly that token.
transformers applies its own processors (repetition penalty) before custom ones, so the order is
the usual one: penalty -> temperature -> top-p -> sample.

Row ``i`` draws exactly one number per decoding step, so its tokens depend only on its own seed
and its own logits: the same request gives the same text whatever else is in the batch (up to
floating-point differences between padded shapes).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import LogitsProcessor

__all__ = ["RowSampler"]


class RowSampler(LogitsProcessor):
    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, device: torch.device | str):
        if temperature <= 0:
            raise ValueError("RowSampler needs temperature > 0 (use greedy decoding for 0)")
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise RuntimeError(f"RowSampler built for {len(self.generators)} rows, got {scores.shape[0]}")
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            mass_before = sorted_p.cumsum(dim=-1) - sorted_p
            sorted_p = sorted_p.masked_fill(mass_before >= self.top_p, 0.0)  # the top token always stays
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        cdf = probs.cumsum(dim=-1)
        cdf = cdf / cdf[:, -1:]
        u = torch.cat([torch.rand(1, generator=g, device=scores.device) for g in self.generators])
        # right=True: the first index whose cdf exceeds u, so a zero-probability token is never hit
        tokens = torch.searchsorted(cdf, u[:, None], right=True).clamp_(max=scores.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, tokens, 0.0)
