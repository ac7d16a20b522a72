"""One ``Settings``: built once, from command-line options and the environment, and passed down.

Only this module reads neuroscribe's environment variables; the CLI, the API, the workers and the
embedded runs receive a ``Settings`` (the workers' executor processes get it as JSON). Each field,
its variable and its default:

    queue_url     NEUROSCRIBE_QUEUE        redis://127.0.0.1:6379/0   (memory:// for one process)
    artefacts     NEUROSCRIBE_ARTEFACTS    ~/.local/share/neuroscribe/artefacts
    cache_dir     NEUROSCRIBE_CACHE        ~/.cache/neuroscribe  (generations, responses, weight hashes)
    api_key       NEUROSCRIBE_API_KEY      none (the API requires it on every route but /healthz when set)
    url           NEUROSCRIBE_URL          http://127.0.0.1:8000      (the client's API)
    host, port    NEUROSCRIBE_HOST/PORT    127.0.0.1, 8000            (what ``serve`` binds)
    device        NEUROSCRIBE_DEVICE       auto  (what a job's device ``auto`` means on this machine)
    llm_api_key   NEUROSCRIBE_LLM_API_KEY, else OPENAI_API_KEY: sent to OpenAI-compatible generators
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

__all__ = ["Settings", "DEFAULT_QUEUE", "DEFAULT_URL"]

DEFAULT_QUEUE = "redis://127.0.0.1:6379/0"
DEFAULT_URL = "http://127.0.0.1:8000"


def _home() -> Path:
    return Path.home()


@dataclass(frozen=True)
class Settings:
    queue_url: str = DEFAULT_QUEUE
    artefacts: Path = dataclasses.field(default_factory=lambda: _home() / ".local" / "share" / "neuroscribe" / "artefacts")
    cache_dir: Path = dataclasses.field(default_factory=lambda: _home() / ".cache" / "neuroscribe")
    api_key: str | None = dataclasses.field(default=None, repr=False)
    url: str = DEFAULT_URL
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    llm_api_key: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options) -> "Settings":
        """The settings of this process: ``options`` that are not None win over the environment,
        which wins over the defaults."""
        env = os.environ if environ is None else environ
        values: dict = {}
        for field, var in (("queue_url", "NEUROSCRIBE_QUEUE"), ("artefacts", "NEUROSCRIBE_ARTEFACTS"),
                           ("cache_dir", "NEUROSCRIBE_CACHE"), ("api_key", "NEUROSCRIBE_API_KEY"),
                           ("url", "NEUROSCRIBE_URL"), ("host", "NEUROSCRIBE_HOST"), ("port", "NEUROSCRIBE_PORT"),
                           ("device", "NEUROSCRIBE_DEVICE")):
            if env.get(var):
                values[field] = env[var]
        key = env.get("NEUROSCRIBE_LLM_API_KEY") or env.get("OPENAI_API_KEY")
        if key:
            values["llm_api_key"] = key
        values.update({k: v for k, v in options.items() if v is not None})
        return cls.build(**values)

    @classmethod
    def build(cls, **values) -> "Settings":
        """Settings from plain values (paths as strings, the port as a string are accepted)."""
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        for name in ("artefacts", "cache_dir"):
            if name in values:
                values[name] = Path(values[name]).expanduser()
        if "port" in values:
            values["port"] = int(values["port"])
        return cls(**values)

    def to_json(self) -> dict:
        """The settings as JSON (for the executor process); secrets included: never log it."""
        return {f.name: str(v) if isinstance(v, Path) else v for f in dataclasses.fields(self)
                for v in [getattr(self, f.name)]}

    @classmethod
    def from_json(cls, data: dict) -> "Settings":
        return cls.build(**data)
