"""Intervention edit modes (docs/methods.md#c3; Antverg & Belinkov 2022): set ranked units inside the forward pass.

``intervene`` sets, inside the forward pass, the chosen units ``layer_units[layer]`` of a hook site
(``activations.sites``) of each layer, at every position or, with ``mask``, only at the positions it
marks (``activations.edits.at_positions``; ``POSITIONS``: ``all`` or ``attribute``, the tokens of
each example's attribute-bearing word, as the paper does):

``zero``       ``h_u <- 0``;
``mean``       ``h_u <- values[layer][u]`` (e.g. the dataset mean of the unit's pooled responses);
``translate``  ``h_u <- h_u + beta * (target_mean[layer][u] - source_mean[layer][u])``: the class
               means of the unit's responses, moving the unit from the source class toward the target
               class. The authors' code (``ablate(..., translation=True)`` in Antverg & Belinkov's
               ``interventions.py``) does ``h[:, units] -= alpha * avg[label]; h[:, units] +=
               alpha * avg[next_label]`` with alpha = beta = 8 and ``next_label`` the next class in
               its list, cyclically: the same sign (tests/unit/workers/rank/test_positive_control.py).

Per-unit vectors (``values``, ``source_mean``, ``target_mean``) map a layer to either ``n_units``
numbers (indexed by unit; also when every unit is chosen) or ``len(layer_units[layer])`` numbers
(aligned with the units); arguments a mode does not use are ignored. ``zero`` / ``mean`` replace the
units' values and ``translate`` shifts them, both through ``activations.edits.edit_units`` (as
``causal.fixed_units`` does); hooks are always removed on exit. The paper edits only the words
bearing the attribute; the rank job edits every position by default (``positions="all"``), and only
the target word's tokens with ``positions="attribute"`` (token-level data; ``effect_runs``).

``plan_edits`` validates a request into an ``EditPlan`` (``layer -> (units, values or shifts)``) and
``apply_plan`` applies one; ``random_units`` draws random unit sets (the ranked ones excluded) and
``response_means`` the unit and class means the ``mean`` / ``translate`` modes read.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Hashable, Iterator, Mapping, Sequence

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations.edits import Mask, edit_units, replace_units, shift_units, site_sizes
from neuroscribe.workers.activations.sites import Site

__all__ = ["MODES", "POSITIONS", "UnitMap", "MeanMap", "check_units", "check_mode", "check_positions", "check_beta",
           "EditPlan", "plan_edits", "apply_plan", "intervene", "random_units", "response_means", "classes"]

MODES = ("zero", "mean", "translate")
POSITIONS = ("all", "attribute")
UnitMap = Mapping[int, Sequence[int] | np.ndarray]
MeanMap = Mapping[int, Sequence[float] | np.ndarray]


# ---------------------------------------------------------------- validation and the hook plan
def check_units(units, layer: int, n_layers: int | None, n_units: int, fld: str) -> np.ndarray:
    """``units`` of ``layer`` as int64 unit indices: 1-D, in range, distinct (else ``InvalidInput(fld)``)."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise InvalidInput(fld, f"a layer must be an integer, got {layer!r}")
    if not 0 <= layer < (n_layers if n_layers is not None else layer + 1):
        raise InvalidInput(fld, f"layer {layer} out of range: the model has {n_layers} layers")
    arr = np.asarray(units)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInput(fld, f"unit indices must be a 1-D list of integers, got {arr.dtype} {arr.shape}")
    if arr.min() < 0 or arr.max() >= n_units:
        raise InvalidInput(fld, f"unit index out of range: the site has {n_units} units per layer")
    if len(np.unique(arr)) != len(arr):
        raise InvalidInput(fld, "a unit is given twice")
    return arr.astype(np.int64)


