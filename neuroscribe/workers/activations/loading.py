"""Load a subject model: packaged alias, local folder, or Hugging Face id (+ revision).

Where the files come from (and every miss as a ``ModelNotFound``): ``neuroscribe.workers.models.hub``. A
Hugging Face id is read from the local HF cache, else downloaded unless ``local_files_only=True`` or
``HF_HUB_OFFLINE`` is set; the loaded revision is the snapshot's commit hash (so ``step1000`` is
recorded as the commit it pointed to). Models always load from local files (``local_files_only=True``
for transformers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from neuroscribe.errors import InvalidInput, ModelNotFound
from neuroscribe.workers.models.hub import first_line, resolve_model
from neuroscribe.workers.activations.sites import ARCHITECTURES, default_n_layers

__all__ = ["SubjectModel", "SubjectShape", "load_subject_model", "peek_subject", "random_init_subject", "state_sha256",
           "resolve_device"]


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

    def environment(self) -> dict:
        """Device, dtype and library versions of this run (recorded in every result's provenance)."""
        import transformers

        return {
            "device": str(self.device),
            "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidInput("device", f"invalid device {device!r}: {first_line(e)}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("device", f"device {device!r} asked for, but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidInput("device", f"device {device!r} asked for, but this machine has "
                                     f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def _pad_right(tokenizer) -> None:
    """Decoders often have no pad token: pad with eos (or unk); always pad on the right."""
    if tokenizer.pad_token is None:
        fill = tokenizer.eos_token or tokenizer.unk_token
        if fill is not None:
            tokenizer.pad_token = fill
    tokenizer.padding_side = "right"


@dataclass
class SubjectShape:
    """What a model's config and tokenizer say, without its weights: enough to check a job's
    site, layers and pooling before any generation or forward pass."""

    tokenizer: object = field(repr=False)
    model_id: str
    model_type: str
    n_layers: int
    config: object = field(default=None, repr=False)


def _config_and_tokenizer(name: str, src, trust_remote_code: bool):
    kw = src.pretrained_kwargs(trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(src.path, **kw)
        tokenizer = AutoTokenizer.from_pretrained(src.path, **kw)
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFound("model", f"cannot load {name!r} from {src.path}: {first_line(e)}") from None
    arch = ARCHITECTURES.get(config.model_type)
    try:
        n_layers = (arch.n_layers if arch else default_n_layers)(config)
    except AttributeError:
        n_layers = 0
    return config, tokenizer, n_layers


def peek_subject(name: str, *, revision: str | None = None, trust_remote_code: bool = False) -> SubjectShape:
    """Config and tokenizer of ``name`` (no weights loaded); ``ModelNotFound`` as ``load_subject_model``."""
    src = resolve_model(name, revision=revision, trust_remote_code=trust_remote_code)
    config, tokenizer, n_layers = _config_and_tokenizer(name, src, trust_remote_code)
    return SubjectShape(tokenizer=tokenizer, model_id=name if src.kind == "local" else src.model_id,
                        model_type=config.model_type, n_layers=n_layers, config=config)


def load_subject_model(name: str, *, revision: str | None = None, device: str = "auto",
                       trust_remote_code: bool = False, cache_dir: str | None = None,
                       local_files_only: bool | None = None,
                       dtype: torch.dtype | None = None) -> SubjectModel:
    """Load ``name`` (packaged alias, local folder or HF id) as a base model in eval mode.

    ``dtype`` defaults to float32. ``trust_remote_code`` is passed to transformers as given.
    """
    dev = resolve_device(device)
    src = resolve_model(name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                        trust_remote_code=trust_remote_code)
    config, tokenizer, n_layers = _config_and_tokenizer(name, src, trust_remote_code)
    try:
        model = AutoModel.from_pretrained(src.path, dtype=dtype or torch.float32,
                                          **src.pretrained_kwargs(trust_remote_code))
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFound("model", f"cannot load {name!r} from {src.path}: {first_line(e)}") from None
    model.to(dev).eval()
    _pad_right(tokenizer)
    return SubjectModel(  # a local folder is recorded as named; only a Hub snapshot has a revision
        model=model, tokenizer=tokenizer, model_id=name if src.kind == "local" else src.model_id,
        revision=src.revision if src.kind == "hub" else None, weight_sha256=src.weight_sha256,
        model_type=config.model_type,
        n_layers=n_layers, path=src.path, device=dev,
    )


def state_sha256(model: torch.nn.Module) -> str:
    """sha256 over a model's parameters and buffers (names, dtypes, shapes and bytes, sorted by name):
    the weight hash of a model that has no weight files (a random initialisation)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def random_init_subject(name: str, *, revision: str | None = None, seed: int = 0, device: str = "auto",
                        trust_remote_code: bool = False, dtype: torch.dtype | None = None) -> SubjectModel:
    """``name``'s architecture (its config at ``revision``) with freshly initialised weights: the
    random-initialisation baseline of a sweep. The weights depend only on the config, ``seed`` and
    the torch version; their hash (``state_sha256``) keys the responses cache like a file hash."""
    dev = resolve_device(device)
    src = resolve_model(name, revision=revision, trust_remote_code=trust_remote_code)
    kw = src.pretrained_kwargs(trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(src.path, **kw)
        tokenizer = AutoTokenizer.from_pretrained(src.path, **kw)
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFound("model", f"cannot load the config of {name!r} from {src.path}: {first_line(e)}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(config, dtype=dtype or torch.float32,
                                      trust_remote_code=trust_remote_code)
    model.to(dev).eval()
    _pad_right(tokenizer)
    arch = ARCHITECTURES.get(config.model_type)
    n_layers = (arch.n_layers if arch else default_n_layers)(config)
    label = name if src.kind == "local" else src.model_id
    return SubjectModel(
        model=model, tokenizer=tokenizer, model_id=f"{label} (random init, seed {seed})", revision=None,
        weight_sha256=state_sha256(model), model_type=config.model_type, n_layers=n_layers, path=src.path,
        device=dev,
    )
