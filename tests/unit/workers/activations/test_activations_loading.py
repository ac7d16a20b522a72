"""Loading subject models: local folders, fake Hugging Face cache + revisions, errors, hashing."""

from __future__ import annotations

import hashlib
import inspect
import time

import numpy as np
import pytest
import torch

from neuroscribe.errors import InvalidInput, ModelNotFound
from neuroscribe.workers.activations import capture_responses, load_subject_model
from neuroscribe.workers.models import hashing
from neuroscribe.workers.activations import loading
from tiny_models import make_fake_hub_cache, make_tiny_model, tiny_model_dir, tiny_subject

SENTS = ["the cat is good", "my phone broke after a week", "dog"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A fake HF cache with org/tiny-neox at revisions step1 and step1000 (different weights)."""
    root = tmp_path_factory.mktemp("hub")
    src1 = make_tiny_model("gpt_neox", root / "src1", seed=1)
    src2 = make_tiny_model("gpt_neox", root / "src1000", seed=2)
    commits = make_fake_hub_cache(root / "cache", "org/tiny-neox", {"step1": src1, "step1000": src2, "main": src2})
    return root / "cache", commits


def test_local_folder_loads(tmp_path):
    s = tiny_subject("gpt2")
    assert s.model_type == "gpt2" and s.n_layers == 2
    assert s.model_id == str(tiny_model_dir("gpt2")) and s.revision is None
    assert s.path == tiny_model_dir("gpt2").resolve()
    assert s.device.type == "cpu" and not s.model.training
    assert not hasattr(s.model, "lm_head")  # the base model
    assert next(s.model.parameters()).dtype.is_floating_point


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "llama"])
def test_pad_token_set_for_decoders_and_right_padding(arch):
    tok = tiny_subject(arch).tokenizer
    assert tok.pad_token == tok.eos_token and tok.padding_side == "right"


def test_weight_sha256_is_the_file_hash():
    s = tiny_subject("bert")
    data = (tiny_model_dir("bert") / "model.safetensors").read_bytes()
    assert s.weight_sha256 == hashlib.sha256(data).hexdigest()


def test_revisions_from_fake_hub_cache(hub):
    cache, commits = hub
    a = load_subject_model("org/tiny-neox", revision="step1", cache_dir=str(cache), local_files_only=True,
                           device="cpu")
    b = load_subject_model("org/tiny-neox", revision="step1000", cache_dir=str(cache), local_files_only=True,
                           device="cpu")
    default = load_subject_model("org/tiny-neox", cache_dir=str(cache), local_files_only=True, device="cpu")
    assert a.model_id == b.model_id == "org/tiny-neox"
    assert (a.revision, b.revision, default.revision) == (commits["step1"], commits["step1000"], commits["main"])
    assert a.weight_sha256 != b.weight_sha256 == default.weight_sha256
    ra = capture_responses(a, SENTS, progress=False)
    rb = capture_responses(b, SENTS, progress=False)
    assert ra.meta.revision == commits["step1"] and ra.meta.weight_sha256 == a.weight_sha256
    assert not np.allclose(ra.arrays[0], rb.arrays[0], atol=1e-2)
    by_commit = load_subject_model("org/tiny-neox", revision=commits["step1"], cache_dir=str(cache),
                                   local_files_only=True, device="cpu")
    assert by_commit.weight_sha256 == a.weight_sha256


def test_unknown_revision(hub):
    cache, _ = hub
    with pytest.raises(ModelNotFound) as e:
        load_subject_model("org/tiny-neox", revision="step999", cache_dir=str(cache), local_files_only=True)
    assert e.value.field == "revision"
    assert "step999" in str(e.value) and "step1000" in str(e.value)  # names what is cached
    assert "\n" not in str(e.value)


def test_unknown_model_name(tmp_path):
    with pytest.raises(ModelNotFound) as e:
        load_subject_model("no-such-org/no-such-model", cache_dir=str(tmp_path), local_files_only=True)
    assert e.value.field == "model" and "no-such-org/no-such-model" in str(e.value)
    assert "\n" not in str(e.value)


def test_offline_env_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(ModelNotFound, match="offline"):
        load_subject_model("no-such-org/no-such-model", cache_dir=str(tmp_path))
    assert time.perf_counter() - t < 5


@pytest.mark.parametrize("name", ["/no/such/folder", "./nope", "a/b/c"])
def test_missing_local_path(name):
    with pytest.raises(ModelNotFound) as e:
        load_subject_model(name)
    assert e.value.field == "model" and name in str(e.value)


def test_revision_with_local_folder_is_refused():
    with pytest.raises(ModelNotFound) as e:
        load_subject_model(str(tiny_model_dir("bert")), revision="step1")
    assert e.value.field == "revision"


def test_folder_without_model_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFound) as e:
        load_subject_model(str(tmp_path))
    assert e.value.field == "model" and "\n" not in str(e.value)


def test_trust_remote_code_defaults_to_false_and_is_passed(monkeypatch):
    assert inspect.signature(load_subject_model).parameters["trust_remote_code"].default is False
    seen = []
    real = loading.AutoModel.from_pretrained

    class Spy:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            seen.append(kwargs.get("trust_remote_code"))
            return real(*args, **kwargs)

    monkeypatch.setattr(loading, "AutoModel", Spy)
    load_subject_model(str(tiny_model_dir("bert")), device="cpu")
    load_subject_model(str(tiny_model_dir("bert")), device="cpu", trust_remote_code=True)
    assert seen == [False, True]


def test_weight_hash_persistent_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "_store", [None])  # the process-wide store, restored afterwards
    hashing.set_store(tmp_path / "cache")  # as service.runtime.configure does from the settings
    monkeypatch.setattr(hashing, "PERSIST_MIN_BYTES", 0)
    monkeypatch.setattr(hashing, "_memo", {})
    folder = make_tiny_model("gpt2", tmp_path / "m", seed=3)
    digest = hashing.weight_sha256(folder)
    assert digest == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert digest in (tmp_path / "cache" / "weight_sha256.json").read_text()
    # a new process (empty memo) is served from the persistent cache: plant a marker there
    store = tmp_path / "cache" / "weight_sha256.json"
    store.write_text(store.read_text().replace(digest, "f" * 64))
    monkeypatch.setattr(hashing, "_memo", {})
    assert hashing.weight_sha256(folder) == "f" * 64
    (folder / "model.safetensors").write_bytes(b"changed")  # new size/mtime: hashed again
    assert hashing.weight_sha256(folder) == hashlib.sha256(b"changed").hexdigest()


def test_packaged_minilm_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    s = load_subject_model("minilm", device="cpu")
    assert s.model_type == "bert" and s.n_layers == 6
    assert s.model_id == "sentence-transformers/all-MiniLM-L6-v2 (packaged:minilm)"
    r = capture_responses(s, ["The battery lasts all day.", "Terrible sound."], layers=[0, 5], progress=False)
    assert r.meta.units_per_layer == 1536 and r.arrays[5].shape == (2, 1536)
    assert len(s.weight_sha256) == 64


@pytest.mark.parametrize("device", ["tpu9", "cuda:0"])
def test_bad_device(device):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(InvalidInput) as e:
        load_subject_model(str(tiny_model_dir("bert")), device=device)
    assert e.value.field == "device"
