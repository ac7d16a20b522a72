"""What embedded runs and stage handlers share (service.runtime): one generator engine per generator
kept across a worker's jobs, loaded lazily; the device of ``auto``."""

from neuroscribe.jobs import GeneratorSpec, SubjectModelSpec
from neuroscribe.service import runtime
from neuroscribe.settings import Settings


def test_a_worker_keeps_one_generator_per_generator_spec(tmp_path):
    settings, state = Settings.build(cache_dir=tmp_path), {}
    a = runtime.generator_for(GeneratorSpec(backend="llamacpp", model="smollm2"), settings, state)
    b = runtime.generator_for(GeneratorSpec(backend="llamacpp", model="smollm2"), settings, state)
    c = runtime.generator_for(GeneratorSpec(backend="llamacpp", model="smollm2", batch_size=4), settings, state)
    assert a is b and a is not c
    assert not a.inner.loaded  # nothing loaded until a request misses the cache
    assert a.cache_dir == tmp_path / "generations"


def test_auto_device_follows_the_settings():
    assert runtime.device_for(SubjectModelSpec(device="cpu"), Settings.build(device="cuda")) == "cpu"
    assert runtime.device_for(SubjectModelSpec(), Settings.build(device="cpu")) == "cpu"
