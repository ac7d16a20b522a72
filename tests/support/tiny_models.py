"""Tiny random models for tests: no network, a fraction of a second each.

    from tiny_models import make_tiny_model, tiny_model_dir, tiny_subject, make_fake_hub_cache

``make_tiny_model(arch, path, seed=0)``  build and save a random model (hidden 32, 2 layers,
    intermediate 37, 4 heads) with a word-level tokenizer over ``VOCAB``; arch in ``TINY_ARCHS``.
    BERT is saved as ``BertForMaskedLM``, the decoders as ``*ForCausalLM`` (so heads are there for
    tests that need the model's output); ``AutoModel`` loads the base model from either.
    Tokenizers: BERT adds [CLS] ... [SEP] and pads with [PAD]; llama adds a BOS ``<s>`` (eos
    ``</s>``, no pad token); gpt2 / gpt_neox add nothing (``<|endoftext|>`` is bos/eos, no pad).
``tiny_model_dir(arch, seed=0)``  the same, built once per process in a temporary folder.
``tiny_subject(arch, seed=0)``  ``load_subject_model`` of it, cached per process: do not modify it.
``make_fake_hub_cache(cache_dir, repo_id, {revision: folder})``  lay out a Hugging Face cache so
    ``load_subject_model(repo_id, revision=..., cache_dir=cache_dir, local_files_only=True)``
    works offline; returns ``{revision: commit_hash}``.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

import torch

__all__ = ["TINY_ARCHS", "VOCAB", "make_tiny_model", "make_planted_neox", "tiny_model_dir", "tiny_subject",
           "make_fake_hub_cache", "capture_site"]

TINY_ARCHS = ("bert", "gpt_neox", "gpt2", "llama")

_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<|endoftext|>"]
_WORDS = """the a an this that my your cat dog bus guitar phone battery screen case headset sound
quality price product is was are be very really not so too good great bad poor excellent terrible
love like hate works broke after before day week month and but or with for of to in on it i you
we they . , ! ?""".split()
VOCAB: dict[str, int] = {w: i for i, w in enumerate(_SPECIALS + _WORDS)}

_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
              max_position_embeddings=64, vocab_size=len(VOCAB), initializer_range=0.3)


def _config(arch: str):
    from transformers import BertConfig, GPT2Config, GPTNeoXConfig, LlamaConfig

    eot, bos, eos = VOCAB["<|endoftext|>"], VOCAB["<s>"], VOCAB["</s>"]
    if arch == "bert":
        return BertConfig(**_SMALL, pad_token_id=VOCAB["[PAD]"])
    if arch == "gpt_neox":
        return GPTNeoXConfig(**_SMALL, bos_token_id=eot, eos_token_id=eot)
    if arch == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_inner=37, n_positions=64, vocab_size=len(VOCAB),
                          initializer_range=0.3, bos_token_id=eot, eos_token_id=eot)
    if arch == "llama":
        return LlamaConfig(**_SMALL, num_key_value_heads=2, bos_token_id=bos, eos_token_id=eos)
    raise ValueError(f"unknown tiny arch {arch!r}; choose from {TINY_ARCHS}")


def _tokenizer(arch: str):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if arch == "bert":
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])])
        kw = dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    elif arch == "llama":
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", VOCAB["<s>"])])
        kw = dict(unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    else:
        kw = dict(unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    return PreTrainedTokenizerFast(tokenizer_object=tk, model_max_length=64, **kw)


def make_tiny_model(arch: str, path: Path, *, seed: int = 0) -> Path:
    """Build a random tiny ``arch`` model + tokenizer and save both into ``path``."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    path = Path(path)
    config = _config(arch)
    torch.manual_seed(seed)
    auto = AutoModelForMaskedLM if arch == "bert" else AutoModelForCausalLM
    model = auto.from_config(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    _tokenizer(arch).save_pretrained(path)
    return path


_ROOT: Path | None = None
_DIRS: dict[tuple[str, int], Path] = {}
_SUBJECTS: dict[tuple[str, int], object] = {}


def make_planted_neox(path: Path, *, word: str = "cat", unit: int = 5, seed: int = 0) -> Path:
    """A tiny GPT-NeoX whose layer-0 MLP unit ``unit`` fires (~40) on the token ``word`` and stays ~0
    elsewhere: the embedding of ``word`` alone has a large coordinate 0, which the unit reads."""
    from transformers import AutoModelForCausalLM

    make_tiny_model("gpt_neox", path, seed=seed)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        emb = model.gpt_neox.embed_in.weight
        emb[:, 0] = 0.0
        emb[VOCAB[word], 0] = 20.0
        mlp = model.gpt_neox.layers[0].mlp.dense_h_to_4h
        mlp.weight[unit] = 0.0
        mlp.weight[unit, 0] = 10.0
        mlp.bias[unit] = -10.0
    model.save_pretrained(path)
    return path


def tiny_model_dir(arch: str, seed: int = 0) -> Path:
    """``make_tiny_model`` built once per process (in a temporary folder removed at exit)."""
    global _ROOT
    if (arch, seed) not in _DIRS:
        if _ROOT is None:
            _ROOT = Path(tempfile.mkdtemp(prefix="neuroscribe-tiny-"))
            atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
        _DIRS[arch, seed] = make_tiny_model(arch, _ROOT / f"{arch}-{seed}", seed=seed)
    return _DIRS[arch, seed]


def tiny_subject(arch: str, seed: int = 0):
    """The tiny model loaded with ``load_subject_model`` on CPU, cached per process (shared: don't modify)."""
    from neuroscribe.workers.activations import load_subject_model

    if (arch, seed) not in _SUBJECTS:
        _SUBJECTS[arch, seed] = load_subject_model(str(tiny_model_dir(arch, seed)), device="cpu")
    return _SUBJECTS[arch, seed]


def make_fake_hub_cache(cache_dir: Path, repo_id: str, revisions: dict[str, Path]) -> dict[str, str]:
    """A Hugging Face cache layout: ``models--org--name/{refs/<rev>, snapshots/<commit>/...}``."""
    repo = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    commits = {}
    for rev, folder in revisions.items():
        commit = hashlib.sha1(f"{repo_id}@{rev}".encode()).hexdigest()
        snap = repo / "snapshots" / commit
        if not snap.exists():
            shutil.copytree(folder, snap)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / rev).write_text(commit)
        commits[rev] = commit
    return commits


def capture_site(model, arch: str, site_name: str, layers, **inputs):
    """The hook site's (B, T, U) tensor per layer, and the logits, in one forward pass of ``model``
    (a model with a head); for tests of interventions."""
    from neuroscribe.workers.activations.sites import get_site

    site, seen, handles = get_site(arch, site_name), {}, []
    for layer in layers:
        mod = model.base_model.get_submodule(site.module_path(layer))
        if site.hook == "input":
            handles.append(mod.register_forward_pre_hook(lambda m, a, L=layer: seen.__setitem__(L, a[0].clone())))
        else:
            handles.append(mod.register_forward_hook(
                lambda m, a, o, L=layer: seen.__setitem__(L, (o[0] if isinstance(o, tuple) else o).clone())))
    try:
        with torch.inference_mode():
            logits = model(**inputs).logits
    finally:
        for h in handles:
            h.remove()
    return seen, logits
