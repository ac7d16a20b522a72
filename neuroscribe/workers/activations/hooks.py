"""Attach one hook per layer at a site, as a context manager that always removes them.

The callback receives ``(layer, tensor)`` with the (B, T, U) tensor read at the site. After the
deepest requested layer has been read, ``SiteHooks`` can stop the forward pass (``stop_early``):
the rest of the model is never run, and ``run`` swallows the internal stop signal.

``register_site_hook`` is the one place a site's hook is attached (a forward pre-hook on the
module's first positional argument for an input site, a forward hook on its output -- the first
element of a tuple output -- otherwise): the capture here and the unit edits
(``activations.edits``) both go through it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from neuroscribe.workers.activations.sites import Site

__all__ = ["SiteHooks", "register_site_hook"]


class _StopForward(Exception):
    """Raised from the deepest hook to skip the rest of the forward pass."""


def _first(x):
    return x[0] if isinstance(x, (tuple, list)) else x


def register_site_hook(module: torch.nn.Module, site: Site,
                       fn: Callable[[torch.Tensor], torch.Tensor | None]):
    """Hook ``module`` at ``site``: ``fn`` gets the tensor read there (the input's first positional
    argument, or the output's first element); a tensor it returns replaces that one in the forward
    pass, ``None`` leaves it. Returns the hook's handle."""
    if site.hook == "input":
        def pre(mod, args):
            new = fn(args[0])
            return None if new is None else (new, *args[1:])
        return module.register_forward_pre_hook(pre)

    def post(mod, args, out):
        new = fn(_first(out))
        if new is None:
            return None
        return type(out)((new, *out[1:])) if isinstance(out, (tuple, list)) else new
    return module.register_forward_hook(post)


class SiteHooks:
    """``with SiteHooks(model, site, layers, callback) as hooks: hooks.run(**batch)``."""

    def __init__(self, model: torch.nn.Module, site: Site, layers: Sequence[int],
                 callback: Callable[[int, torch.Tensor], None], *, stop_early: bool = True):
        self.model = model
        self.site = site
        self.layers = list(layers)
        self.callback = callback
        self.stop_layer = max(self.layers) if stop_early and self.layers else None
        self._handles: list = []

    def _make(self, layer: int):
        stop = layer == self.stop_layer

        def deliver(value) -> None:
            value = _first(value)
            if value.dim() != 3:
                raise RuntimeError(f"site {self.site.name} layer {layer}: expected (batch, tokens, units), "
                                   f"got shape {tuple(value.shape)}")
            self.callback(layer, value)
            if stop:
                raise _StopForward

        return deliver

    def __enter__(self) -> "SiteHooks":
        base = self.model.base_model
        modules = [base.get_submodule(self.site.module_path(i)) for i in self.layers]
        if len({id(m) for m in modules}) != len(modules):
            raise RuntimeError(f"site {self.site.name}: layers share one module object; cannot tell them apart")
        try:
            for layer, module in zip(self.layers, modules):
                self._handles.append(register_site_hook(module, self.site, self._make(layer)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def run(self, **inputs) -> None:
        """Forward ``inputs`` through the model; every requested layer's callback has run after."""
        try:
            self.model(**inputs)
        except _StopForward:
            pass
