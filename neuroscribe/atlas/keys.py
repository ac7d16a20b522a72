"""Stable keys of the atlas: the model slug in a neuron's URL (``/neurons/<model>/<layer>/<unit>``).

``model_key`` needs only what a result's provenance says, so a page written into a result folder
links to the same URL the store serves. The slug keeps letters, digits, ``.``, ``_`` and ``-``; a
``/`` of a hub id becomes ``--``; a revision other than the default adds ``@<revision>``; a
random initialisation adds ``~random-<first 8 hex of its weight hash>`` (two random
initialisations of one model are different subjects).
"""

from __future__ import annotations

import re

__all__ = ["model_key", "slug", "MAX_KEY"]

MAX_KEY = 200  # longest key echoed back in an error
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    return _UNSAFE.sub("-", str(text).replace("/", "--")).strip("-") or "model"


def model_key(model_id: str, revision: str | None = None, weight_sha256: str | None = None,
              random_init: bool = False) -> str:
    key = slug(model_id)
    if revision and revision not in ("main", "default"):
        key += "@" + slug(revision)
    if random_init:
        key += "~random-" + (weight_sha256 or "unknown")[:8]
    return key
