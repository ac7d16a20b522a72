"""One ``Settings``: built once, from command-line options and the environment, and passed down.

Only this module reads neuroscribe's environment variables; the CLI, the API, the workers and the
embedded runs receive a ``Settings`` (the workers' executor processes get it as JSON). Each field,
its variable and its default:

    queue_url     NEUROSCRIBE_QUEUE        redis://127.0.0.1:6379/0   (memory:// for one process)
    artefacts     NEUROSCRIBE_ARTEFACTS    ~/.local/share/neuroscribe/artefacts
    artefacts_url NEUROSCRIBE_ARTEFACTS_URL none: the artefacts folder is shared by the API and every worker;
                                           s3://BUCKET[/PREFIX] (or file:///PATH): stages publish their files
                                           there and each machine keeps a local copy under ``artefacts``
                                           (service/storage/, docs/artefacts.md)
    s3_endpoint_url NEUROSCRIBE_S3_ENDPOINT_URL none: AWS; else an S3-compatible server (MinIO, Ceph, ...);
                                           credentials are botocore's own (AWS_ACCESS_KEY_ID, ...)
    cache_dir     NEUROSCRIBE_CACHE        ~/.cache/neuroscribe  (generations, responses, weight hashes)
    api_key       NEUROSCRIBE_API_KEY      none (the API requires it on every route but /healthz when set)
    url           NEUROSCRIBE_URL          http://127.0.0.1:8000      (the client's API)
    host, port    NEUROSCRIBE_HOST/PORT    127.0.0.1, 8000            (what ``serve`` binds)
    device        NEUROSCRIBE_DEVICE       auto  (what a job's device ``auto`` means on this machine)
    llm_api_key   NEUROSCRIBE_LLM_API_KEY, else OPENAI_API_KEY: sent to OpenAI-compatible generators

Operations (service/retention.py, service/auth.py, service/logs.py; README "Operating the service"):

    job_ttl_s            NEUROSCRIBE_JOB_TTL            604800 (7 days): finished jobs, their results and
                                                        files are deleted this long after they ended (gc)
    idempotency_ttl_s    NEUROSCRIBE_IDEMPOTENCY_TTL    86400: an Idempotency-Key is remembered this long
    dead_letter_ttl_s    NEUROSCRIBE_DEAD_LETTER_TTL    1209600 (14 days): dead letters kept this long
    gc_interval_s        NEUROSCRIBE_GC_INTERVAL        600: ``serve`` runs the gc this often (0: never)
    result_inline_bytes  NEUROSCRIBE_RESULT_INLINE_BYTES 262144: larger results are written to the
                                                        job's folder (result.json), not kept in the queue
    api_keys_file        NEUROSCRIBE_API_KEYS_FILE      none: per-user keys (JSON, see service/auth.py)
    rate_limit           NEUROSCRIBE_RATE_LIMIT         0: requests per second per key (0: unlimited)
    rate_burst           NEUROSCRIBE_RATE_BURST         20: requests a key may make at once
    require_auth         NEUROSCRIBE_REQUIRE_AUTH       0: ``serve`` refuses to start without a key ...
    local_trial          NEUROSCRIBE_LOCAL_TRIAL        0: ... unless this says it is a local trial
    log_format           NEUROSCRIBE_LOG_FORMAT         json (or text)
    log_level            NEUROSCRIBE_LOG_LEVEL          INFO
    atlas_url            NEUROSCRIBE_ATLAS_URL          sqlite:///<artefacts>/../atlas.sqlite: the neuron atlas
                                                        (docs/atlas.md); every finished job is indexed into it
                                                        (``auto_index``, NEUROSCRIBE_AUTO_INDEX, 1; 0: never)
    shard_rows           NEUROSCRIBE_SHARD_ROWS         0: a describe job's activate stage is split into shards
                                                        of this many sentences (0: never split); any activate
                                                        worker takes any shard (queue/shards.py)
    shards_in_flight     NEUROSCRIBE_SHARDS_IN_FLIGHT   4: shards of one job in a stage's stream at a time
    exemplar_window      NEUROSCRIBE_EXEMPLAR_WINDOW    2048: sentences a describe job captures at a time (memory:
                                                        window x units float16); shards are whole windows

Server policy and bounds (service/policy.py, service/limits.py; README "What a job may ask for"):
lists are comma-separated; model and generator entries are shell-style patterns (fnmatch).

    models               NEUROSCRIBE_MODELS             minilm,smollm2: subject models a job may name
                                                        (packaged aliases, Hub ids, local folders)
    remote_code_models   NEUROSCRIBE_REMOTE_CODE_MODELS none: models that may run their own code
    generators           NEUROSCRIBE_GENERATORS         llamacpp:smollm2,transformers:smollm2,fake:*,openai:*
                                                        (BACKEND:MODEL a job may name)
    llm_endpoints        NEUROSCRIBE_LLM_ENDPOINTS      none: base URLs of OpenAI-compatible servers a job
                                                        may name; the only URLs llm_api_key is sent to
    devices              NEUROSCRIBE_DEVICES            auto,cpu: devices the workers offer to jobs
    max_body_bytes       NEUROSCRIBE_MAX_BODY_BYTES     8388608 (8 MiB): larger requests get 413
    max_concepts         NEUROSCRIBE_MAX_CONCEPTS       1000 concepts per experts job
    max_sentences        NEUROSCRIBE_MAX_SENTENCES      50000 sentences per job (given or generated), and
                                                        items in any list of a job
    max_units            NEUROSCRIBE_MAX_UNITS          200000 units read per job (layers x units per layer)
    dataset_max_bytes    NEUROSCRIBE_DATASET_MAX_BYTES  67108864 (64 MiB): the largest dataset one upload stores
                                                        (POST /v1/datasets; also its body limit); 0: no uploads
    dataset_quota_bytes  NEUROSCRIBE_DATASET_QUOTA_BYTES 268435456 (256 MiB): dataset bytes each key (user) may keep
                                                        stored (service/dataset_store.py); 0: no quota
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

# the operations settings: (field, variable), and the fields converted from strings
_OPS_VARS = (("job_ttl_s", "NEUROSCRIBE_JOB_TTL"), ("idempotency_ttl_s", "NEUROSCRIBE_IDEMPOTENCY_TTL"),
             ("dead_letter_ttl_s", "NEUROSCRIBE_DEAD_LETTER_TTL"), ("gc_interval_s", "NEUROSCRIBE_GC_INTERVAL"),
             ("result_inline_bytes", "NEUROSCRIBE_RESULT_INLINE_BYTES"), ("api_keys_file", "NEUROSCRIBE_API_KEYS_FILE"),
             ("rate_limit", "NEUROSCRIBE_RATE_LIMIT"), ("rate_burst", "NEUROSCRIBE_RATE_BURST"),
             ("require_auth", "NEUROSCRIBE_REQUIRE_AUTH"), ("local_trial", "NEUROSCRIBE_LOCAL_TRIAL"),
             ("log_format", "NEUROSCRIBE_LOG_FORMAT"), ("log_level", "NEUROSCRIBE_LOG_LEVEL"),
             ("atlas_url", "NEUROSCRIBE_ATLAS_URL"), ("auto_index", "NEUROSCRIBE_AUTO_INDEX"),
             ("shard_rows", "NEUROSCRIBE_SHARD_ROWS"), ("shards_in_flight", "NEUROSCRIBE_SHARDS_IN_FLIGHT"),
             ("exemplar_window", "NEUROSCRIBE_EXEMPLAR_WINDOW"))
_TYPED = (("job_ttl_s", float), ("idempotency_ttl_s", float), ("dead_letter_ttl_s", float), ("gc_interval_s", float),
          ("result_inline_bytes", int), ("rate_limit", float), ("rate_burst", int), ("require_auth", bool), ("auto_index", bool),
          ("local_trial", bool), ("shard_rows", int), ("shards_in_flight", int),
          ("exemplar_window", int))
# the policy settings (service/policy.py, service/limits.py): (field, variable); lists and integers
_POLICY_VARS = (("models", "NEUROSCRIBE_MODELS"), ("remote_code_models", "NEUROSCRIBE_REMOTE_CODE_MODELS"),
                ("generators", "NEUROSCRIBE_GENERATORS"), ("llm_endpoints", "NEUROSCRIBE_LLM_ENDPOINTS"),
                ("devices", "NEUROSCRIBE_DEVICES"), ("max_body_bytes", "NEUROSCRIBE_MAX_BODY_BYTES"),
                ("max_concepts", "NEUROSCRIBE_MAX_CONCEPTS"), ("max_sentences", "NEUROSCRIBE_MAX_SENTENCES"),
                ("max_units", "NEUROSCRIBE_MAX_UNITS"), ("dataset_max_bytes", "NEUROSCRIBE_DATASET_MAX_BYTES"),
                ("dataset_quota_bytes", "NEUROSCRIBE_DATASET_QUOTA_BYTES"))
_LISTS = ("models", "remote_code_models", "generators", "llm_endpoints", "devices")
_POLICY_TYPED = (("max_body_bytes", int), ("max_concepts", int), ("max_sentences", int), ("max_units", int),
                 ("dataset_max_bytes", int), ("dataset_quota_bytes", int))
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _convert(name: str, kind: type, value):
    """``value`` (a string from the environment, or already typed) as ``kind``; a ValueError names
    the setting and the value otherwise. Numbers must not be negative."""
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        out = value
    elif kind is bool:
        text = str(value).strip().lower()
        if text not in _TRUE | _FALSE:
            raise ValueError(f"{name}: {value!r} is not a boolean (1/0, true/false, yes/no, on/off)")
        return text in _TRUE
    else:
        try:
            out = kind(str(value).strip())
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if out < 0:
        raise ValueError(f"{name}: {value!r} must not be negative")
    return out


def _as_list(value) -> tuple[str, ...]:
    """A comma-separated string (or a list, from JSON) as a tuple of non-empty, stripped items."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


