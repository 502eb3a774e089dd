"""import_model: every supported checkpoint layout reproduces the source model's embeddings."""

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from _finetune_fixtures import _one_torch_thread, register_tiny_arch  # noqa: F401
from overspec.errors import UserError
from overspec.models.checkpoint import load_model
from overspec.models.factory import create_model
from overspec.models.heads import attack_scores, head_from_card
from overspec.models.importing import PUBLISHED_PREPROCESSING, import_model
from overspec.models.lora import LoRAConfig, apply_lora


@pytest.fixture
def source():
    return create_model(register_tiny_arch(), seed=11).eval()


@pytest.fixture
def probe():
    gen = torch.Generator().manual_seed(4)
    return torch.randn(5, 3, 16, 16, generator=gen), torch.randint(0, 64, (2, 8), generator=gen)


def _embeddings(model, probe):
    images, tokens = probe
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def _assert_same(imported_path: Path, reference, probe, exact=True):
    loaded = load_model(imported_path)
    for got, want in zip(_embeddings(loaded.model, probe), reference, strict=True):
        assert torch.equal(got, want) if exact else torch.allclose(got, want, atol=1e-5)
    return loaded


def test_open_clip_training_checkpoint(source, probe, tmp_path):
    """open_clip's own training checkpoints: {'epoch', 'name', 'state_dict' with DDP 'module.' prefix}."""
    ckpt = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "name": "run", "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, ckpt)
    card = import_model(ckpt, register_tiny_arch(), tmp_path / "m.safetensors")
    assert card["import_layout"] == "open_clip" and card["source"]["name"] == "epoch_1.pt"
    _assert_same(tmp_path / "m.safetensors", _embeddings(source, probe), probe)


def test_full_state_dict_safetensors_and_torch(source, probe, tmp_path):
    reference = _embeddings(source, probe)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "sd.safetensors"))
    torch.save(source.state_dict(), tmp_path / "sd.pth")
    for name in ("sd.safetensors", "sd.pth"):
        import_model(tmp_path / name, register_tiny_arch(), tmp_path / f"{name}.out.safetensors")
        _assert_same(tmp_path / f"{name}.out.safetensors", reference, probe)


def _published_lora_state(model, lora_factors, targets):
    """The backbone state dict of FRoundation/MADation/FoundPAD after PlainMultiheadAttentionLoRA wrapping."""
    state = {}
    e = model.visual.transformer.width
    for key, value in model.state_dict().items():
        if key.startswith("visual.transformer.resblocks.") and ".attn." in key:
            prefix, leaf = key.rsplit(".attn.", 1)
            attn = f"{prefix}.attn"
            if leaf in ("in_proj_weight", "in_proj_bias"):
                kind = "weight" if leaf == "in_proj_weight" else "bias"
                for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
                    state[f"{attn}.{name}.{kind}"] = value[i * e:(i + 1) * e].clone()
            else:  # out_proj.weight / out_proj.bias -> proj.*
                state[f"{attn}.proj.{leaf.split('.')[-1]}"] = value.clone()
            continue
        state[key] = value.clone()
    for block, factors in lora_factors.items():
        for t, (a, b) in factors.items():
            name = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "proj"}[t]
            state[f"visual.transformer.resblocks.{block}.attn.{name}.w_lora_A"] = a
            state[f"visual.transformer.resblocks.{block}.attn.{name}.w_lora_B"] = b
    return state


