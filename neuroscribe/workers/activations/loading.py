"""Load a subject model: packaged alias, local folder, or Hugging Face id (+ revision).

Resolution order for ``name``:
1. a packaged alias (``minilm``; see ``neuroscribe.packaged``);
2. an existing local folder;
3. a Hugging Face id: the local HF cache first (``snapshot_download(local_files_only=True)``), and
   only when that misses and neither ``local_files_only=True`` nor ``HF_HUB_OFFLINE`` is set, a
   download of the config, tokenizer and weight files. The loaded revision is the snapshot's
   commit hash (so ``step1000`` is recorded as the commit it pointed to).
Every miss (unknown name, missing folder, unknown revision, missing files) is a ``ModelNotFound``.
Models always load from local files (``local_files_only=True`` for transformers).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from ...errors import InvalidInput, ModelNotFound
from ...packaged import PACKAGED, resolve_packaged
from .hashing import weight_files, weight_sha256
from .sites import ARCHITECTURES, _n_layers

__all__ = ["SubjectModel", "load_subject_model", "resolve_device"]

_ALLOW = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "*.tiktoken"]
_PATHLIKE = re.compile(r"^(/|\.|~)|\\|/.*/")


@dataclass
class SubjectModel:
    """A loaded base model (no LM head) in eval mode, with where it came from."""

    model: torch.nn.Module = field(repr=False)
    tokenizer: object = field(repr=False)
    model_id: str
    revision: str | None
    weight_sha256: str
    model_type: str
    n_layers: int
    path: Path
    device: torch.device

    @property
    def config(self):
        return self.model.config


@dataclass(frozen=True)
class _Source:
    path: Path
    model_id: str
    revision: str | None
    gguf_file: str | None = None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return env or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and bool(weight_files(folder))


def _cached_revisions(repo_dir: Path) -> list[str]:
    refs = repo_dir / "refs"
    return sorted(p.name for p in refs.iterdir()) if refs.is_dir() else []


def _from_hub(repo_id: str, revision: str | None, cache_dir: str | None,
              local_files_only: bool | None, trust_remote_code: bool) -> _Source:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    allow = _ALLOW + (["*.py"] if trust_remote_code else [])
    kw = dict(revision=revision, cache_dir=cache_dir, allow_patterns=allow)
    try:
        path = Path(snapshot_download(repo_id, local_files_only=True, **kw))
        if _complete(path):
            return _Source(path, repo_id, path.name)
    except Exception:  # noqa: BLE001 - any cache miss (or invalid id) falls through
        pass
    root = Path(cache_dir or constants.HF_HUB_CACHE)
    repo_dir = root / f"models--{repo_id.replace('/', '--')}"
    if local_files_only or _offline():
        if revision is not None and repo_dir.is_dir():
            have = ", ".join(_cached_revisions(repo_dir)) or "none"
            raise ModelNotFound("revision", f"revision {revision!r} of {repo_id!r} is not in the local "
                                            f"Hugging Face cache {root} (cached: {have})")
        raise ModelNotFound("model", f"model {repo_id!r} not found: not a packaged alias "
                                     f"({', '.join(PACKAGED)}), not a local folder, and not in the "
                                     f"Hugging Face cache {root} (offline)")
    try:
        path = Path(snapshot_download(repo_id, **kw))
        if not weight_files(path):  # no safetensors: fall back to PyTorch pickles
            path = Path(snapshot_download(repo_id, **{**kw, "allow_patterns": ["*.bin"]}))
    except RevisionNotFoundError:
        raise ModelNotFound("revision", f"model {repo_id!r} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise ModelNotFound("model", f"no model {repo_id!r} on the Hugging Face Hub") from None
    except Exception as e:  # noqa: BLE001 - network errors, invalid ids...
        raise ModelNotFound("model", f"model {repo_id!r} is not in the Hugging Face cache {root} and "
                                     f"cannot be downloaded: {_first_line(e)}") from None
    if not _complete(path):
        raise ModelNotFound("model", f"{repo_id!r} at revision {revision!r} has no config.json or weight files")
    return _Source(path, repo_id, path.name)


def _resolve(name: str, revision: str | None, cache_dir: str | None,
             local_files_only: bool | None, trust_remote_code: bool) -> _Source:
    packaged = resolve_packaged(name)
    if packaged is not None or Path(name).expanduser().is_dir():
        if revision is not None:
            raise ModelNotFound("revision", f"revision {revision!r} applies only to Hugging Face ids, "
                                            f"not to {name!r}")
        if packaged is not None:
            return _Source(packaged.path(), f"{packaged.upstream} (packaged:{packaged.alias})", None,
                           packaged.gguf_file)
        return _Source(Path(name).expanduser().resolve(), name, None)
    if _PATHLIKE.search(name):
        raise ModelNotFound("model", f"no such local folder: {name}")
    return _from_hub(name, revision, cache_dir, local_files_only, trust_remote_code)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidInput("device", f"invalid device {device!r}: {_first_line(e)}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("device", f"device {device!r} asked for, but CUDA is not available here")
    return dev


def load_subject_model(name: str, *, revision: str | None = None, device: str = "auto",
                       trust_remote_code: bool = False, cache_dir: str | None = None,
                       local_files_only: bool | None = None,
                       dtype: torch.dtype | None = None) -> SubjectModel:
    """Load ``name`` (packaged alias, local folder or HF id) as a base model in eval mode.

    ``dtype`` defaults to float32. ``trust_remote_code`` is passed to transformers as given.
    """
    dev = resolve_device(device)
    src = _resolve(name, revision, cache_dir, local_files_only, trust_remote_code)
    kw: dict = dict(trust_remote_code=trust_remote_code, local_files_only=True)
    if src.gguf_file:
        kw["gguf_file"] = src.gguf_file
    try:
        config = AutoConfig.from_pretrained(src.path, **kw)
        model = AutoModel.from_pretrained(src.path, dtype=dtype or torch.float32, **kw)
        tokenizer = AutoTokenizer.from_pretrained(src.path, **kw)
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFound("model", f"cannot load {name!r} from {src.path}: {_first_line(e)}") from None
    model.to(dev).eval()
    if tokenizer.pad_token is None:
        fill = tokenizer.eos_token or tokenizer.unk_token
        if fill is not None:
            tokenizer.pad_token = fill
    tokenizer.padding_side = "right"
    files = weight_files(src.path)
    if src.gguf_file:
        files = [src.path / src.gguf_file]
    arch = ARCHITECTURES.get(config.model_type)
    try:
        n_layers = (arch.n_layers if arch else _n_layers)(config)
    except AttributeError:
        n_layers = 0
    return SubjectModel(
        model=model, tokenizer=tokenizer, model_id=src.model_id, revision=src.revision or revision,
        weight_sha256=weight_sha256(src.path, files), model_type=config.model_type,
        n_layers=n_layers, path=src.path, device=dev,
    )
