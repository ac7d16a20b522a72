"""Edit chosen units of a hook site during a forward pass: the write side of ``activations.hooks``.

``edit_units(model, site, edits, edit)`` is a context manager: within the block, for every layer
of ``edits`` (``layer -> (unit indices, values)``), the tensor read at ``site`` (``activations.sites``)
is replaced, at every position, by ``edit(x, indices, values)``, a modified copy (the module's own
output / input is never written in place). Hooks are attached with ``hooks.register_site_hook``
(forward hook on an output site, forward pre-hook on an input site such as Llama's ``down_proj``
input) and always removed on exit; layers without units get no hook. Indices are taken as int64
tensors and values as float32 tensors, moved to the tensor's device (values also to its dtype) at
each call.

The edits:

``replace_units``  ``x[..., idx] = values`` (the causal check's fixed units; zero / mean interventions);
``shift_units``    ``x[..., idx] = x[..., idx] + values`` (the translate intervention).

``site_sizes(model, model_type, site)`` gives the ``Site`` with the model's layer count and units
per layer, what the callers validate their edits against.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

import torch

from neuroscribe.workers.activations.hooks import register_site_hook
from neuroscribe.workers.activations.sites import Site, get_architecture, get_site

__all__ = ["Edit", "replace_units", "shift_units", "edit_units", "site_sizes"]

Edit = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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


def site_sizes(model, model_type: str | None, site: str) -> tuple[Site, int, int]:
    """``(site, n_layers, units per layer)`` of ``model`` (``model_type`` None: the config's)."""
    model_type = model_type or model.config.model_type
    s = get_site(model_type, site)
    return s, get_architecture(model_type).n_layers(model.config), s.units(model.config)


@contextmanager
def edit_units(model, site: Site, edits: Mapping[int, tuple], edit: Edit = replace_units) -> Iterator[None]:
    """Within the block, ``edit(x, idx, values)`` replaces what ``site`` reads at every layer of
    ``edits`` (``layer -> (idx, values)``; already validated by the caller)."""
    plan = []
    for layer, (idx, vals) in edits.items():
        idx, vals = torch.as_tensor(idx, dtype=torch.long), torch.as_tensor(vals, dtype=torch.float32)
        if idx.numel():
            plan.append((model.base_model.get_submodule(site.module_path(int(layer))), idx, vals))
    handles = []
    try:
        for module, idx, vals in plan:
            handles.append(register_site_hook(module, site, lambda x, idx=idx, vals=vals: edit(x, idx, vals)))
        yield
    finally:
        for h in handles:
            h.remove()
