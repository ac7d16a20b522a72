"""Attach one hook per layer at a site, as a context manager that always removes them.

The callback receives ``(layer, tensor)`` with the (B, T, U) tensor read at the site. After the
deepest requested layer has been read, ``SiteHooks`` can stop the forward pass (``stop_early``):
the rest of the model is never run, and ``run`` swallows the internal stop signal.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from neuroscribe.workers.activations.sites import Site

__all__ = ["SiteHooks"]


class _StopForward(Exception):
    """Raised from the deepest hook to skip the rest of the forward pass."""


def _first(x):
    return x[0] if isinstance(x, (tuple, list)) else x


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

        if self.site.hook == "input":
            return lambda module, args: deliver(args[0])
        return lambda module, args, output: deliver(output)

    def __enter__(self) -> "SiteHooks":
        base = self.model.base_model
        modules = [base.get_submodule(self.site.module_path(i)) for i in self.layers]
        if len({id(m) for m in modules}) != len(modules):
            raise RuntimeError(f"site {self.site.name}: layers share one module object; cannot tell them apart")
        try:
            for layer, module in zip(self.layers, modules):
                hook = self._make(layer)
                register = (module.register_forward_pre_hook if self.site.hook == "input"
                            else module.register_forward_hook)
                self._handles.append(register(hook))
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
