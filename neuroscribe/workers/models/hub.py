"""Where a model's files are: the one resolution for subject models and generators.

``resolve_model(name)`` tries, in order:
1. a packaged alias (``minilm``, ``smollm2``; see ``neuroscribe.workers.models.packaged``): the installed package's
   folder (revision ``"<pip name>==<version>"``);
2. a local ``.gguf`` file, or a local folder (one whose only weight file is a ``.gguf`` loads that);
3. a Hugging Face id: the local HF cache first (``snapshot_download(local_files_only=True)``; a
   snapshot counts when it has ``config.json`` and weight files), and only when that misses and
   neither ``local_files_only=True`` nor ``HF_HUB_OFFLINE`` is set, a download of the config,
   tokenizer and weight files (``download=True``), or with ``download=False`` a source without a
   local folder, for a library that downloads it itself. The revision is the snapshot's commit
   hash (so ``step1000`` is recorded as the commit it pointed to).
Every miss (unknown name, missing folder, unknown revision, missing files) is a ``ModelNotFound``:
with field ``"revision"`` when the revision is at fault, else with ``field``.
"""

from __future__ import annotations

import os
import re
from contextlib import suppress
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from neuroscribe.errors import ModelNotFound
from neuroscribe.workers.models.packaged import PACKAGED, PackagedModel, resolve_packaged

from neuroscribe.workers.models.hashing import weight_files, weight_sha256

__all__ = ["ModelSource", "resolve_model", "cached_snapshot", "offline", "first_line", "HUB_PATTERNS"]

