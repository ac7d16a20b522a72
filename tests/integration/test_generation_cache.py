"""The default generator (llama.cpp on the packaged GGUF) through `neuroscribe experts`: a second run
served from the generation cache loads no generator at all, and bad generator options fail
before any work, naming the flag."""

import os

import pytest
from click.testing import CliRunner

from neuroscribe.service.cli import cli

pytest.importorskip("xllamacpp")

ARGS = ["experts", "--model", "minilm", "--concept", "cat", "--n-pos", "3", "--n-neg", "3", "--rounds", "2",
        "--no-stability", "--tau", "0.9", "--quiet"]


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


@pytest.mark.slow
def test_a_second_run_from_the_cache_loads_no_generator(tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    first = _run([*ARGS, "--cache-dir", cache, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    from neuroscribe.workers.generate import llamacpp_backend

    def no_load(*_a, **_k):
        raise AssertionError("the generator was loaded although every generation is cached")

    monkeypatch.setattr(llamacpp_backend.LlamaCppBackend, "__init__", no_load)
    second = _run([*ARGS, "--cache-dir", cache, "--out", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    a = (tmp_path / "a" / "sentences.jsonl").read_text()
    assert a == (tmp_path / "b" / "sentences.jsonl").read_text() and '"backend":"llamacpp"' in a


def test_more_generator_threads_than_cores_is_refused_naming_the_flag(tmp_path):
    n = (os.cpu_count() or 1) + 1
    r = CliRunner().invoke(cli, [*ARGS, "--gen-threads", str(n), "--cache-dir", str(tmp_path / "c"),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert f"--gen-threads: {n} is not accepted" in r.output and "cores" in r.output
    assert not (tmp_path / "o").exists()


def test_a_generator_that_is_not_gguf_is_refused_naming_the_flag(tmp_path):
    r = CliRunner().invoke(cli, [*ARGS, "--generator", "llamacpp:minilm", "--cache-dir", str(tmp_path / "c"),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--generator" in r.output and "GGUF" in r.output