def check_mode(mode) -> str:
    """The mode's name, one of ``MODES``."""
    mode = str(getattr(mode, "value", mode))
    if mode not in MODES:
        raise InvalidInput("mode", f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    return mode


def check_positions(positions) -> str:
    """Where an edit applies, one of ``POSITIONS``."""
    if positions not in POSITIONS:
        raise InvalidInput("positions", f"unknown positions {positions!r}; choose from {', '.join(POSITIONS)}")
    return str(positions)


def check_beta(beta) -> float:
    """``beta`` as a finite float."""
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise InvalidInput("beta", f"must be a number, got {beta!r}") from None
    if not math.isfinite(b):
        raise InvalidInput("beta", f"must be finite, got {beta!r}")
    return b


def _per_unit(given, name: str, mode: str, layer: int, idx: np.ndarray, n_units: int) -> np.ndarray:
    if given is None:
        raise InvalidInput(name, f"mode {mode!r} needs {name}")
    try:
        arr = np.asarray(given[layer], dtype=np.float64)
    except (KeyError, IndexError):
        raise InvalidInput(f"{name}:{layer}", f"no values for layer {layer}") from None
    except (TypeError, ValueError):
        raise InvalidInput(f"{name}:{layer}", "values must be numbers") from None
    if arr.ndim != 1 or len(arr) not in (n_units, len(idx)):
        raise InvalidInput(f"{name}:{layer}", f"expected {n_units} values (one per unit) or {len(idx)} "
                                              f"(one per chosen unit), got shape {arr.shape}")
    out = arr[idx] if len(arr) == n_units else arr
    if not np.isfinite(out).all():
        raise InvalidInput(f"{name}:{layer}", "a value is not finite")
    return out


@dataclass(frozen=True)
class EditPlan:
    """What ``intervene`` does: ``mode`` at ``site``, ``edits[layer] = (unit indices, values or shifts)``."""

    site: Site
    mode: str
    edits: dict  # layer -> (unit indices, replacement values or shifts)


def plan_edits(model, model_type, site, layer_units, mode, values, source_mean, target_mean, beta) -> EditPlan:
    """The validated ``EditPlan`` of one ``intervene`` request (``InvalidInput`` names the bad field)."""
    mode, beta = check_mode(mode), check_beta(beta)
    s, n_layers, n_units = site_sizes(model, model_type, site)
    if not isinstance(layer_units, Mapping):
        raise InvalidInput("layer_units", "expected a mapping layer -> unit indices")
    edits = {}
    for layer, units in layer_units.items():
        idx = check_units(units, layer, n_layers, n_units, f"layer_units:{layer}")
        if mode == "zero":
            v = np.zeros(len(idx))
        elif mode == "mean":
            v = _per_unit(values, "values", mode, layer, idx, n_units)
        else:
            t = _per_unit(target_mean, "target_mean", mode, layer, idx, n_units)
            v = beta * (t - _per_unit(source_mean, "source_mean", mode, layer, idx, n_units))
        edits[int(layer)] = (idx, v)
    return EditPlan(s, mode, edits)


@contextmanager
def apply_plan(model, plan: EditPlan, mask: Mask | None = None) -> Iterator[None]:
    """Within the block, ``plan`` edits the model: zero / mean replace the units' values (exactly as
    ``causal.fixed_units``), translate shifts them; at every position, or only where ``mask`` (a
    (batch, seq) bool tensor, or a callable giving the current batch's) is True."""
    edit = shift_units if plan.mode == "translate" else replace_units
    with edit_units(model, plan.site, plan.edits, edit, mask=mask):
        yield


@contextmanager
def intervene(model, model_type: str | None, site: str, layer_units: UnitMap, mode: str, *,
              values: MeanMap | None = None, source_mean: MeanMap | None = None,
              target_mean: MeanMap | None = None, beta: float = 8.0, mask: Mask | None = None) -> Iterator[None]:
    """Within the block, ``mode`` edits units ``layer_units[layer]`` of ``site`` at every position, or
    only at those ``mask`` marks (see ``apply_plan``)."""
    plan = plan_edits(model, model_type, site, layer_units, mode, values, source_mean, target_mean, beta)
    with apply_plan(model, plan, mask):
        yield


def random_units(layer_units: UnitMap, n_units: int, *, n_random: int = 1, seed: int | Sequence[int] = 0,
                 size: int | None = None) -> list[dict[int, np.ndarray]]:
    """``n_random`` draws of ``size`` units per layer (default: as many as ``layer_units`` has), never
    one of ``layer_units`` (sorted)."""
    if int(n_random) < 1:
        raise InvalidInput("n_random", f"need at least one random draw, got {n_random}")
    given = {int(L): check_units(u, L, None, n_units, f"layer_units:{L}") for L, u in layer_units.items()}
    want = {L: len(idx) if size is None else int(size) for L, idx in given.items()}
    for layer, idx in given.items():
        if n_units - len(idx) < want[layer]:
            raise InvalidInput(f"layer_units:{layer}", f"{len(idx)} units leave only {n_units - len(idx)} "
                                                       f"others to draw {want[layer]} random ones from")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise InvalidInput("seed", f"expected a non-negative integer, got {seed!r}") from None
    draws = []
    for _ in range(int(n_random)):
        draws.append({L: np.sort(rng.choice(np.setdiff1d(np.arange(n_units), given[L]), size=want[L],
                                            replace=False)).astype(np.int64) for L in sorted(given)})
    return draws


def response_means(responses: Mapping[int, np.ndarray], labels: Sequence[Hashable] | None = None):
    """``(unit_means, class_means)`` of pooled responses ``layer -> (n, n_units)``: ``{layer: (n_units,)}``
    and ``{class: {layer: (n_units,)}}`` (``None`` without ``labels``)."""
    arrs = {int(L): np.asarray(r, dtype=np.float64) for L, r in responses.items()}
    for L, a in arrs.items():
        if a.ndim != 2 or not len(a) or (labels is not None and len(a) != len(labels)):
            raise InvalidInput(f"responses:{L}", f"expected (n_examples, n_units) responses, got {a.shape}")
    means = {L: a.mean(axis=0) for L, a in arrs.items()}
    if labels is None:
        return means, None
    rows = {c: np.array([y == c for y in labels]) for c in classes(labels)}
    return means, {c: {L: a[r].mean(axis=0) for L, a in arrs.items()} for c, r in rows.items()}


def classes(labels) -> list:
    """The distinct labels, sorted when they can be (else in order of first appearance)."""
    seen = list(dict.fromkeys(labels))
    try:
        return sorted(seen)
    except TypeError:
        return seen

