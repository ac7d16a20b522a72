"""Edit chosen units of a hook site during a forward pass: the write side of ``activations.hooks``.

``edit_units(model, site, edits, edit, mask=None)`` is a context manager: within the block, for every
layer of ``edits`` (``layer -> (unit indices, values)``), the tensor read at ``site``
(``activations.sites``) is replaced by ``edit(x, indices, values)``, a modified copy (the module's own
output / input is never written in place), at every position, or with ``mask`` only at the positions
it marks (``at_positions``): a (batch, seq) bool tensor aligned with the model's inputs, or a callable
returning the one of the forward pass under way (a ``PositionMask`` that the code building each batch
sets); at the other positions the units keep their values. Hooks are attached with
``hooks.register_site_hook`` (forward hook on an output site, forward pre-hook on an input site such
as Llama's ``down_proj`` input) and always removed on exit; layers without units get no hook. Indices are taken as int64
tensors and values as float32 tensors, moved to the tensor's device (values also to its dtype) at
each call.

The edits:

``replace_units``  ``x[..., idx] = values`` (the causal check's fixed units; zero / mean interventions);
``shift_units``    ``x[..., idx] = x[..., idx] + values`` (the translate intervention).

``PositionMask``: the mask of batch after batch, ``set(positions, width)`` from each row's token
indices before the row's forward pass.

``site_sizes(model, model_type, site)`` gives the ``Site`` with the model's layer count and units
per layer, what the callers validate their edits against.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Sequence

import torch

from neuroscribe.workers.activations.hooks import register_site_hook
from neuroscribe.workers.activations.sites import Site, get_architecture, get_site

__all__ = ["Edit", "Mask", "replace_units", "shift_units", "at_positions", "PositionMask", "edit_units",
           "site_sizes"]

Edit = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Mask = torch.Tensor | Callable[[], torch.Tensor]


def replace_units(x: torch.Tensor, idx: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` whose units ``idx`` (last axis) read ``vals`` at every position."""
    x = x.clone()
    x[..., idx.to(x.device)] = vals.to(x.device, x.dtype)
    return x


def shift_units(x: torch.Tensor, idx: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` whose units ``idx`` (last axis) are moved by ``shift`` at every position."""
    x = x.clone()
    idx = idx.to(x.device)
    x[..., idx] = x[..., idx] + shift.to(x.device, x.dtype)
    return x


def at_positions(x: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``edited`` at the positions ``mask`` (batch, seq) marks, ``x`` (the unedited tensor) elsewhere."""
    m = torch.as_tensor(mask, device=x.device).bool()
    if tuple(m.shape) != tuple(x.shape[:-1]):
        raise ValueError(f"the position mask has shape {tuple(m.shape)}; the site's tensor {tuple(x.shape)} needs "
                         f"(batch, seq) = {tuple(x.shape[:-1])}")
    return torch.where(m.unsqueeze(-1), edited, x)


class PositionMask:
    """The positions an edit applies at, batch by batch: whoever builds a batch calls ``set`` before its
    forward pass; ``edit_units(..., mask=this)`` reads the mask through ``__call__``."""

    def __init__(self):
        self._mask: torch.Tensor | None = None

    def set(self, positions: Sequence[Sequence[int]], width: int, device=None) -> None:
        """Row i of the next batch is edited at the token indices ``positions[i]`` (of ``width`` tokens)."""
        m = torch.zeros(len(positions), int(width), dtype=torch.bool)
        for i, p in enumerate(positions):
            m[i, list(p)] = True
        self._mask = m if device is None else m.to(device)

    def __call__(self) -> torch.Tensor:
        if self._mask is None:
            raise RuntimeError("no positions were set for this forward pass")
        return self._mask


def site_sizes(model, model_type: str | None, site: str) -> tuple[Site, int, int]:
    """``(site, n_layers, units per layer)`` of ``model`` (``model_type`` None: the config's)."""
    model_type = model_type or model.config.model_type
    s = get_site(model_type, site)
    return s, get_architecture(model_type).n_layers(model.config), s.units(model.config)


@contextmanager
def edit_units(model, site: Site, edits: Mapping[int, tuple], edit: Edit = replace_units,
               mask: Mask | None = None) -> Iterator[None]:
    """Within the block, ``edit(x, idx, values)`` replaces what ``site`` reads at every layer of
    ``edits`` (``layer -> (idx, values)``; already validated by the caller), at every position or only
    at those ``mask`` marks (a (batch, seq) bool tensor, or a callable giving the current batch's)."""
    plan = []
    for layer, (idx, vals) in edits.items():
        idx, vals = torch.as_tensor(idx, dtype=torch.long), torch.as_tensor(vals, dtype=torch.float32)
        if idx.numel():
            plan.append((model.base_model.get_submodule(site.module_path(int(layer))), idx, vals))

    def hook(x, idx, vals):
        if mask is None:
            return edit(x, idx, vals)
        return at_positions(x, edit(x, idx, vals), mask() if callable(mask) else mask)

    handles = []
    try:
        for module, idx, vals in plan:
            handles.append(register_site_hook(module, site, lambda x, idx=idx, vals=vals: hook(x, idx, vals)))
        yield
    finally:
        for h in handles:
            h.remove()
