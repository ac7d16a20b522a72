"""A generator is loaded only when the cache cannot answer: counted loads."""

import pytest

from neuroscribe.errors import GenerationError
from neuroscribe.jobs import SamplingSpec
from neuroscribe.workers.generate import CachedBackend, FakeBackend, GenerationRequest, LazyBackend


def reqs(n):
    return [GenerationRequest(key=f"k{i}", messages=[{"role": "user", "content": f"write {i}"}],
                              sampling=SamplingSpec(seed=i)) for i in range(n)]


def lazy(builds):
    def build():
        builds.append(1)
        return FakeBackend()

    return LazyBackend(FakeBackend().info, build)


def test_a_run_served_from_the_cache_loads_no_generator(tmp_path):
    builds = []
    first = CachedBackend(lazy(builds), tmp_path)
    texts = [g.text for g in first.generate(reqs(3), progress=False)]
    assert len(builds) == 1 and first.misses == 3
    again = CachedBackend(lazy(builds), tmp_path)  # a new run: same cache, nothing loaded yet
    assert [g.text for g in again.generate(reqs(3), progress=False)] == texts
    assert len(builds) == 1 and again.hits == 3 and not again.inner.loaded
    more = again.generate(reqs(4), progress=False)  # one miss: now it loads, once
    assert len(builds) == 2 and again.inner.loads == 1 and len(more) == 4


def test_empty_requests_load_nothing():
    builds = []
    b = lazy(builds)
    assert b.generate([], progress=False) == [] and builds == []


def test_a_loaded_generator_that_is_not_the_described_one_is_an_error():
    b = LazyBackend({**FakeBackend().info, "weight_sha256": "other"}, FakeBackend)
    with pytest.raises(GenerationError, match="not the one described"):
        b.generate(reqs(1), progress=False)
