"""The generation contract shared by every backend: request, result, Protocol, batching plan.

Pure Python: importing this module imports neither torch nor httpx nor vllm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from neuroscribe.errors import InvalidInput
from neuroscribe.jobs import SamplingSpec

__all__ = ["GenerationRequest", "Generation", "LLMBackend", "sampling_group", "plan_batches", "render_chat"]

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class GenerationRequest:
    """One chat completion to write. ``key`` is the caller's id, echoed back in the ``Generation``."""

    key: str
    messages: tuple[Mapping[str, str], ...]
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    meta: Mapping[str, Any] = field(default_factory=dict)  # opaque to real backends; FakeBackend reads it

    def __post_init__(self) -> None:
        msgs = tuple(dict(m) for m in self.messages)  # accept lists / any mapping; keep a private copy
        if not msgs:
            raise InvalidInput("messages", f"request {self.key!r} has no messages")
        for i, m in enumerate(msgs):
            if m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise InvalidInput(
                    f"messages:{i}", f"request {self.key!r}: each message needs role in {ROLES} and str content"
                )
        object.__setattr__(self, "messages", msgs)
        if not isinstance(self.sampling, SamplingSpec):
            object.__setattr__(self, "sampling", SamplingSpec.model_validate(self.sampling))


@dataclass(frozen=True)
class Generation:
    """One completion and how it was made.

    ``generator`` is the backend's ``info`` (provenance). ``sampling`` is the request's
    ``SamplingSpec.model_dump()`` plus how it was actually run (``seed_used``, ``seeding``,
    ``batch_size``...).
    """

    key: str
    text: str
    generator: dict
    sampling: dict
    finish_reason: str  # "stop" | "length" | whatever an OpenAI-compatible server says
    n_tokens: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Generation":
        g = cls(**{k: data[k] for k in ("key", "text", "generator", "sampling", "finish_reason", "n_tokens")})
        if not (isinstance(g.text, str) and isinstance(g.n_tokens, int) and isinstance(g.sampling, dict)):
            raise TypeError("malformed Generation")
        return g


@runtime_checkable
class LLMBackend(Protocol):
    """What every backend offers. ``generate`` returns one ``Generation`` per request, in order."""

    info: dict

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = True) -> list[Generation]: ...


def sampling_group(s: SamplingSpec) -> tuple:
    """Requests with the same group share one batch: identical settings apart from the seed."""
    return (s.temperature, s.top_p, s.max_new_tokens, s.repetition_penalty)


def plan_batches(requests: Sequence[GenerationRequest], lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of ``requests`` per batch: grouped by sampling settings (first-seen order),
    sorted by prompt length inside a group (ties by position) to reduce padding, then cut
    into batches of at most ``batch_size``. Deterministic given the same requests."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(sampling_group(r.sampling), []).append(i)
    batches = []
    for idx in groups.values():
        idx.sort(key=lambda i: (lengths[i], i))
        batches.extend(idx[j : j + batch_size] for j in range(0, len(idx), batch_size))
    return batches


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """The prompt text for ``messages`` through the tokenizer's chat template (generation prompt
    added). A tokenizer without a template (a base model) gets the contents joined by blank lines."""
    msgs = [dict(m) for m in messages]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in msgs) + "\n\n"
