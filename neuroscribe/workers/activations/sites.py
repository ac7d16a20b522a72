"""Hook sites: where a unit's activation is read, per architecture, as a registry of data.

A *site* names one module per layer (a path template relative to ``model.base_model``, with
``{i}`` for the layer) and whether its forward *output* or its forward *input* (a pre-hook) is
read. Every architecture has:

``mlp_post``  the MLP post-activation, i.e. the input of the MLP's down-projection
              (BERT family: ``encoder.layer.{i}.intermediate`` output; GPT-NeoX / GPT-2:
              ``…mlp.act`` output; Llama family: ``layers.{i}.mlp.down_proj`` input, =
              ``act(gate(x)) * up(x)``).
``residual``  the hidden state a block hands to the next one (its output; the first element when
              the block returns a tuple). For the last layer of a decoder this is *before* the
              final norm, so it differs from ``hidden_states[-1]`` of ``output_hidden_states``.

Adding an architecture is one ``_register`` call below; nothing else branches on the model type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from neuroscribe.errors import SiteNotFound

__all__ = ["Site", "Architecture", "ARCHITECTURES", "list_sites", "get_site", "get_architecture", "default_n_layers"]

Hook = Literal["output", "input"]


def _attr(*names: str, default: Callable[[object], int] | None = None) -> Callable[[object], int]:
    """A units/layers counter: the first of ``names`` set on the config, else ``default(config)``."""

    def read(config) -> int:
        for n in names:
            v = getattr(config, n, None)
            if v is not None:
                return int(v)
        if default is None:
            raise AttributeError(f"config has none of {names}")
        return int(default(config))

    return read


@dataclass(frozen=True)
class Site:
    """One hook site of one architecture."""

    name: str
    template: str  # module path relative to model.base_model, "{i}" = layer index
    hook: Hook  # "output": forward hook; "input": forward pre-hook (first positional argument)
    units: Callable[[object], int]  # config -> units per layer
    description: str = ""

    def module_path(self, layer: int) -> str:
        return self.template.format(i=layer)


@dataclass(frozen=True)
class Architecture:
    model_types: tuple[str, ...]
    blocks: str  # path of the ModuleList of blocks, relative to model.base_model
    n_layers: Callable[[object], int]
    sites: dict[str, Site]


ARCHITECTURES: dict[str, Architecture] = {}


def _register(model_types: tuple[str, ...], *, blocks: str, mlp_post: str, mlp_hook: Hook,
              mlp_units: Callable[[object], int], hidden: Callable[[object], int],
              n_layers: Callable[[object], int]) -> None:
    sites = {
        "mlp_post": Site("mlp_post", f"{blocks}.{{i}}.{mlp_post}", mlp_hook, mlp_units,
                         "MLP post-activation (input of the down-projection)"),
        "residual": Site("residual", f"{blocks}.{{i}}", "output", hidden,
                         "block output (residual stream after block i)"),
    }
    arch = Architecture(model_types, blocks, n_layers, sites)
    for mt in model_types:
        ARCHITECTURES[mt] = arch


_hidden = _attr("hidden_size", "n_embd", "d_model")
# The layer count of a config: also for an architecture without hook sites (``loading``, ``sweep``).
default_n_layers = _attr("num_hidden_layers", "n_layer", "num_layers")

# BERT family: BertIntermediate = dense + activation; its output feeds output.dense.
_register(("bert", "roberta", "xlm-roberta", "camembert", "electra"),
          blocks="encoder.layer", mlp_post="intermediate", mlp_hook="output",
          mlp_units=_attr("intermediate_size"), hidden=_hidden, n_layers=default_n_layers)
# GPT-NeoX (Pythia): mlp = dense_h_to_4h -> act -> dense_4h_to_h.
_register(("gpt_neox",),
          blocks="layers", mlp_post="mlp.act", mlp_hook="output",
          mlp_units=_attr("intermediate_size"), hidden=_hidden, n_layers=default_n_layers)
# GPT-2: mlp = c_fc -> act -> c_proj; n_inner=None means 4 * n_embd.
_register(("gpt2",),
          blocks="h", mlp_post="mlp.act", mlp_hook="output",
          mlp_units=_attr("n_inner", default=lambda c: 4 * _hidden(c)), hidden=_hidden,
          n_layers=default_n_layers)
# Llama family: down_proj(act_fn(gate_proj(x)) * up_proj(x)); the product has no module, so
# it is read as the input of down_proj.
_register(("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2"),
          blocks="layers", mlp_post="mlp.down_proj", mlp_hook="input",
          mlp_units=_attr("intermediate_size"), hidden=_hidden, n_layers=default_n_layers)


def _supported() -> str:
    return ", ".join(sorted(ARCHITECTURES))


def get_architecture(model_type: str) -> Architecture:
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise SiteNotFound(
            "site", f"no hook sites for architecture {model_type!r} (supported: {_supported()})"
        ) from None


def list_sites(model_type: str) -> list[str]:
    """Names of the hook sites of ``model_type`` (raises ``SiteNotFound`` for an unknown one)."""
    return list(get_architecture(model_type).sites)


def get_site(model_type: str, site_name: str) -> Site:
    """The ``Site`` called ``site_name`` of ``model_type``; ``SiteNotFound`` if there is none."""
    arch = get_architecture(model_type)
    try:
        return arch.sites[str(getattr(site_name, "value", site_name))]
    except KeyError:
        raise SiteNotFound(
            "site", f"unknown site {site_name!r}: architecture {model_type} has sites: {', '.join(arch.sites)}"
        ) from None
