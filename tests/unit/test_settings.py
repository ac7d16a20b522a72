"""Settings: options win over the environment, which wins over the defaults; JSON round trip."""

from pathlib import Path

import pytest

from neuroscribe.settings import DEFAULT_QUEUE, Settings


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert s.queue_url == DEFAULT_QUEUE and s.host == "127.0.0.1" and s.port == 8000 and s.device == "auto"
    assert s.api_key is None and s.llm_api_key is None
    assert s.cache_dir == Path.home() / ".cache" / "neuroscribe"


def test_environment_then_options():
    env = {"NEUROSCRIBE_QUEUE": "memory://", "NEUROSCRIBE_CACHE": "/c", "NEUROSCRIBE_PORT": "9000",
           "OPENAI_API_KEY": "sk-o", "NEUROSCRIBE_API_KEY": "k"}
    s = Settings.from_env(env)
    assert (s.queue_url, s.cache_dir, s.port, s.llm_api_key, s.api_key) == ("memory://", Path("/c"), 9000, "sk-o", "k")
    s2 = Settings.from_env({**env, "NEUROSCRIBE_LLM_API_KEY": "sk-n"}, cache_dir="/opt", port=None)
    assert s2.cache_dir == Path("/opt") and s2.port == 9000 and s2.llm_api_key == "sk-n"


def test_secrets_stay_out_of_repr_and_json_round_trips():
    s = Settings.build(api_key="secret-a", llm_api_key="secret-b", artefacts="/a")
    assert "secret" not in repr(s)
    assert Settings.from_json(s.to_json()) == s


def test_unknown_setting_is_an_error():
    with pytest.raises(TypeError, match="unknown settings: nope"):
        Settings.build(nope=1)
