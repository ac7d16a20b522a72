"""Shared by every test: the support modules (``tests/support``: tiny models, a Redis for the
service tests, the HTML checker, the test stage handlers) are importable by name, and every test
gets its own neuroscribe cache, so nothing is written to the user's home. Finished jobs are not
indexed into the atlas (NEUROSCRIBE_AUTO_INDEX=0) unless a test asks for it; the atlas, when a test
opens one by default, is a SQLite file of its own."""

import sys
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path_factory.mktemp("neuroscribe-cache")))
    monkeypatch.setenv("NEUROSCRIBE_AUTO_INDEX", "0")
    monkeypatch.setenv("NEUROSCRIBE_ATLAS_URL", f"sqlite:///{tmp_path_factory.mktemp('atlas')}/atlas.sqlite")
