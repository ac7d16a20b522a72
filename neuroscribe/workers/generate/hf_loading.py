"""Where a transformers generator's weights come from, how to load them, and their provenance.

``spec.model`` may be a packaged alias (``smollm2``: a GGUF file inside an installed package),
a local folder, a local ``.gguf`` file, or a Hugging Face id. A Hugging Face id already in the
local cache loads offline (``local_files_only``); otherwise transformers downloads it unless
``HF_HUB_OFFLINE`` is set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from neuroscribe.errors import ModelNotFound
from neuroscribe.packaged import resolve_packaged

from .weights import weight_files, weights_sha256

__all__ = ["ModelSource", "resolve_source", "load_tokenizer_and_model", "hub_snapshot", "hub_offline"]


@dataclass(frozen=True)
class ModelSource:
    load_from: str  # folder or Hugging Face id given to from_pretrained
    label: str  # what provenance records as "model"
    gguf_file: str | None = None
    revision: str | None = None
    weight_files: tuple[Path, ...] = ()
    local: bool = True

    @property
    def weight_sha256(self) -> str | None:
        return weights_sha256(self.weight_files)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_snapshot(repo_id: str) -> Path | None:
    """The locally cached snapshot folder of ``repo_id`` (never touches the network), else None."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id
        return None


def _quant(gguf_file: str) -> str:
    m = re.search(r"\.((?:I?Q\d\w*)|F16|F32|BF16)\.gguf$", gguf_file, re.IGNORECASE)
    return m.group(1) if m else "GGUF"


def resolve_source(name: str) -> ModelSource:
    """Find ``name`` without loading it; ``ModelNotFound`` when it cannot exist here."""
    packaged = resolve_packaged(name)
    if packaged is not None:
        folder = packaged.path()  # raises ModelNotFound with the pip hint when not installed
        try:
            rev = f"{packaged.pip_name}=={version(packaged.pip_name)}"
        except PackageNotFoundError:
            rev = None
        if packaged.gguf_file:
            label = f"{packaged.upstream} (packaged:{packaged.alias}, {_quant(packaged.gguf_file)} GGUF)"
            return ModelSource(str(folder), label, packaged.gguf_file, rev, (folder / packaged.gguf_file,))
        label = f"{packaged.upstream} (packaged:{packaged.alias})"
        return ModelSource(str(folder), label, None, rev, tuple(weight_files(folder)))
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(str(path.parent), str(path.resolve()), path.name, None, (path,))
    if path.is_dir():
        files = weight_files(path)
        ggufs = sorted(path.glob("*.gguf"))
        if not files and len(ggufs) == 1:
            return ModelSource(str(path), str(ggufs[0].resolve()), ggufs[0].name, None, (ggufs[0],))
        return ModelSource(str(path), str(path.resolve()), None, None, tuple(files))
    if name.startswith(("/", "./", "../", "~")) or name.endswith(".gguf"):
        raise ModelNotFound("generator", f"no such model file or folder: {name}")
    snap = hub_snapshot(name)
    if snap is not None:
        return ModelSource(str(snap), name, None, snap.name, tuple(weight_files(snap)))
    if hub_offline():
        raise ModelNotFound("generator", f"{name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    return ModelSource(name, name, local=False)  # transformers will download it


def load_tokenizer_and_model(src: ModelSource, *, trust_remote_code: bool, dtype: Any) -> tuple[Any, Any, ModelSource]:
    """Tokenizer (left padding, a pad token) and model in eval mode, plus the source completed
    with revision and weight files once a download has put them in the cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if src.gguf_file:
        kw["gguf_file"] = src.gguf_file
    if src.local:
        kw["local_files_only"] = True
    try:
        tok = AutoTokenizer.from_pretrained(src.load_from, **kw)
        model = AutoModelForCausalLM.from_pretrained(src.load_from, dtype=dtype, **kw)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ModelNotFound("generator", f"cannot load {src.label!r}: {first}") from e
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    if not src.local:
        snap = hub_snapshot(src.load_from)
        rev = getattr(model.config, "_commit_hash", None) or (snap.name if snap else None)
        src = replace(src, revision=rev, weight_files=tuple(weight_files(snap)) if snap else ())
    return tok, model, src
