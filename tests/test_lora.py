"""LoRA on open_clip's fused attention: exactness, merging, freezing, scaling."""

import math

import pytest
import torch

from _finetune_fixtures import _one_torch_thread, register_tiny_arch  # noqa: F401 (autouse fixture)
from overspec.errors import UserError
from overspec.models.factory import create_model
from overspec.models.lora import LoRAAttention, LoRAConfig, apply_lora, lora_parameters, merge_lora


@pytest.fixture
def base():
    return create_model(register_tiny_arch(), seed=1).eval()


@pytest.fixture
def images():
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))


def _randomise_b(model, seed=3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def test_scaling_rslora_and_classic():
    assert LoRAConfig(r=16, alpha=32, rslora=True).scaling == pytest.approx(8.0)
    assert LoRAConfig(r=16, alpha=32, rslora=False).scaling == pytest.approx(2.0)
    assert LoRAConfig(r=2, alpha=4).scaling == pytest.approx(4 / math.sqrt(2))


def test_zero_b_leaves_outputs_bit_identical(base, images):
    before = base.encode_image(images)
    apply_lora(base, LoRAConfig(r=4, alpha=8, dropout=0.3))
    base.eval()
    assert torch.equal(base.encode_image(images), before)
    # training mode takes the explicit path (dropout on the LoRA branch only): same values
    base.train()
    assert torch.allclose(base.encode_image(images), before, atol=1e-6)


def test_merged_weights_match_unmerged_adapter(base, images):
    reference_keys = {k: v.shape for k, v in base.state_dict().items()}
    text_before = {k: v.clone() for k, v in base.state_dict().items() if not k.startswith("visual.")}
    apply_lora(base, LoRAConfig(r=4, alpha=8, dropout=0.0))
    _randomise_b(base)
    base.eval()
    with torch.no_grad():
        unmerged = base.encode_image(images)
    baseline = create_model(register_tiny_arch(), seed=1).eval()
    assert not torch.allclose(unmerged, baseline.encode_image(images), atol=1e-3)  # LoRA really acts
    merge_lora(base)
    assert not any(isinstance(m, LoRAAttention) for m in base.modules())
    assert {k: v.shape for k, v in base.state_dict().items()} == reference_keys
    with torch.no_grad():
        merged = base.encode_image(images)
    assert torch.allclose(merged, unmerged, atol=1e-6)
    for k, v in text_before.items():
        assert torch.equal(base.state_dict()[k], v), k


def test_only_q_and_v_rows_change_on_merge(base):
    w0 = {k: v.clone() for k, v in base.state_dict().items()}
    apply_lora(base, LoRAConfig(r=2, alpha=2, targets=("q", "v")))
    _randomise_b(base)
    merge_lora(base)
    e = base.visual.transformer.width
    for i in range(len(base.visual.transformer.resblocks)):
        key = f"visual.transformer.resblocks.{i}.attn.in_proj_weight"
        new, old = base.state_dict()[key], w0[key]
        assert not torch.equal(new[:e], old[:e])  # q
        assert torch.equal(new[e:2 * e], old[e:2 * e])  # k untouched
        assert not torch.equal(new[2 * e:], old[2 * e:])  # v
        out_key = f"visual.transformer.resblocks.{i}.attn.out_proj.weight"
        assert torch.equal(base.state_dict()[out_key], w0[out_key])


def test_merge_equals_hand_computed_delta(base):
    w0 = base.visual.transformer.resblocks[0].attn.in_proj_weight.detach().clone()
    wrappers = apply_lora(base, LoRAConfig(r=2, alpha=3, rslora=True, targets=("v",), blocks=(0,)))
    assert len(wrappers) == 1
    _randomise_b(base)
    a, b = wrappers[0].lora_A["v"].detach(), wrappers[0].lora_B["v"].detach()
    merge_lora(base)
    e = w0.shape[1]
    expected = w0[2 * e:] + (b @ a) * 3 / math.sqrt(2)
    assert torch.allclose(base.visual.transformer.resblocks[0].attn.in_proj_weight[2 * e:], expected, atol=1e-7)


def test_explicit_path_equals_merged_path(base, images):
    apply_lora(base, LoRAConfig(r=4, alpha=4, dropout=0.5, targets=("q", "v", "o")))
    _randomise_b(base)
    base.eval()
    with torch.no_grad():
        eval_out = base.encode_image(images)
        for m in base.modules():
            if isinstance(m, LoRAAttention):
                m.lora_dropout.p = 0.0  # still an nn.Dropout, so training mode takes the explicit path
        base.train()
        train_out = base.encode_image(images)
    assert torch.allclose(train_out, eval_out, atol=1e-5)


def test_dropout_acts_only_in_training(base, images):
    apply_lora(base, LoRAConfig(r=4, alpha=4, dropout=0.5))
    _randomise_b(base)
    base.train()
    torch.manual_seed(0)
    a = base.encode_image(images)
    torch.manual_seed(1)
    b = base.encode_image(images)
    assert not torch.allclose(a, b)
    base.eval()
    assert torch.equal(base.encode_image(images), base.encode_image(images))


def test_only_lora_trains(base, images):
    apply_lora(base, LoRAConfig(r=2, alpha=2))
    trainable = [n for n, p in base.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert all(n.startswith("visual.") for n in trainable)
    base.encode_image(images).sum().backward()
    assert all(p.grad is None for n, p in base.named_parameters() if not p.requires_grad)
    # B starts at zero, so only B receives gradient at the first step
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in base.named_parameters() if ".lora_B." in n)


def test_bad_settings_raise_user_errors(base):
    with pytest.raises(UserError, match="targets"):
        LoRAConfig(targets=("x",))
    with pytest.raises(UserError, match="rank"):
        LoRAConfig(r=0)
    with pytest.raises(UserError, match="block index 7"):
        apply_lora(base, LoRAConfig(blocks=(7,)))
