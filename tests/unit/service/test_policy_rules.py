"""The server's policy as pure functions (service.policy) and its settings (NEUROSCRIBE_* lists)."""

from __future__ import annotations

import pytest

from neuroscribe.jobs import ExpertsJob, GeneratorSpec, SubjectModelSpec
from neuroscribe.service.policy import endpoint_allowed, enforce, JobRefused, refusals
from neuroscribe.settings import Settings


def test_the_defaults_allow_the_packaged_models_and_generator_and_nothing_else():
    s = Settings()
    assert refusals(ExpertsJob(concepts=[{"name": "cat"}]), s) == []  # minilm + llamacpp:smollm2
    assert refusals(ExpertsJob(concepts=[{"name": "cat"}], model=SubjectModelSpec(name="smollm2"),
                               generator=GeneratorSpec(backend="transformers", model="smollm2")), s) == []
    for job in (ExpertsJob(concepts=[{"name": "c"}], model=SubjectModelSpec(name="bert-base-uncased")),
                ExpertsJob(concepts=[{"name": "c"}], generator=GeneratorSpec(backend="vllm", model="x/y")),
                ExpertsJob(concepts=[{"name": "c"}], model=SubjectModelSpec(trust_remote_code=True)),
                ExpertsJob(concepts=[{"name": "c"}], generator=GeneratorSpec(backend="openai", model="m",
                                                                             base_url="https://api.example/v1"))):
        with pytest.raises(JobRefused):
            enforce(job, s)


def test_the_policy_lists_come_from_the_environment():
    s = Settings.from_env({"NEUROSCRIBE_MODELS": "minilm, EleutherAI/pythia-*,/srv/models/*",
                           "NEUROSCRIBE_REMOTE_CODE_MODELS": "EleutherAI/*",
                           "NEUROSCRIBE_GENERATORS": "vllm:meta-llama/*,openai:*,llamacpp:smollm2",
                           "NEUROSCRIBE_LLM_ENDPOINTS": "http://vllm:8000/v1",
                           "NEUROSCRIBE_DEVICES": "auto,cpu,cuda:0", "NEUROSCRIBE_MAX_BODY_BYTES": "1024",
                           "NEUROSCRIBE_MAX_CONCEPTS": "5", "NEUROSCRIBE_MAX_SENTENCES": "100",
                           "NEUROSCRIBE_MAX_UNITS": "10"})
    assert s.models == ("minilm", "EleutherAI/pythia-*", "/srv/models/*")
    assert (s.max_body_bytes, s.max_concepts, s.max_sentences, s.max_units) == (1024, 5, 100, 10)
    assert Settings.from_json(s.to_json()) == s  # the executor gets them as JSON
    job = ExpertsJob(concepts=[{"name": "c"}], model=SubjectModelSpec(name="EleutherAI/pythia-70m",
                                                                      trust_remote_code=True, device="cuda:0"),
                     generator=GeneratorSpec(backend="openai", model="m", base_url="http://vllm:8000/v1/"))
    assert refusals(job, s) == []
    assert refusals(ExpertsJob(concepts=[{"name": "c"}], model=SubjectModelSpec(name="/srv/models/bert")), s) == []
    with pytest.raises(ValueError, match="max_units"):
        Settings.from_env({"NEUROSCRIBE_MAX_UNITS": "many"})


@pytest.mark.parametrize("name", ["/srv/models/../../etc", "/srv/models/a\\..\\b", "/srv/models/x\x00"])
def test_paths_cannot_climb_out_of_an_allowed_folder(name):
    s = Settings.build(models=("/srv/models/*",))
    (r,) = refusals(ExpertsJob(concepts=[{"name": "c"}], model=SubjectModelSpec(name=name)), s)
    assert r.loc == ("model", "name") and r.value == name


def test_endpoints_are_http_or_https_and_compared_without_a_trailing_slash():
    s = Settings.build(llm_endpoints=("http://127.0.0.1:8000/v1/", "file:///etc"))
    assert endpoint_allowed("http://127.0.0.1:8000/v1", s)
    assert not endpoint_allowed("file:///etc", s)
    assert not endpoint_allowed("http://127.0.0.1:8000/v1/../steal", s)