HUB_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "*.tiktoken", "*.jinja")
_PATHLIKE = re.compile(r"^(/|\.|~)|\\|/.*/|\.gguf$")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: where its files are and what provenance records about them."""

    path: Path | None  # local folder to load from; None: a Hub id the loading library downloads
    model_id: str  # provenance label: Hub id, resolved local path or "<upstream> (packaged:<alias>)"
    revision: str | None  # Hub snapshot commit; "<pip name>==<version>" when packaged; else None
    weight_files: tuple[Path, ...] = ()
    gguf_file: str | None = None  # file name inside ``path`` when the weights are one GGUF file
    kind: str = "hub"  # "packaged", "local" (folder or .gguf file) or "hub"

    @property
    def load_from(self) -> str:
        """What to give ``from_pretrained`` (or vLLM): the local folder, else the Hub id."""
        return str(self.path) if self.path is not None else self.model_id

    @property
    def weight_sha256(self) -> str | None:
        return weight_sha256(self.path, list(self.weight_files)) if self.weight_files else None

    def pretrained_kwargs(self, trust_remote_code: bool) -> dict:
        """Keyword arguments for transformers' ``from_pretrained(self.load_from, ...)``."""
        kw: dict = {"trust_remote_code": trust_remote_code}
        if self.gguf_file:
            kw["gguf_file"] = self.gguf_file
        if self.path is not None:
            kw["local_files_only"] = True
        return kw


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return env or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def cached_snapshot(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> Path | None:
    """The locally cached snapshot folder of ``repo_id`` (never touches the network), else None."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a valid repo id
        return None


def _complete(folder: Path | None) -> bool:
    return folder is not None and (folder / "config.json").is_file() and bool(weight_files(folder))


def _quant(gguf_file: str) -> str:
    m = re.search(r"\.((?:I?Q\d\w*)|F16|F32|BF16)\.gguf$", gguf_file, re.IGNORECASE)
    return m.group(1) if m else "GGUF"


def _packaged(p: PackagedModel) -> ModelSource:
    folder = p.path()  # raises ModelNotFound with the pip hint when not installed
    rev = None
    with suppress(PackageNotFoundError):
        rev = f"{p.pip_name}=={version(p.pip_name)}"
    label = f"{p.upstream} (packaged:{p.alias}" + (f", {_quant(p.gguf_file)} GGUF)" if p.gguf_file else ")")
    files = (folder / p.gguf_file,) if p.gguf_file else tuple(weight_files(folder))
    return ModelSource(folder, label, rev, files, p.gguf_file, "packaged")


def _local(path: Path) -> ModelSource:
    if path.is_file():  # a .gguf file
        return ModelSource(path.parent.resolve(), str(path.resolve()), None, (path,), path.name, "local")
    files = weight_files(path)
    if len(files) == 1 and files[0].suffix == ".gguf":
        return ModelSource(path.resolve(), str(files[0].resolve()), None, (files[0],), files[0].name, "local")
    return ModelSource(path.resolve(), str(path.resolve()), None, tuple(files), None, "local")


def _snapshot_source(repo_id: str, path: Path) -> ModelSource:
    return ModelSource(path, repo_id, path.name, tuple(weight_files(path)))


def _from_hub(repo_id: str, revision: str | None, cache_dir: str | None, local_files_only: bool | None,
              field: str, patterns: list[str], download: bool) -> ModelSource:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    snap = cached_snapshot(repo_id, revision, cache_dir)
    if _complete(snap):
        return _snapshot_source(repo_id, snap)
    root = Path(cache_dir or constants.HF_HUB_CACHE)
    refs = root / f"models--{repo_id.replace('/', '--')}" / "refs"
    if local_files_only or offline():
        if revision is not None and refs.parent.is_dir():
            have = ", ".join(sorted(p.name for p in refs.iterdir()) if refs.is_dir() else []) or "none"
            raise ModelNotFound("revision", f"revision {revision!r} of {repo_id!r} is not in the local "
                                            f"Hugging Face cache {root} (cached: {have})")
        raise ModelNotFound(field, f"model {repo_id!r} not found: not a packaged alias "
                                   f"({', '.join(PACKAGED)}), not a local folder, and not in the "
                                   f"Hugging Face cache {root} (offline)")
    if not download:
        return ModelSource(None, repo_id, revision)
    kw = dict(revision=revision, cache_dir=cache_dir, allow_patterns=patterns)
    try:
        path = Path(snapshot_download(repo_id, **kw))
        if not weight_files(path):  # no safetensors: fall back to PyTorch pickles
            path = Path(snapshot_download(repo_id, **{**kw, "allow_patterns": ["*.bin"]}))
    except RevisionNotFoundError:
        raise ModelNotFound("revision", f"model {repo_id!r} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise ModelNotFound(field, f"no model {repo_id!r} on the Hugging Face Hub") from None
    except Exception as e:  # noqa: BLE001 - network errors, invalid ids...
        raise ModelNotFound(field, f"model {repo_id!r} is not in the Hugging Face cache {root} and "
                                   f"cannot be downloaded: {first_line(e)}") from None
    if not _complete(path):
        raise ModelNotFound(field, f"{repo_id!r} at revision {revision!r} has no config.json or weight files")
    return _snapshot_source(repo_id, path)


def takes_revision(name: str) -> bool:
    """Whether ``name`` is a Hugging Face id (revisions apply), not a packaged alias or local path."""
    path = Path(name).expanduser()
    return resolve_packaged(name) is None and not path.exists() and not _PATHLIKE.search(name)


def resolve_model(name: str, *, revision: str | None = None, cache_dir: str | None = None,
                  local_files_only: bool | None = None, field: str = "model",
                  trust_remote_code: bool = False, download: bool = True) -> ModelSource:
    """Find ``name`` (packaged alias, local folder or ``.gguf`` file, or Hugging Face id) without
    loading it. ``trust_remote_code`` also downloads the repository's ``*.py`` files."""
    packaged = resolve_packaged(name)
    path = Path(name).expanduser()
    is_local = path.is_dir() or (path.is_file() and path.suffix == ".gguf")
    if packaged is not None or is_local:
        if revision is not None:
            raise ModelNotFound("revision", f"revision {revision!r} applies only to Hugging Face ids, "
                                            f"not to {name!r}")
        return _packaged(packaged) if packaged is not None else _local(path)
    if _PATHLIKE.search(name):
        raise ModelNotFound(field, f"no such local model file or folder: {name}")
    patterns = [*HUB_PATTERNS, "*.py"] if trust_remote_code else list(HUB_PATTERNS)
    return _from_hub(name, revision, cache_dir, local_files_only, field, patterns, download)
