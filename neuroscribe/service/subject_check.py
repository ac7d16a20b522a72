"""Checks of a job's subject model that its config alone answers: cheap enough for the API's door.

For a model the server allows, ``subject_refusals`` reads its ``config.json`` where this machine has
it -- a packaged model's folder, a local folder, a snapshot in the local Hugging Face cache (never
the network) -- and refuses, naming the field:
  * a local path that does not exist (``model.name``);
  * layers outside the model's (``model.layers``; ``layer`` of a rank job);
  * more units than ``Settings.max_units`` (layers read x units per layer at the site).
A model whose config is not found here (a Hub id not cached on the API's machine, a GGUF file) is
left to the workers, which check the same before any weights load. No weights, no tokenizer, no
transformers or torch import: a JSON file read (the site is the workers' to check).
"""

from __future__ import annotations

import json
from pathlib import Path

from neuroscribe.jobs import SubjectModelSpec
from neuroscribe.service.policy import Refusal, walk
from neuroscribe.settings import Settings

__all__ = ["subject_refusals", "local_config", "n_layers", "units_per_layer"]

_LAYERS = ("num_hidden_layers", "n_layer", "num_layers")
_WIDTH = {"mlp_post": ("intermediate_size", "n_inner", "ffn_dim"), "residual": ("hidden_size", "n_embd", "d_model")}


def _pathlike(name: str) -> bool:
    return name.startswith(("/", ".", "~"))


def local_config(name: str, revision: str | None = None) -> dict | None:
    """The model's ``config.json`` as a dict when this machine has it, else None."""
    from neuroscribe.workers.models.hub import cached_snapshot
    from neuroscribe.workers.models.packaged import resolve_packaged

    packaged = resolve_packaged(name)
    folder: Path | None
    if packaged is not None:
        try:
            folder = packaged.path()
        except Exception:  # noqa: BLE001 - not installed here: the workers say so
            return None
    elif _pathlike(name):
        folder = Path(name).expanduser()
    else:
        folder = cached_snapshot(name, revision)
    config = folder / "config.json" if folder is not None else None
    if config is None or not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _first_int(config: dict, keys: tuple[str, ...]) -> int | None:
    for k in keys:
        v = config.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def n_layers(config: dict) -> int | None:
    return _first_int(config, _LAYERS) or _first_int(config.get("text_config") or {}, _LAYERS)


def units_per_layer(config: dict, site: str) -> int | None:
    width = _first_int(config, _WIDTH.get(site, ()))
    if width is None and site == "mlp_post" and config.get("model_type") == "gpt2":
        hidden = _first_int(config, ("n_embd",))
        width = 4 * hidden if hidden else None  # GPT-2's n_inner defaults to 4 x n_embd
    return width


def _spec_refusals(spec: SubjectModelSpec, loc: tuple, job, settings: Settings) -> list[Refusal]:
    if _pathlike(spec.name) and not Path(spec.name).expanduser().exists():
        return [Refusal((*loc, "name"), spec.name, f"no such model folder or file: {spec.name!r}", "model_not_found")]
    config = local_config(spec.name, spec.revision)
    if config is None:
        return []
    out = []
    total = n_layers(config)
    if total is None:
        return out
    asked = list(spec.layers) if spec.layers is not None else list(range(total))
    bad = [i for i in asked if not 0 <= i < total]
    if bad:
        out.append(Refusal((*loc, "layers"), list(spec.layers or ()), f"layers {bad} out of range: model "
                                                                      f"{spec.name!r} has layers 0..{total - 1}",
                           "out_of_range"))
    ranks = loc == ("model",) and "layer" in type(job).model_fields  # a rank job reads one layer
    rank_layer = getattr(job, "layer", None) if ranks else None
    if isinstance(rank_layer, int) and not 0 <= rank_layer < total:
        out.append(Refusal(("layer",), rank_layer, f"layer {rank_layer} out of range: model {spec.name!r} has "
                                                   f"layers 0..{total - 1}", "out_of_range"))
    width = units_per_layer(config, spec.site)
    n_read = 1 if ranks else len([i for i in asked if 0 <= i < total])
    if width is not None and n_read * width > settings.max_units:
        out.append(Refusal((*loc, "layers"), list(spec.layers or ()),
                           f"{n_read} layer(s) x {width} units = {n_read * width} units; this server reads at most "
                           f"{settings.max_units} per job (NEUROSCRIBE_MAX_UNITS): choose fewer layers",
                           "too_many_units"))
    return out


def subject_refusals(job, settings: Settings, skip: set[tuple] = frozenset()) -> list[Refusal]:
    """Config-only checks of every subject model of ``job`` (locations in ``skip``: not allowed, not read)."""
    out: list[Refusal] = []
    for loc, m in walk(job):
        if isinstance(m, SubjectModelSpec) and loc not in skip:
            out += _spec_refusals(m, loc, job, settings)
    return out
