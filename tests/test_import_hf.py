"""Hugging Face CLIPModel checkpoints and PEFT LoRA adapters: overspec's model equals transformers'
own (and PEFT's merge_and_unload) feature for feature; bad input stops with one sentence."""

from __future__ import annotations

import json
import pickle
import sys

import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("transformers")
pytest.importorskip("peft")

from _finetune_fixtures import _one_torch_thread  # noqa: F401,E402
from _hf_fixtures import (  # noqa: E402
    ATTENTION_AND_MLP, ODD_SHAPE, TOY_S_SHAPE, hf_clip, hf_features, peft_lora, probe_inputs, save_hf_clip)
from overspec.errors import UserError  # noqa: E402
from overspec.models.checkpoint import load_model, read_card  # noqa: E402
from overspec.models.factory import get_tokenizer  # noqa: E402
from overspec.models.importing import import_model  # noqa: E402

TOL = 1e-5


def _overspec_features(path, images, tokens):
    loaded = load_model(path)
    with torch.no_grad():
        return loaded.model.encode_image(images), loaded.model.encode_text(tokens)


def _max_difference(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_hf_checkpoint_gives_transformers_features(tmp_path, act):
    reference = save_hf_clip(tmp_path / "hf", ODD_SHAPE, act)
    card = import_model(tmp_path / "hf", None, tmp_path / "model.safetensors")
    arch = card["architecture"]["open_clip_model"]
    assert arch.startswith("hf-clip-") and card["architecture"]["model_config"]["quick_gelu"] == (act == "quick_gelu")
    assert card["import_layout"] == "transformers" and card["source"]["config"]["projection_dim"] == 24
    assert set(card["source"]["files"]) == {"model.safetensors"} and card["source"]["id"] == "hf"
    images, tokens = probe_inputs(get_tokenizer(arch))
    want = hf_features(reference, images, tokens)
    assert _max_difference(_overspec_features(tmp_path / "model.safetensors", images, tokens), want) <= TOL
    assert load_model(tmp_path / "model.safetensors").model.logit_scale.item() == pytest.approx(reference.logit_scale.item(), abs=0)
    # the check can fail: the other activation on the same weights gives other features
    other = hf_clip(ODD_SHAPE, "gelu" if act == "quick_gelu" else "quick_gelu")
    assert _max_difference(hf_features(other, images, tokens), want) > 1e-3


def test_matching_shape_maps_to_the_open_clip_architecture(tmp_path):
    save_hf_clip(tmp_path / "hf", TOY_S_SHAPE, "gelu")
    card = import_model(tmp_path / "hf", None, tmp_path / "a.safetensors")
    assert card["architecture"] == {"open_clip_model": "toy-clip-s"}
    import_model(tmp_path / "hf", "toy-clip-s", tmp_path / "b.safetensors")  # declared and found agree
    with pytest.raises(UserError, match=r"is a toy-clip-s CLIP .*not the declared architecture toy-clip-m"):
        import_model(tmp_path / "hf", "toy-clip-m", tmp_path / "c.safetensors")


def test_pytorch_model_bin_and_preprocessor_config(tmp_path):
    reference = hf_clip(ODD_SHAPE, "quick_gelu")
    folder = tmp_path / "hf"
    reference.save_pretrained(str(folder))
    (folder / "model.safetensors").unlink()
    torch.save(reference.state_dict(), folder / "pytorch_model.bin")  # the older save format, plain tensors
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "resample": 2}))
    card = import_model(folder, None, tmp_path / "m.safetensors")
    assert card["preprocessing"]["mean"] == [0.5, 0.5, 0.5] and card["preprocessing"]["interpolation"] == "bilinear"
    images, tokens = probe_inputs(get_tokenizer(card["architecture"]["open_clip_model"]))
    assert _max_difference(_overspec_features(tmp_path / "m.safetensors", images, tokens), hf_features(reference, images, tokens)) <= TOL


def test_hub_id_from_the_local_cache_offline(tmp_path, monkeypatch):
    """transformers:<org>/<repo> resolves to a snapshot in the Hugging Face cache layout, offline."""
    from huggingface_hub import constants

    commit = "0" * 40
    repo = tmp_path / "cache" / "models--someone--tiny-clip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    reference = save_hf_clip(repo / "snapshots" / commit, ODD_SHAPE, "gelu")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    card = import_model("transformers:someone/tiny-clip", None, tmp_path / "m.safetensors")
    images, tokens = probe_inputs(get_tokenizer(card["architecture"]["open_clip_model"]))
    assert _max_difference(_overspec_features(tmp_path / "m.safetensors", images, tokens), hf_features(reference, images, tokens)) <= TOL
    with pytest.raises(UserError, match="someone/absent is not in the local cache"):
        import_model("transformers:someone/absent", None, tmp_path / "n.safetensors")


