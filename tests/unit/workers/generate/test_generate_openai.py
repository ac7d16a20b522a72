"""OpenAIBackend against an in-process OpenAI-compatible server (real sockets on 127.0.0.1, no network)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from neuroscribe.errors import GenerationError
from neuroscribe.jobs import GeneratorSpec, SamplingSpec
from neuroscribe.workers.generate import GenerationRequest, make_backend
from neuroscribe.workers.generate.openai_compat import OpenAIBackend


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def reset(self):
        self.received: list[dict] = []
        self.headers_seen: list[dict] = []
        self.hits: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: dict | str):
        raw = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):
        mode, _, rest = self.path.strip("/").partition("/")
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        with srv.lock:
            srv.received.append(payload)
            srv.headers_seen.append(dict(self.headers))
            n = srv.hits[mode] = srv.hits.get(mode, 0) + 1
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            if rest != "v1/chat/completions":
                return self._send(404, {"error": "no such route"})
            if mode == "fail500":
                return self._send(500, "Internal Server Error: the model fell over")
            if mode == "bad400":
                return self._send(400, {"error": {"message": "unknown field repetition_penalty"}})
            if mode == "flaky" and n <= 2:
                return self._send(503, {"error": "warming up"})
            if mode == "slow":
                time.sleep(0.15)
            user = [m["content"] for m in payload["messages"] if m["role"] == "user"][-1]
            words = f"seed {payload['seed']} says {user}".split()
            cut = words[: payload["max_tokens"]]
            self._send(200, {
                "id": "x", "object": "chat.completion", "model": payload["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(cut)},
                             "finish_reason": "length" if len(cut) < len(words) else "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": len(cut), "total_tokens": 3 + len(cut)},
            })
        finally:
            with srv.lock:
                srv.in_flight -= 1


@pytest.fixture(scope="module")
def server():
    srv = FakeServer(("127.0.0.1", 0), Handler)
    srv.reset()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def url(server):
    server.reset()
    return lambda mode: f"http://127.0.0.1:{server.server_address[1]}/{mode}/v1"


def backend(base_url: str, batch_size: int = 4, **kw) -> OpenAIBackend:
    kw.setdefault("backoff", 0.01)
    return OpenAIBackend(GeneratorSpec(backend="openai", model="my-model", base_url=base_url, batch_size=batch_size), **kw)


def req(key, text, seed=0, **sampling):
    return GenerationRequest(key, ({"role": "system", "content": "be brief"}, {"role": "user", "content": text}),
                             SamplingSpec(seed=seed, **sampling))


def test_requests_answers_and_order(server, url):
    reqs = [req(f"k{i}", f"prompt number {i}", seed=i, max_new_tokens=50) for i in range(6)]
    with backend(url("slow"), batch_size=3) as b:
        gens = b.generate(reqs, progress=False)
    assert [g.key for g in gens] == [r.key for r in reqs]
    assert gens[4].text == "seed 4 says prompt number 4"
    assert gens[4].finish_reason == "stop" and gens[4].n_tokens == 6
    assert gens[4].sampling["seed_used"] == 4 and gens[4].sampling["batch_size"] == 3
    assert gens[0].generator == {"backend": "openai", "model": "my-model", "base_url": url("slow"),
                                 "revision": None, "weight_sha256": None}
    assert 2 <= server.max_in_flight <= 3  # concurrent, but never more than batch_size
    sent = sorted(server.received, key=lambda p: p["seed"])[4]
    assert sent == {"model": "my-model", "messages": [dict(m) for m in reqs[4].messages], "temperature": reqs[4].sampling.temperature,
                    "top_p": reqs[4].sampling.top_p, "max_tokens": 50, "seed": 4,
                    "repetition_penalty": reqs[4].sampling.repetition_penalty}


def test_length_finish_reason(url):
    (g,) = backend(url("ok")).generate([req("a", "one two three four", max_new_tokens=3)], progress=False)
    assert (g.text, g.finish_reason, g.n_tokens) == ("seed 0 says", "length", 3)


def test_retries_503_then_succeeds(server, url):
    (g,) = backend(url("flaky"), max_attempts=4).generate([req("a", "hi", seed=7)], progress=False)
    assert g.text == "seed 7 says hi" and server.hits["flaky"] == 3


def test_always_500_raises_generation_error_with_status(server, url):
    with pytest.raises(GenerationError, match=r"HTTP 500.*the model fell over.*3 attempts"):
        backend(url("fail500"), max_attempts=3).generate([req("a", "hi")], progress=False)
    assert server.hits["fail500"] == 3


def test_client_error_is_not_retried(server, url):
    with pytest.raises(GenerationError, match=r"HTTP 400.*repetition_penalty") as e:
        backend(url("bad400")).generate([req("a", "hi")], progress=False)
    assert e.value.status_code == 400 and server.hits["bad400"] == 1


def test_connection_refused_is_retried_then_fails():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GenerationError, match=r"ConnectError.*2 attempts"):
        backend(f"http://127.0.0.1:{port}/v1", max_attempts=2).generate([req("a", "hi")], progress=False)


def test_api_key_from_settings_is_sent_not_recorded(server, url, monkeypatch):
    from neuroscribe.service.runtime import make_generator
    from neuroscribe.settings import Settings

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("NEUROSCRIBE_LLM_API_KEY", "sk-test-123")  # read by Settings only
    b = make_generator(GeneratorSpec.from_string(f"openai:my-model@{url('ok')}"), Settings.from_env(), cached=False)
    assert isinstance(b, OpenAIBackend)
    (g,) = b.generate([req("a", "hi")], progress=False)
    assert server.headers_seen[-1]["Authorization"] == "Bearer sk-test-123"
    assert "sk-test" not in json.dumps(g.generator) + json.dumps(g.sampling)
