"""Every test gets its own neuroscribe cache: nothing is written to the user's home."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path_factory.mktemp("neuroscribe-cache")))