@pytest.mark.parametrize(("rslora", "patterns"), [(True, {}), (False, {}),
                                                  (True, {"rank_pattern": {"fc1": 2}, "alpha_pattern": {"q_proj": 16}})])
def test_peft_adapter_merge_equals_merge_and_unload(tmp_path, rslora, patterns):
    base = save_hf_clip(tmp_path / "hf", ODD_SHAPE, "quick_gelu")
    targets = ATTENTION_AND_MLP + ["visual_projection", "text_projection"]
    wrapped = peft_lora(hf_clip(ODD_SHAPE, "quick_gelu"), tmp_path / "lora", targets, rslora=rslora, **patterns)
    merged = wrapped.merge_and_unload().eval()
    card = import_model(tmp_path / "hf", None, tmp_path / "m.safetensors", adapter=tmp_path / "lora")
    adapter = card["adapter"]
    assert adapter["r"] == ([2, 4] if patterns else [4]) and adapter["alpha"] == ([8.0, 16.0] if patterns else [8.0])
    assert adapter["use_rslora"] is rslora
    assert adapter["target_modules"] == sorted(targets) and adapter["modules_merged"] == 2 * 2 * 6 + 2
    assert card["lora_merged"] is True and len(adapter["sha256"]) == 64
    images, tokens = probe_inputs(get_tokenizer(card["architecture"]["open_clip_model"]))
    want = hf_features(merged, images, tokens)
    assert _max_difference(_overspec_features(tmp_path / "m.safetensors", images, tokens), want) <= TOL
    assert _max_difference(hf_features(base, images, tokens), want) > 1e-3  # the adapter changes the features


def test_peft_adapter_on_an_open_clip_base(tmp_path):
    """An adapter trained on an open_clip model (PEFT on its MLP Linear layers) merges under open_clip names."""
    from peft import LoraConfig, get_peft_model

    from overspec.models.factory import create_model

    source = create_model("toy-clip-s", seed=5).eval()
    torch.save(source.state_dict(), tmp_path / "base.pth")
    wrapped = get_peft_model(create_model("toy-clip-s", seed=5).eval(), LoraConfig(r=2, lora_alpha=4, target_modules=["c_fc", "c_proj"]))
    with torch.no_grad():
        for name, param in wrapped.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.1)
    wrapped.save_pretrained(str(tmp_path / "lora"))
    merged = wrapped.merge_and_unload().eval()
    import_model(tmp_path / "base.pth", "toy-clip-s", tmp_path / "m.safetensors", adapter=tmp_path / "lora")
    images, tokens = probe_inputs(get_tokenizer("toy-clip-s"))
    with torch.no_grad():
        want = merged.encode_image(images), merged.encode_text(tokens)
    assert _max_difference(_overspec_features(tmp_path / "m.safetensors", images, tokens), want) <= TOL


# ---------------------------------------------------------------------------------------------
# Bad input: one sentence each


