"""Server policy, not job choice (issue 14, findings 1 and 2): what a job may make the workers load,
run and call is the server's settings' to say -- at the API's door (422 naming the field and the
value) and again on the workers (a permanent failure; the LLM key never leaves for another URL)."""

from __future__ import annotations

import socket
import threading

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from neuroscribe.jobs import GeneratorSpec, JobStatus, SubjectModelSpec  # noqa: E402
from neuroscribe.service import runtime  # noqa: E402
from neuroscribe.service.api import create_app  # noqa: E402
from neuroscribe.service.policy import JobRefused, redact_paths  # noqa: E402
from neuroscribe.service.queue import InMemoryQueue  # noqa: E402
from neuroscribe.service.worker import Worker  # noqa: E402
from neuroscribe.settings import Settings  # noqa: E402

LLM_KEY = "sk-do-not-steal-1234"


class Listener:
    """A TCP listener on 127.0.0.1 that records every byte anyone sends it (answers HTTP 200)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.received = b""
        self.connections = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/steal"

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def _app(tmp_path, **settings):
    s = Settings.build(cache_dir=tmp_path / "cache", artefacts=tmp_path / "artefacts", llm_api_key=LLM_KEY, **settings)
    q = InMemoryQueue()
    return TestClient(create_app(q, artefacts_dir=tmp_path / "artefacts", settings=s)), q, s


def _steal_job(url: str) -> dict:
    return {"kind": "experts", "concepts": [{"name": "cat"}],
            "generator": {"backend": "openai", "model": "x", "base_url": url}}


def _errors(r) -> dict[tuple, str]:
    assert r.status_code == 422, r.text
    return {tuple(e["loc"]): e["msg"] for e in r.json()["detail"]}


# --------------------------------------------------------------------------- finding 1: the LLM key


def test_the_key_theft_request_is_refused_at_the_door_and_nothing_is_sent(tmp_path, listener):
    http, q, _ = _app(tmp_path)
    errors = _errors(http.post("/v1/jobs", json=_steal_job(listener.url)))
    assert listener.url in errors[("body", "generator", "base_url")]
    assert "NEUROSCRIBE_LLM_ENDPOINTS" in errors[("body", "generator", "base_url")]
    assert q.list() == [] and listener.connections == 0 and listener.received == b""


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/"])
def test_urls_other_than_http_are_refused_even_when_listed(tmp_path, url):
    http, q, _ = _app(tmp_path, llm_endpoints=(url,))
    errors = _errors(http.post("/v1/jobs", json=_steal_job(url)))
    assert "only http and https" in errors[("body", "generator", "base_url")]


def test_a_configured_endpoint_is_accepted(tmp_path, listener):
    http, q, _ = _app(tmp_path, llm_endpoints=(listener.url + "/",))  # a trailing slash does not matter
    r = http.post("/v1/jobs", json=_steal_job(listener.url))
    assert r.status_code == 201, r.text
    assert listener.connections == 0  # the API itself never calls the LLM


def test_a_worker_refuses_the_key_theft_job_at_once_and_sends_nothing(tmp_path, listener):
    """The job reached the queue without the API (an older API, a script): the worker fails it once
    (not retried), and the listener receives nothing."""
    settings = Settings.build(cache_dir=tmp_path / "cache", artefacts=tmp_path / "artefacts", llm_api_key=LLM_KEY)
    q = InMemoryQueue()
    rec = q.submit(_steal_job(listener.url))
    assert Worker(q, "generate", settings=settings, log=lambda _m: None, ready_timeout_s=120).run(max_jobs=1) == 0
    done = q.get(rec.id)
    assert done.status == JobStatus.failed and done.attempts == 1
    assert "generator.base_url" in done.error and "NEUROSCRIBE_LLM_ENDPOINTS" in done.error
    assert listener.connections == 0 and LLM_KEY.encode() not in listener.received


def test_runtime_refuses_to_make_an_unlisted_generator_for_a_worker(tmp_path, listener):
    settings = Settings.build(cache_dir=tmp_path, llm_api_key=LLM_KEY)
    spec = GeneratorSpec(backend="openai", model="x", base_url=listener.url)
    with pytest.raises(JobRefused) as e:
        runtime.generator_for(spec, settings, {})
    assert e.value.field == "generator.base_url"


def _ask(backend) -> None:
    """One request through ``backend`` (the listener's empty answer makes it raise: not what is tested)."""
    from neuroscribe.errors import GenerationError
    from neuroscribe.workers.generate import GenerationRequest

    with pytest.raises(GenerationError):
        backend.generate([GenerationRequest("a", ({"role": "user", "content": "hi"},))], progress=False)


def test_the_backend_sends_the_key_only_to_its_endpoints(listener):
    from neuroscribe.workers.generate.openai_compat import OpenAIBackend

    spec = GeneratorSpec(backend="openai", model="x", base_url=listener.url)
    _ask(OpenAIBackend(spec, api_key=LLM_KEY, key_urls=("http://127.0.0.1:1/elsewhere",), max_attempts=1))
    assert listener.connections == 1 and LLM_KEY.encode() not in listener.received
    _ask(OpenAIBackend(spec, api_key=LLM_KEY, key_urls=(listener.url,), max_attempts=1))
    assert f"Bearer {LLM_KEY}".encode() in listener.received


def test_the_backend_refuses_a_file_url():
    from neuroscribe.errors import InvalidInput
    from neuroscribe.workers.generate.openai_compat import OpenAIBackend

    with pytest.raises(InvalidInput, match="only http and https"):
        OpenAIBackend(GeneratorSpec(backend="openai", model="x", base_url="file:///etc/passwd"))


def test_a_local_run_sends_the_key_to_the_url_the_user_typed(tmp_path, listener):
    """The embedded run is the user's machine: with no endpoints configured, the key goes where the
    user said; once endpoints are configured, only there."""
    spec = GeneratorSpec(backend="openai", model="x", base_url=listener.url)
    fenced = Settings.build(cache_dir=tmp_path, llm_api_key=LLM_KEY, llm_endpoints=("http://127.0.0.1:1/v1",))
    _ask(runtime.make_generator(spec, fenced, cached=False))
    assert listener.connections == 1 and LLM_KEY.encode() not in listener.received
    _ask(runtime.make_generator(spec, Settings.build(cache_dir=tmp_path, llm_api_key=LLM_KEY), cached=False))
    assert f"Bearer {LLM_KEY}".encode() in listener.received


# --------------------------------------------------------------------------- finding 2: models and code


@pytest.mark.parametrize("model, field, words", [
    ({"name": "/etc"}, "name", "'/etc' is not allowed"),
    ({"name": "EleutherAI/pythia-70m"}, "name", "not allowed on this server"),
    ({"name": "minilm", "trust_remote_code": True}, "trust_remote_code", "NEUROSCRIBE_REMOTE_CODE_MODELS"),
    ({"name": "minilm", "device": "cuda:99"}, "device", "'cuda:99' is not offered"),
])
def test_a_job_cannot_choose_what_the_workers_load(tmp_path, model, field, words):
    http, q, _ = _app(tmp_path)
    errors = _errors(http.post("/v1/jobs", json={"kind": "experts", "concepts": [{"name": "cat"}], "model": model}))
    assert words in errors[("body", "model", field)]
    assert q.list() == []


def test_generators_and_sweep_targets_are_the_servers_choice_too(tmp_path):
    http, _, _ = _app(tmp_path)
    job = {"kind": "experts", "concepts": [{"name": "cat"}], "sweep": [{"name": "/srv/other"}],
           "generator": {"backend": "transformers", "model": "/tmp/evil", "trust_remote_code": True}}
    errors = _errors(http.post("/v1/jobs", json=job))
    assert "'transformers:/tmp/evil' is not allowed" in errors[("body", "generator", "model")]
    assert ("body", "generator", "trust_remote_code") in errors
    assert "'/srv/other' is not allowed" in errors[("body", "sweep", 0, "name")]


def test_allowed_folders_hub_ids_and_remote_code_pass(tmp_path):
    folder = tmp_path / "models" / "bert"
    folder.mkdir(parents=True)
    http, q, _ = _app(tmp_path, models=("minilm", f"{tmp_path}/models/*", "EleutherAI/pythia-*"),
                      remote_code_models=("EleutherAI/pythia-*",), devices=("auto", "cpu", "cuda:0"))
    for model in ({"name": str(folder)}, {"name": "EleutherAI/pythia-70m", "trust_remote_code": True,
                                          "device": "cuda:0"}):
        r = http.post("/v1/jobs", json={"kind": "experts", "concepts": [{"name": "cat"}], "model": model,
                                        "generator": {"backend": "fake"}})
        assert r.status_code == 201, r.text
    # a path that climbs out of an allowed folder is not in it
    errors = _errors(http.post("/v1/jobs", json={"kind": "experts", "concepts": [{"name": "cat"}],
                                                 "model": {"name": f"{tmp_path}/models/../../etc"}}))
    assert "'..' segments" in errors[("body", "model", "name")]


def test_refusals_do_not_show_the_servers_folders(tmp_path):
    http, _, _ = _app(tmp_path, models=("minilm", "/srv/secret-models/*"))
    errors = _errors(http.post("/v1/jobs", json={"kind": "experts", "concepts": [{"name": "cat"}],
                                                 "model": {"name": "gpt2"}}))
    msg = errors[("body", "model", "name")]
    assert "secret-models" not in msg and "1 local folder(s)" in msg


def test_worker_errors_reach_clients_without_the_workers_paths():
    assert redact_paths("ValueError: Unrecognized model in /etc. Should have a model_type key") == \
        "ValueError: Unrecognized model in <path>. Should have a model_type key"
    assert redact_paths("cannot load 'x' from /root/.cache/huggingface/hub/models--x") == "cannot load 'x' from <path>"
    assert redact_paths("POST http://127.0.0.1:8000/v1/chat/completions: HTTP 500") == \
        "POST http://127.0.0.1:8000/v1/chat/completions: HTTP 500"


def test_a_worker_refuses_a_subject_model_the_server_does_not_list(tmp_path):
    with pytest.raises(JobRefused) as e:
        runtime.load_subject(SubjectModelSpec(name="/etc"), Settings.build(cache_dir=tmp_path), {})
    assert e.value.field == "model.name"