def _check_artefacts_url(url, endpoint) -> None:
    """Refuse, at startup, an artefacts URL no store reads (service/storage/ opens the accepted ones)
    and an S3 endpoint that is not an HTTP URL: ``InvalidInput`` (a ValueError) naming the variable,
    which the commands print as one line (exit 2)."""
    from neuroscribe.errors import InvalidInput

    if url is not None:
        scheme, sep, rest = str(url).partition("://")
        if not sep or not rest.strip("/") or not (scheme == "s3" or (scheme == "file" and rest.startswith("/"))):
            raise InvalidInput("NEUROSCRIBE_ARTEFACTS_URL", f"artefacts_url: {url!r} is not s3://BUCKET[/PREFIX] "
                                                            "or file:///PATH")
    if endpoint is not None and not str(endpoint).startswith(("http://", "https://")):
        raise InvalidInput("NEUROSCRIBE_S3_ENDPOINT_URL", f"s3_endpoint_url: {endpoint!r} is not an http:// or "
                                                          "https:// URL")


def _home() -> Path:
    return Path.home()


@dataclass(frozen=True)
class Settings:
    queue_url: str = DEFAULT_QUEUE
    artefacts: Path = dataclasses.field(default_factory=lambda: _home() / ".local" / "share" / "neuroscribe" / "artefacts")
    artefacts_url: str | None = None
    s3_endpoint_url: str | None = None
    cache_dir: Path = dataclasses.field(default_factory=lambda: _home() / ".cache" / "neuroscribe")
    api_key: str | None = dataclasses.field(default=None, repr=False)
    url: str = DEFAULT_URL
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    llm_api_key: str | None = dataclasses.field(default=None, repr=False)
    job_ttl_s: float = 7 * 86400.0
    idempotency_ttl_s: float = 86400.0
    dead_letter_ttl_s: float = 14 * 86400.0
    gc_interval_s: float = 600.0
    result_inline_bytes: int = 256 * 1024
    api_keys_file: Path | None = None
    rate_limit: float = 0.0
    rate_burst: int = 20
    require_auth: bool = False
    local_trial: bool = False
    log_format: str = "json"
    log_level: str = "INFO"
    atlas_url: str | None = None
    auto_index: bool = True
    shard_rows: int = 0
    shards_in_flight: int = 4
    exemplar_window: int = 2048
    models: tuple[str, ...] = ("minilm", "smollm2")
    remote_code_models: tuple[str, ...] = ()
    generators: tuple[str, ...] = ("llamacpp:smollm2", "transformers:smollm2", "fake:*", "openai:*")
    llm_endpoints: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("auto", "cpu")
    max_body_bytes: int = 8 * 1024 * 1024
    max_concepts: int = 1000
    max_sentences: int = 50_000
    max_units: int = 200_000
    dataset_max_bytes: int = 64 * 1024 * 1024
    dataset_quota_bytes: int = 256 * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options) -> "Settings":
        """The settings of this process: ``options`` that are not None win over the environment,
        which wins over the defaults."""
        env = os.environ if environ is None else environ
        values: dict = {}
        for field, var in (("queue_url", "NEUROSCRIBE_QUEUE"), ("artefacts", "NEUROSCRIBE_ARTEFACTS"),
                           ("artefacts_url", "NEUROSCRIBE_ARTEFACTS_URL"), ("s3_endpoint_url", "NEUROSCRIBE_S3_ENDPOINT_URL"),
                           ("cache_dir", "NEUROSCRIBE_CACHE"), ("api_key", "NEUROSCRIBE_API_KEY"),
                           ("url", "NEUROSCRIBE_URL"), ("host", "NEUROSCRIBE_HOST"), ("port", "NEUROSCRIBE_PORT"),
                           ("device", "NEUROSCRIBE_DEVICE"), *_OPS_VARS, *_POLICY_VARS):
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
        for name in ("artefacts", "cache_dir", "api_keys_file"):
            if values.get(name) is not None:
                values[name] = Path(values[name]).expanduser()
        for name in _LISTS:
            if name in values and values[name] is not None:
                values[name] = _as_list(values[name])
        for name, kind in (("port", int), *_TYPED, *_POLICY_TYPED):
            if name in values and values[name] is not None:
                values[name] = _convert(name, kind, values[name])
        _check_artefacts_url(values.get("artefacts_url"), values.get("s3_endpoint_url"))
        if values.get("log_format", "json") not in ("json", "text"):
            raise ValueError(f"log_format (NEUROSCRIBE_LOG_FORMAT): {values['log_format']!r} is not json or text")
        return cls(**values)

    def to_json(self) -> dict:
        """The settings as JSON (for the executor process); secrets included: never log it."""
        return {f.name: str(v) if isinstance(v, Path) else v for f in dataclasses.fields(self)
                for v in [getattr(self, f.name)]}

    @classmethod
    def from_json(cls, data: dict) -> "Settings":
        return cls.build(**data)
