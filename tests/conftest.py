"""Shared by every test: the support modules (``tests/support``: tiny models, a Redis for the
service tests, the HTML checker, the test stage handlers) are importable by name, and every test
gets its own neuroscribe cache, so nothing is written to the user's home."""

import sys
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path_factory.mktemp("neuroscribe-cache")))