def test_published_lora_layout_matches_overspec_lora(source, probe, tmp_path):
    r, alpha = 4, 32.0
    gen = torch.Generator().manual_seed(9)
    factors = {i: {t: (torch.randn(r, 32, generator=gen) * 0.1, torch.randn(32, r, generator=gen) * 0.1)
                   for t in ("q", "v")} for i in range(2)}
    torch.save(_published_lora_state(source, factors, ("q", "v")), tmp_path / "40_backbone.pth")
    header = {"linear.weight": torch.randn(2, 24, generator=gen), "linear.bias": torch.randn(2, generator=gen)}
    torch.save(header, tmp_path / "40_header.pth")

    # reference 1: overspec's LoRA with the same factors, unmerged
    reference_model = create_model(register_tiny_arch(), seed=11)
    wrappers = apply_lora(reference_model, LoRAConfig(r=r, alpha=alpha, rslora=True))
    with torch.no_grad():
        for i, w in enumerate(wrappers):
            for t in ("q", "v"):
                w.lora_A[t].copy_(factors[i][t][0])
                w.lora_B[t].copy_(factors[i][t][1])
    reference_model.eval()
    reference = _embeddings(reference_model, probe)
    # reference 2: the merge done by hand, W + alpha / sqrt(r) * B @ A on the q rows of block 0
    by_hand = source.visual.transformer.resblocks[0].attn.in_proj_weight[:32] + alpha / math.sqrt(r) * factors[0]["q"][1] @ factors[0]["q"][0]

    card = import_model(tmp_path / "40_backbone.pth", register_tiny_arch(), tmp_path / "m.safetensors",
                        lora_alpha=alpha, head_source=tmp_path / "40_header.pth", head={"type": "binary"},
                        preprocessing="madation")
    assert card["import_layout"] == "published_lora" and card["lora"]["targets"] == ["q", "v"]
    assert card["lora"]["scaling"] == [pytest.approx(16.0)]
    assert card["preprocessing"]["colour_order"] == "BGR" and card["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    loaded = _assert_same(tmp_path / "m.safetensors", reference, probe, exact=False)
    assert torch.allclose(loaded.model.visual.transformer.resblocks[0].attn.in_proj_weight[:32], by_hand, atol=1e-6)
    head = head_from_card(loaded.card["head"], loaded.head)
    emb = loaded.model.encode_image(probe[0])
    logits = torch.nn.functional.normalize(emb, dim=1) @ header["linear.weight"].T + header["linear.bias"]
    assert torch.allclose(attack_scores(head, emb), logits.softmax(1)[:, 1], atol=1e-6)


def test_published_cosface_header_is_transposed(source, tmp_path):
    torch.save(source.state_dict(), tmp_path / "sd.pth")
    kernel = torch.randn(24, 7)  # published CosFace kernel [D, C]
    torch.save({"kernel": kernel}, tmp_path / "header.pth")
    import_model(tmp_path / "sd.pth", register_tiny_arch(), tmp_path / "m.safetensors", head_source=tmp_path / "header.pth",
                 head={"type": "cosface", "s": 64, "m": 0.3})
    loaded = load_model(tmp_path / "m.safetensors")
    assert torch.equal(loaded.head["weight"], kernel.T) and loaded.card["head"]["num_classes"] == 7


def test_lora_alpha_is_required_for_published_layout(source, tmp_path):
    factors = {0: {"q": (torch.zeros(2, 32), torch.zeros(32, 2))}}
    torch.save(_published_lora_state(source, factors, ("q",)), tmp_path / "b.pth")
    with pytest.raises(UserError, match="set lora_alpha"):
        import_model(tmp_path / "b.pth", register_tiny_arch(), tmp_path / "m.safetensors")


def test_shape_mismatch_names_the_first_tensor(source, tmp_path):
    state = source.state_dict()
    state["visual.transformer.resblocks.1.mlp.c_fc.weight"] = torch.zeros(10, 32)
    state["visual.ln_post.weight"] = torch.zeros(5)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"tensor visual\.transformer\.resblocks\.1\.mlp\.c_fc\.weight has shape \(10, 32\)"):
        import_model(tmp_path / "bad.pth", register_tiny_arch(), tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    del state["visual.transformer.resblocks.1.mlp.c_fc.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(UserError, match=r"no tensor visual\.transformer\.resblocks\.1\.mlp\.c_fc\.weight"):
        import_model(tmp_path / "missing.pth", register_tiny_arch(), tmp_path / "m.safetensors")


def test_arbitrary_pickles_are_refused(source, tmp_path):
    torch.save({"state_dict": source.state_dict(), "where": Path("/etc")}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="weights_only=True"):
        import_model(tmp_path / "evil.pt", register_tiny_arch(), tmp_path / "m.safetensors")


def test_tag_and_preprocessing_errors(tmp_path):
    with pytest.raises(UserError, match="neither a file nor an open_clip pretrained tag"):
        import_model("openai", register_tiny_arch(), tmp_path / "m.safetensors")
    with pytest.raises(UserError, match="declare architecture ViT-B-16-quickgelu"):
        import_model("openai", "ViT-B-16", tmp_path / "m.safetensors")
    with pytest.raises(UserError, match="does not exist"):
        import_model(tmp_path / "nope.pth", register_tiny_arch(), tmp_path / "m.safetensors")
    assert set(PUBLISHED_PREPROCESSING) == {"froundation", "madation", "foundpad"}
