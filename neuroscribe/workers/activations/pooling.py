"""Pooling per-token values into one response per sentence, vectorised over the batch.

*Real* tokens: attended (``attention_mask == 1``) and not special (the tokenizer's
``special_tokens_mask``). A sentence with no real token (all special) falls back to all attended
tokens.

``max``   largest value over real tokens;
``mean``  mean over real tokens;
``last``  the last real token;
``cls``   position 0, special or not ([CLS] for BERT; the first token, BOS if the tokenizer
          adds one, for decoders). Rows are right-padded, so position 0 is always attended.

Pooling runs in float32 whatever the model's dtype. Values at padding positions must be finite
(``max`` adds -inf there, ``mean`` weights them 0), as they are in a right-padded forward pass.
"""

from __future__ import annotations

from typing import Callable

import torch

from neuroscribe.errors import InvalidInput

__all__ = ["POOLINGS", "Pooler", "real_token_mask", "pool", "check_pooling"]


def real_token_mask(attention_mask: torch.Tensor, special_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: attended non-special tokens; rows with none fall back to all attended tokens."""
    attended = attention_mask.bool()
    real = attended & ~special_mask.bool()
    empty = ~real.any(dim=1, keepdim=True)
    return torch.where(empty, attended, real)


# Each pooling: prepare(real) -> aux, computed once per batch; apply(x, aux) -> (B, U), once per
# layer. The masks become an additive bias / weights so the per-layer work is one cheap pass
# (masked_fill on the (B, T, U) tensor costs ~4x more).


def _max_prep(real: torch.Tensor) -> torch.Tensor:
    bias = torch.zeros(real.shape, dtype=torch.float32, device=real.device)
    return bias.masked_fill_(~real, float("-inf")).unsqueeze(-1)  # (B, T, 1): 0 real, -inf not


def _max(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return (x + bias).amax(dim=1)


def _mean_prep(real: torch.Tensor) -> torch.Tensor:
    w = real.to(torch.float32)
    return (w / w.sum(dim=1, keepdim=True).clamp_min(1.0)).unsqueeze(1)  # (B, 1, T)


def _mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.bmm(w, x).squeeze(1)


def _last_prep(real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pos = torch.arange(real.shape[1], device=real.device).expand_as(real)
    return torch.arange(real.shape[0], device=real.device), torch.where(real, pos, -1).amax(dim=1)


def _last(x: torch.Tensor, rows_idx: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return x[rows_idx]


def _cls_prep(real: torch.Tensor) -> None:
    return None


def _cls(x: torch.Tensor, _: None) -> torch.Tensor:
    return x[:, 0]


POOLINGS: dict[str, tuple[Callable, Callable]] = {
    "max": (_max_prep, _max), "mean": (_mean_prep, _mean), "last": (_last_prep, _last), "cls": (_cls_prep, _cls),
}


class Pooler:
    """One batch's pooling: ``Pooler("max", real)(values)`` -> (B, U) float32, for any layer."""

    def __init__(self, pooling: str, real: torch.Tensor):
        prepare, self._apply = POOLINGS[pooling]
        self._aux = prepare(real)

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        return self._apply(values.float(), self._aux)


def check_pooling(pooling) -> str:
    """The pooling's name (accepts ``jobs.Pooling``); ``InvalidInput("pooling")`` if unknown."""
    name = str(getattr(pooling, "value", pooling))
    if name not in POOLINGS:
        raise InvalidInput("pooling", f"unknown pooling {name!r} (choose from: {', '.join(POOLINGS)})")
    return name


def pool(values: torch.Tensor, real: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, T, U) values and (B, T) real-token mask -> (B, U) float32."""
    return Pooler(pooling, real)(values)
