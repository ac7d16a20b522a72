"""Responses in memory and on disk.

On-disk format (``format_version`` 1): one folder holding

``meta.json``
    the ``ResponsesMeta`` as a JSON object: ``format_version`` (1), ``model_id``, ``revision``
    (commit hash or null), ``weight_sha256``, ``model_type``, ``site`` (e.g. ``mlp_post``),
    ``pooling`` (``max``/``mean``/``last``/``cls``), ``data_sha256`` (``dataset_sha256`` of the
    sentences, in row order), ``n_sentences``, ``units_per_layer``, ``layers`` (sorted list of
    layer indices), ``dtype`` (``"float16"``), ``max_length`` (tokens kept per sentence).
``layer_{L:03d}.npy``
    one per layer in ``layers`` (e.g. ``layer_000.npy``): a float16 array of shape
    (``n_sentences``, ``units_per_layer``), row i = sentence i in the input order, column j =
    unit ``(L, j)``. Plain ``.npy``: ``np.load(path, mmap_mode="r")`` reads it without copying.

Writes are atomic per file (temporary name, then ``os.replace``); ``meta.json`` is removed
first and written last, so a folder with a ``meta.json`` is always complete and consistent.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from neuroscribe.errors import InvalidInput

__all__ = ["FORMAT_VERSION", "ResponsesMeta", "Responses", "save_responses", "load_responses", "layer_file"]

FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ResponsesMeta:
    """What a responses folder holds and where it came from (``meta.json``)."""

    format_version: int = FORMAT_VERSION
    model_id: str
    revision: str | None
    weight_sha256: str
    model_type: str
    site: str
    pooling: str
    data_sha256: str
    n_sentences: int
    units_per_layer: int
    layers: list[int]
    dtype: str = "float16"
    max_length: int
    n_saturated: int = 0  # pooled values beyond the float16 range, stored as ±65504

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ResponsesMeta":
        known = {f.name for f in fields(cls)}
        missing = known - set(data) - {"dtype", "format_version"}
        if missing:
            raise InvalidInput("responses", f"meta.json lacks {', '.join(sorted(missing))}")
        kw = {k: v for k, v in data.items() if k in known}
        kw["layers"] = [int(x) for x in kw["layers"]]
        return cls(**kw)


@dataclass
class Responses:
    """Pooled responses: ``arrays[layer]`` is (n_sentences, units) float16, rows in input order."""

    layers: list[int]
    arrays: dict[int, np.ndarray]
    meta: ResponsesMeta

    def matrix(self, layers=None) -> np.ndarray:
        """The chosen layers' arrays side by side: (n_sentences, len(layers) * units)."""
        chosen = self.layers if layers is None else list(layers)
        return np.concatenate([self.arrays[layer] for layer in chosen], axis=1)


def layer_file(layer: int) -> str:
    return f"layer_{layer:03d}.npy"


def _tmp(directory: Path, name: str) -> tuple[int, str]:
    return tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")


def save_responses(resp: Responses, directory) -> Path:
    """Write ``resp`` to ``directory`` (created if needed) in the format above; returns the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = resp.meta
    temps: dict[str, str] = {}
    try:
        for layer in resp.layers:
            arr = np.ascontiguousarray(resp.arrays[layer], dtype=np.float16)
            if arr.shape != (meta.n_sentences, meta.units_per_layer):
                raise ValueError(f"layer {layer}: shape {arr.shape} != "
                                 f"({meta.n_sentences}, {meta.units_per_layer}) from meta")
            fd, tmp = _tmp(directory, layer_file(layer))
            temps[layer_file(layer)] = tmp
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, arr)
        fd, tmp = _tmp(directory, "meta.json")
        temps["meta.json"] = tmp
        with os.fdopen(fd, "w") as fh:
            json.dump(meta.to_dict(), fh, indent=1)
        (directory / "meta.json").unlink(missing_ok=True)
        for stale in directory.glob("layer_*.npy"):
            if stale.name not in temps:
                stale.unlink()
        for name, tmp in temps.items():
            if name != "meta.json":
                os.replace(tmp, directory / name)
        os.replace(temps["meta.json"], directory / "meta.json")
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
    return directory


def load_responses(directory, mmap: bool = True) -> Responses:
    """Read a folder written by ``save_responses``; arrays are read-only memory maps if ``mmap``."""
    directory = Path(directory)
    try:
        data = json.loads((directory / "meta.json").read_text())
    except FileNotFoundError:
        raise InvalidInput("responses", f"{directory} has no meta.json (not responses, or incomplete)") from None
    except ValueError as e:
        raise InvalidInput("responses", f"{directory}/meta.json is not valid JSON: {e}") from None
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise InvalidInput("responses", f"{directory}: format_version {version!r} is not supported "
                                        f"(expected {FORMAT_VERSION})")
    meta = ResponsesMeta.from_dict(data)
    arrays = {}
    for layer in meta.layers:
        path = directory / layer_file(layer)
        if not path.is_file():
            raise InvalidInput("responses", f"{path} is missing")
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if arr.dtype != np.float16 or arr.shape != (meta.n_sentences, meta.units_per_layer):
            raise InvalidInput("responses", f"{path}: {arr.dtype} {arr.shape}, expected float16 "
                                            f"({meta.n_sentences}, {meta.units_per_layer})")
        arrays[layer] = arr
    return Responses(layers=list(meta.layers), arrays=arrays, meta=meta)
