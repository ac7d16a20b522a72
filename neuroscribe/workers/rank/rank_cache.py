"""The rank job's cache (docs/methods.md#provenance): a re-run with other k, modes or methods
recomputes only what changed.

Under ``<cache_dir>/rank/`` (the service passes ``<cache>/responses``, the experts responses cache):

* ``responses/``: the layer's (examples, units) responses, keyed like the experts responses
  (``activations.cache.responses_key``: model id, resolved revision, weight sha256, model type,
  site, pooling, the layer, max length, dtype, the texts' hash, the store format) plus the target
  words of a token-level attribute;
* ``rankings/``: one ranking, keyed by the sha256 of the responses it was computed on (the rows
  of the split), the labels, the method, its options and the seed;
* ``effects/``: the per-example measures of one edited forward pass, keyed by a scope (the model's
  identity, site, layer, task (its target words included), scored examples, beta and the means the
  edits read) and the (mode, positions edited, units per layer) of the pass.

Entries are written to a temporary name and renamed, so a reader sees a whole entry or none; an
unreadable entry is recomputed. A cache that cannot be written only costs time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["RankCache", "EffectCache", "digest", "rank_responses_key"]

_VERSION = "rank-cache-v1"


def digest(*parts) -> str:
    """sha256 of JSON-able parts; numpy arrays by their dtype, shape and bytes."""
    h = hashlib.sha256(_VERSION.encode())
    for p in parts:
        if isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


def rank_responses_key(subject, texts, *, site: str, pooling: str, layer: int, max_length: int,
                       word_index) -> str:
    """The responses' key: the experts responses key of the layer, plus the target words."""
    from neuroscribe.workers.activations.cache import responses_key

    base = responses_key(subject, list(texts), site=site, pooling=pooling, layers=[int(layer)], max_length=max_length)
    return digest(base, None if word_index is None else [int(w) for w in word_index])


def _write(path: Path, write) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        write(tmp)
        os.replace(tmp, path)
    except OSError:
        pass


def _save(path: Path, save, *args, **kwargs) -> None:
    with open(path, "wb") as f:
        save(f, *args, **kwargs)


class RankCache:
    """The rank cache under ``root / "rank"``; ``root`` None: nothing is cached (every call computes)."""

    def __init__(self, root: str | Path | None):
        self.root = None if root is None else Path(root) / "rank"

    def _path(self, kind: str, key: str, suffix: str) -> Path | None:
        return None if self.root is None else self.root / kind / key[:2] / f"{key}{suffix}"

    def responses(self, key: str | None, compute) -> tuple[np.ndarray, bool]:
        """(responses, True when read from the cache)."""
        path = None if key is None else self._path("responses", key, ".npy")
        if path is not None and path.is_file():
            try:
                return np.load(path, allow_pickle=False), True
            except (OSError, ValueError):
                pass
        X = compute()
        if path is not None:
            _write(path, lambda tmp: _save(tmp, np.save, X, allow_pickle=False))
        return X, False

    def ranking(self, key: str, compute):
        """(a ``rankings.Ranking``, True when read from the cache)."""
        from neuroscribe.workers.rank.rankings import Ranking

        path = self._path("rankings", key, ".json")
        if path is not None and path.is_file():
            try:
                d = json.loads(path.read_text(encoding="utf-8"))
                rel = None if d["relevance"] is None else np.asarray(d["relevance"], np.float64)
                return Ranking(d["method"], np.asarray(d["order"], np.int64), np.asarray(d["scores"], np.float64),
                               d["params"], relevance=rel), True
            except (OSError, ValueError, KeyError, TypeError):
                pass
        r = compute()
        if path is not None:
            blob = dict(method=r.method, order=r.order.tolist(), scores=r.scores.tolist(),
                        params=json.loads(json.dumps(r.params, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                                     else str(o))),
                        relevance=None if r.relevance is None else r.relevance.tolist())
            _write(path, lambda tmp: tmp.write_text(json.dumps(blob), encoding="utf-8"))
        return r, False

    def effects(self, scope: str) -> EffectCache | None:
        return None if self.root is None else EffectCache(self.root / "effects", scope)


class EffectCache:
    """``get(key)`` / ``put(key, {measure: array})`` of one scope (see the module docstring); counts hits."""

    def __init__(self, folder: Path, scope: str):
        self.folder, self.scope, self.hits, self.misses = folder, scope, 0, 0

    def _path(self, key: str) -> Path:
        k = digest(self.scope, key)
        return self.folder / k[:2] / f"{k}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        path = self._path(key)
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    out = {m: z[m] for m in z.files}
                self.hits += 1
                return out
            except (OSError, ValueError):
                pass
        self.misses += 1
        return None

    def put(self, key: str, measures: dict[str, np.ndarray]) -> None:
        _write(self._path(key), lambda tmp: _save(tmp, np.savez, **measures))