def test_folder_that_is_not_a_clip_checkpoint(tmp_path):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(UserError, match=r"config.json describes a bert model, not a CLIPModel"):
        import_model(tmp_path / "bert", None, tmp_path / "m.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty is not a Hugging Face CLIP checkpoint, so its architecture cannot be read"):
        import_model(tmp_path / "empty", None, tmp_path / "m.safetensors")
    save_hf_clip(tmp_path / "noweights", ODD_SHAPE)
    (tmp_path / "noweights" / "model.safetensors").unlink()
    with pytest.raises(UserError, match=r"noweights has none of model.safetensors"):
        import_model(tmp_path / "noweights", None, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_adapter_for_another_base_names_the_module(tmp_path):
    save_hf_clip(tmp_path / "hf", ODD_SHAPE)
    peft_lora(hf_clip(TOY_S_SHAPE), tmp_path / "lora", ["fc1"])  # trained on a wider model
    with pytest.raises(UserError, match=r"module text_model\.encoder\.layers\.0\.mlp\.fc1 has shape \(256, 64\), the "
                                        r"base's transformer\.resblocks\.0\.mlp\.c_fc\.weight has \(64, 32\); it was made for another base"):
        import_model(tmp_path / "hf", None, tmp_path / "m.safetensors", adapter=tmp_path / "lora")
    peft_lora(hf_clip(ODD_SHAPE), tmp_path / "deep", ["fc1"])
    save_hf_clip(tmp_path / "shallow", {**ODD_SHAPE, "vision_config": {**ODD_SHAPE["vision_config"], "num_hidden_layers": 1}})
    with pytest.raises(UserError, match=r"vision_model\.encoder\.layers\.1\.mlp\.fc1 has no counterpart visual\.transformer\.resblocks\.1\.mlp\.c_fc\.weight"):
        import_model(tmp_path / "shallow", None, tmp_path / "m.safetensors", adapter=tmp_path / "deep")


def test_unmappable_modules_are_named(tmp_path):
    save_hf_clip(tmp_path / "hf", ODD_SHAPE)
    peft_lora(hf_clip(ODD_SHAPE), tmp_path / "conv", ["patch_embedding"])  # a Conv2d LoRA
    with pytest.raises(UserError, match=r"module vision_model\.embeddings\.patch_embedding has no pair of Linear LoRA factors"):
        import_model(tmp_path / "hf", None, tmp_path / "m.safetensors", adapter=tmp_path / "conv")
    peft_lora(hf_clip(ODD_SHAPE), tmp_path / "odd", ["fc1"])
    (tmp_path / "odd" / "adapter_model.safetensors").unlink()
    save_file({"base_model.model.vision_model.head.dense.lora_A.weight": torch.zeros(4, 48),
               "base_model.model.vision_model.head.dense.lora_B.weight": torch.zeros(48, 4)},
              str(tmp_path / "odd" / "adapter_model.safetensors"))
    with pytest.raises(UserError, match=r"targets module vision_model\.head\.dense, which overspec cannot map"):
        import_model(tmp_path / "hf", None, tmp_path / "m.safetensors", adapter=tmp_path / "odd")
    folder = tmp_path / "extra"
    reference = hf_clip(ODD_SHAPE)
    reference.save_pretrained(str(folder))
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    state["vision_model.head.probe.weight"] = torch.zeros(2, 48)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(UserError, match=r"has tensor vision_model\.head\.probe\.weight, which has no place in an open_clip CLIP model"):
        import_model(folder, None, tmp_path / "m.safetensors")


class _Payload:
    """Unpickling this would write a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_only_bin_is_refused_without_unpickling(tmp_path):
    folder = tmp_path / "hf"
    hf_clip(ODD_SHAPE).save_pretrained(str(folder))
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"weights": _Payload(marker)}, handle)
    with pytest.raises(UserError, match=r"pytorch_model\.bin cannot be read as plain tensors with torch\.load\(weights_only=True\)"):
        import_model(folder, None, tmp_path / "m.safetensors")
    assert not marker.exists() and not (tmp_path / "m.safetensors").exists()


def test_missing_extra_is_one_sentence(tmp_path, monkeypatch):
    save_hf_clip(tmp_path / "hf", ODD_SHAPE)
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now fails
    with pytest.raises(UserError, match=r"need the hf extra: pip install -e '\.\[hf\]'"):
        import_model(tmp_path / "hf", None, tmp_path / "m.safetensors")


def test_card_of_an_imported_custom_architecture_rebuilds_in_a_fresh_process(tmp_path):
    """The derived architecture travels in the card: load_model in a new process needs nothing else."""
    import subprocess

    save_hf_clip(tmp_path / "hf", ODD_SHAPE)
    import_model(tmp_path / "hf", None, tmp_path / "m.safetensors")
    arch = read_card(tmp_path / "m.safetensors")["architecture"]["open_clip_model"]
    code = ("from overspec.models.checkpoint import load_model; from overspec.models.factory import get_tokenizer; "
            f"m = load_model({str(tmp_path / 'm.safetensors')!r}); print(m.arch, get_tokenizer(m.arch)(['a']).shape[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [arch, "16"]


def test_folder_digest_follows_its_files_not_its_place(tmp_path):
    """Provenance records a checkpoint folder by the names and digests of its files."""
    import shutil

    from overspec.provenance import sha256_path

    save_hf_clip(tmp_path / "a", ODD_SHAPE)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert sha256_path(tmp_path / "a") == sha256_path(tmp_path / "b")
    (tmp_path / "b" / "config.json").rename(tmp_path / "b" / "config2.json")
    assert sha256_path(tmp_path / "a") != sha256_path(tmp_path / "b")
