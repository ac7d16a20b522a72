"""``OpenAIBackend``: chat completions from any OpenAI-compatible server (``vllm serve``, TGI, ...).

``POST {base_url}/chat/completions`` with model, messages, temperature, top_p, max_tokens, seed
and ``repetition_penalty`` (an extra field ``vllm serve`` accepts; strict servers may reject it).
Up to ``spec.batch_size`` requests are in flight at once (threads sharing one ``httpx.Client``).
429, 5xx and connection errors/timeouts are retried with exponential backoff (``Retry-After``
honoured); other failures raise ``GenerationError`` naming the HTTP status and a body excerpt.
An API key, when the settings hold one (``Settings.llm_api_key``), is sent as Bearer -- only to an
http(s) ``base_url`` among ``key_urls`` when those are given (the service passes its configured
``llm_endpoints``: a job cannot send the key elsewhere; redirects are not followed); it is never
recorded. A ``base_url`` that is
not http or https (``file://``...) is refused (``InvalidInput``). The only module of the package that
imports httpx.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Sequence

import httpx
from tqdm.auto import tqdm

from urllib.parse import urlsplit

from neuroscribe.errors import GenerationError, InvalidInput
from neuroscribe.jobs import GeneratorSpec

from neuroscribe.workers.generate.base import Generation, GenerationRequest

__all__ = ["OpenAIBackend"]



def _excerpt(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."


def _retry_after(r: httpx.Response) -> float | None:
    try:
        return max(0.0, float(r.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


class OpenAIBackend:
    """An ``LLMBackend`` over HTTP. ``max_attempts`` tries per request; waits ``backoff * 2**k``
    seconds (at most ``max_backoff``) between them. ``transport`` is for tests."""

    def __init__(self, spec: GeneratorSpec, *, timeout: float = 300.0, max_attempts: int = 4,
                 backoff: float = 1.0, max_backoff: float = 30.0, api_key: str | None = None,
                 key_urls: tuple[str, ...] | None = None, transport: httpx.BaseTransport | None = None):
        if not spec.base_url:
            raise GenerationError("the openai backend needs base_url, e.g. openai:MODEL@http://127.0.0.1:8000/v1")
        if urlsplit(spec.base_url.strip()).scheme.lower() not in ("http", "https"):
            raise InvalidInput("generator.base_url", f"{spec.base_url!r}: only http and https URLs")
        self.spec = spec
        self.base_url = spec.base_url.strip().rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff, self.max_backoff = backoff, max_backoff
        # the key belongs to its endpoints: never sent elsewhere (redirects are not followed either)
        key = api_key if key_urls is None or self.base_url in {u.strip().rstrip("/") for u in key_urls} else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), headers=headers,
                                    transport=transport)
        self.info = {"backend": "openai", "model": spec.model, "base_url": self.base_url, "revision": None,
                     "weight_sha256": None}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "OpenAIBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _payload(self, req: GenerationRequest) -> dict:
        s = req.sampling
        return {"model": self.spec.model, "messages": [dict(m) for m in req.messages], "temperature": s.temperature,
                "top_p": s.top_p, "max_tokens": s.max_new_tokens, "seed": s.seed,
                "repetition_penalty": s.repetition_penalty}

    def _post(self, payload: dict) -> dict:
        url = f"{self.base_url}/chat/completions"
        for attempt in range(1, self.max_attempts + 1):
            wait = None
            try:
                r = self._client.post(url, json=payload)
            except httpx.TransportError as e:  # connection refused/reset, timeouts
                err = GenerationError(f"POST {url} failed: {type(e).__name__}: {e}")
            else:
                if r.status_code == 200:
                    try:
                        return r.json()
                    except ValueError:
                        raise GenerationError(f"POST {url}: HTTP 200 but not JSON: {_excerpt(r.text)}") from None
                err = GenerationError(f"POST {url}: HTTP {r.status_code}: {_excerpt(r.text)}")
                err.status_code = r.status_code  # type: ignore[attr-defined]
                if r.status_code != 429 and r.status_code < 500:
                    raise err
                wait = _retry_after(r)
            if attempt == self.max_attempts:
                raise GenerationError(f"{err} (gave up after {attempt} attempts)") from err
            time.sleep(min(self.max_backoff, wait if wait is not None else self.backoff * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    def _one(self, req: GenerationRequest, in_flight: int) -> Generation:
        data = self._post(self._payload(req))
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise GenerationError(f"unexpected response from {self.base_url}: {_excerpt(str(data))}") from None
        usage = data.get("usage") or {}
        greedy = req.sampling.temperature == 0
        sampling = req.sampling.model_dump() | {
            "seed_used": None if greedy else req.sampling.seed,
            "seeding": "greedy" if greedy else "per_request",
            "batch_size": in_flight,
        }
        return Generation(req.key, text.strip(), dict(self.info), sampling, choice.get("finish_reason") or "stop",
                          int(usage.get("completion_tokens") or 0))

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = True) -> list[Generation]:
        requests = list(requests)
        if not requests:
            return []
        workers = min(self.spec.batch_size, len(requests))
        out: list[Generation | None] = [None] * len(requests)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="neuroscribe-llm")
        try:
            futures = {pool.submit(self._one, r, workers): i for i, r in enumerate(requests)}
            for fut in tqdm(as_completed(futures), total=len(futures), desc="generate", disable=not progress):
                out[futures[fut]] = fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return out  # type: ignore[return-value]
