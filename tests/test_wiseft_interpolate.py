"""WiSE-FT interpolation: exact end points, the midpoint by hand, the head kept, the card, stable bytes."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from _finetune_fixtures import _one_torch_thread, make_base_model  # noqa: F401 (autouse fixture)
from overspec.errors import UserError
from overspec.models.checkpoint import HEAD_PREFIX, load_model, read_card, save_model
from overspec.models.heads import BinaryHead, HeadConfig
from overspec.models.interpolate import interpolate_model, interpolate_state
from overspec.models.lora import LoRAConfig, apply_lora, lora_parameters, merge_lora
from overspec.provenance import sha256_file


@pytest.fixture(scope="module")
def parents(tmp_path_factory):
    """A baseline file and a LoRA fine-tune of it (random B, merged, binary head) as finetune_model writes it."""
    folder = tmp_path_factory.mktemp("wiseft")
    base = make_base_model(folder / "base.safetensors", seed=1)
    loaded = load_model(base)
    apply_lora(loaded.model, LoRAConfig(r=2, alpha=4))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in lora_parameters(loaded.model):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    merge_lora(loaded.model)
    torch.manual_seed(0)
    head = BinaryHead(int(loaded.model.visual.output_dim))
    card = dict(loaded.card, name="tiny-ft", head=HeadConfig(type="binary").to_card(head.linear.in_features, 2),
                base_model={"sha256": sha256_file(base), "name": "tiny-base"})
    finetuned = folder / "ft.safetensors"
    save_model(finetuned, loaded.model, card, head={"weight": head.linear.weight, "bias": head.linear.bias})
    return {"base": base, "ft": finetuned, "folder": folder}


def _tensors(path):
    return load_file(str(path))


def test_midpoint_by_hand_on_a_tiny_state_dict():
    base = {"w": torch.tensor([0.0, 2.0, -1.0]), "same": torch.tensor([3.0]), "ids": torch.tensor([1, 2])}
    tuned = {"w": torch.tensor([4.0, 6.0, 1.0]), "same": torch.tensor([3.0]), "ids": torch.tensor([1, 2])}
    half = interpolate_state(base, tuned, 0.5)
    assert torch.equal(half["w"], torch.tensor([2.0, 4.0, 0.0])) and half["w"].dtype == torch.float32
    quarter = interpolate_state(base, tuned, 0.25)
    assert torch.equal(quarter["w"], torch.tensor([1.0, 3.0, -0.5]))
    assert torch.equal(half["same"], base["same"]) and torch.equal(half["ids"], base["ids"])


def test_interpolation_refuses_mismatched_parents():
    with pytest.raises(UserError, match="different tensors"):
        interpolate_state({"a": torch.zeros(2)}, {"b": torch.zeros(2)}, 0.5)
    with pytest.raises(UserError, match="shape"):
        interpolate_state({"a": torch.zeros(2)}, {"a": torch.zeros(3)}, 0.5)
    with pytest.raises(UserError, match="Non-float"):
        interpolate_state({"a": torch.tensor([1])}, {"a": torch.tensor([2])}, 0.5)
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        interpolate_state({"a": torch.zeros(2)}, {"a": torch.zeros(2)}, 1.5)


def test_alpha_one_is_the_fine_tune_bit_for_bit(parents, tmp_path):
    out = tmp_path / "a1.safetensors"
    interpolate_model(parents["base"], parents["ft"], 1.0, out)
    got, want = _tensors(out), _tensors(parents["ft"])
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)


def test_alpha_zero_is_the_baseline_encoder_with_the_fine_tunes_head(parents, tmp_path):
    out = tmp_path / "a0.safetensors"
    interpolate_model(parents["base"], parents["ft"], 0.0, out)
    got, base, tuned = _tensors(out), _tensors(parents["base"]), _tensors(parents["ft"])
    weights = [k for k in got if not k.startswith(HEAD_PREFIX)]
    assert sorted(weights) == sorted(base) and all(torch.equal(got[k], base[k]) for k in weights)
    heads = [k for k in tuned if k.startswith(HEAD_PREFIX)]
    assert heads and all(torch.equal(got[k], tuned[k]) for k in heads)


def test_midpoint_model_halves_the_merged_delta_and_leaves_the_text_tower(parents, tmp_path):
    out = tmp_path / "a05.safetensors"
    interpolate_model(parents["base"], parents["ft"], 0.5, out)
    got, base, tuned = _tensors(out), _tensors(parents["base"]), _tensors(parents["ft"])
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all(k.startswith("visual.") and "in_proj_weight" in k for k in changed)  # LoRA on q/v
    for k in changed:
        torch.testing.assert_close(got[k], (base[k] + tuned[k]) / 2, rtol=0, atol=1e-6)
    assert all(torch.equal(got[k], base[k]) for k in base if k not in changed)  # text tower: baseline bytes
    assert torch.equal(got[HEAD_PREFIX + "weight"], tuned[HEAD_PREFIX + "weight"])
    assert load_model(out).model is not None  # loads strictly as its architecture


def test_card_records_both_parents_and_alpha(parents, tmp_path):
    out = tmp_path / "card.safetensors"
    interpolate_model(parents["base"], parents["ft"], 0.25, out, card_extra={"name": "tiny-ft-wise025"})
    card = read_card(out)
    assert card["wiseft"]["alpha"] == 0.25 and card["method"] == "wiseft" and card["name"] == "tiny-ft-wise025"
    assert card["wiseft"]["base_model"] == {"name": "tiny-base", "sha256": sha256_file(parents["base"])}
    assert card["wiseft"]["finetuned_model"] == {"name": "tiny-ft", "sha256": sha256_file(parents["ft"])}
    named = interpolate_model(parents["base"], parents["ft"], 0.25, out, base_name="b", finetuned_name="f",
                              base_digest=sha256_file(parents["base"]), finetuned_digest="2" * 64)  # digest files'
    assert named["wiseft"]["base_model"] == {"name": "b", "sha256": sha256_file(parents["base"])}
    assert named["wiseft"]["finetuned_model"] == {"name": "f", "sha256": "2" * 64}
    assert card["head"]["type"] == "binary" and card["preprocessing"] == read_card(parents["ft"])["preprocessing"]


def test_a_second_save_gives_identical_bytes(parents, tmp_path):
    first, second = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    interpolate_model(parents["base"], parents["ft"], 0.75, first)
    interpolate_model(parents["base"], parents["ft"], 0.75, second)
    assert first.read_bytes() == second.read_bytes()


def test_a_fine_tune_of_another_baseline_is_refused(parents, tmp_path):
    other = make_base_model(tmp_path / "other.safetensors", seed=5)
    with pytest.raises(UserError, match="fine-tuned from a model with sha256"):
        interpolate_model(other, parents["ft"], 0.5, tmp_path / "x.safetensors")
