"""The site registry: every registered architecture's module paths exist in transformers' models."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel

from neuroscribe.errors import SiteNotFound
from neuroscribe.workers.activations import get_site, list_sites
from neuroscribe.workers.activations.hooks import SiteHooks
from neuroscribe.workers.activations.sites import ARCHITECTURES

_TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=37, vocab_size=64, max_position_embeddings=64, head_dim=8)


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_every_registered_site_hooks_the_right_shape(model_type):
    config = AutoConfig.for_model(model_type, **_TINY)
    torch.manual_seed(0)
    model = AutoModel.from_config(config).eval()
    arch = ARCHITECTURES[model_type]
    n = arch.n_layers(config)
    assert n == len(model.base_model.get_submodule(arch.blocks)) == 3
    ids = torch.randint(5, 60, (2, 6))
    for name in list_sites(model_type):
        site = get_site(model_type, name)
        got = {}
        with torch.inference_mode(), SiteHooks(model, site, range(n), lambda i, v: got.__setitem__(i, v),
                                               stop_early=False) as hooks:
            hooks.run(input_ids=ids, attention_mask=torch.ones_like(ids))
        assert sorted(got) == [0, 1, 2]
        units = site.units(config)
        assert all(v.shape == (2, 6, units) for v in got.values()), (name, [v.shape for v in got.values()])
        assert units == (37 if name == "mlp_post" and model_type != "gpt2" else
                         128 if name == "mlp_post" else 32)  # gpt2: n_inner unset -> 4 * n_embd
        assert not torch.equal(got[0], got[1])


def test_required_architectures_and_sites():
    for mt in ("bert", "roberta", "xlm-roberta", "gpt_neox", "gpt2", "llama", "mistral", "qwen2"):
        assert list_sites(mt) == ["mlp_post", "residual"]
    assert get_site("bert", "mlp_post").module_path(3) == "encoder.layer.3.intermediate"
    assert get_site("gpt_neox", "mlp_post").module_path(0) == "layers.0.mlp.act"
    assert get_site("gpt2", "mlp_post").module_path(1) == "h.1.mlp.act"
    llama = get_site("llama", "mlp_post")
    assert (llama.module_path(2), llama.hook) == ("layers.2.mlp.down_proj", "input")
    assert get_site("gpt2", "residual").module_path(0) == "h.0"


def test_unknown_site_and_architecture():
    with pytest.raises(SiteNotFound, match="architecture gpt2 has sites: mlp_post, residual"):
        get_site("gpt2", "attention")
    with pytest.raises(SiteNotFound, match="'t5'.*supported: .*bert"):
        list_sites("t5")


def test_stop_early_skips_later_layers():
    config = AutoConfig.for_model("gpt2", **_TINY)
    model = AutoModel.from_config(config).eval()
    ran = []
    handle = model.h[2].register_forward_hook(lambda *a: ran.append(2))
    try:
        with torch.inference_mode(), SiteHooks(model, get_site("gpt2", "mlp_post"), [0, 1],
                                               lambda i, v: None) as hooks:
            hooks.run(input_ids=torch.ones(1, 4, dtype=torch.long))
    finally:
        handle.remove()
    assert ran == []
