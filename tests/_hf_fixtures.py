"""Tiny transformers CLIPModels and PEFT LoRA adapters, saved as their libraries save them."""

from __future__ import annotations

from pathlib import Path

import torch

# The toy-clip-s shape (overspec/data/model_configs/toy-clip-s.json) as a transformers CLIPConfig:
# vocabulary of the real CLIP tokenizer, so open_clip's token ids feed both models.
TOY_S_SHAPE = {
    "text_config": {"vocab_size": 49408, "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
                    "num_attention_heads": 2, "max_position_embeddings": 16},
    "vision_config": {"hidden_size": 96, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 3,
                      "image_size": 32, "patch_size": 8},
    "projection_dim": 96,
}
# A shape open_clip has no config for (3 vision heads of 16, text width 32, 24-d embeddings).
ODD_SHAPE = {
    "text_config": {"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 2, "max_position_embeddings": 16},
    "vision_config": {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 3,
                      "image_size": 32, "patch_size": 8},
    "projection_dim": 24,
}
ATTENTION_AND_MLP = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def hf_clip(shape: dict, act: str = "gelu", seed: int = 0):
    """A random CLIPModel whose every tensor (layer norms and logit scale too) is perturbed, so a tensor
    placed wrongly changes the features."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(text_config={**shape["text_config"], "hidden_act": act},
                        vision_config={**shape["vision_config"], "hidden_act": act},
                        projection_dim=shape["projection_dim"])
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.05)
    return model


def save_hf_clip(folder: Path, shape: dict, act: str = "gelu", seed: int = 0):
    model = hf_clip(shape, act, seed)
    model.save_pretrained(str(folder))
    return model


def peft_lora(model, folder: Path, targets=ATTENTION_AND_MLP, rslora: bool = True, r: int = 4, alpha: float = 8.0, seed: int = 3,
              **options):
    """Wrap `model` with a PEFT LoRA, give every factor random values (B starts at zero) and save it."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, use_rslora=rslora, target_modules=list(targets), **options)
    wrapped = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in wrapped.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    wrapped.save_pretrained(str(folder))
    return wrapped


def hf_features(model, images, tokens):
    """transformers' own image and text features (v5 returns them as the pooler output)."""
    with torch.no_grad():
        image, text = model.get_image_features(pixel_values=images), model.get_text_features(input_ids=tokens)
    pooled = [out if torch.is_tensor(out) else out.pooler_output for out in (image, text)]
    return pooled[0], pooled[1]


def probe_inputs(tokenizer, size: int = 32):
    """Images and open_clip's token ids for both models."""
    gen = torch.Generator().manual_seed(7)
    images = torch.randn(4, 3, size, size, generator=gen)
    tokens = tokenizer(["a photo of a cat", "a face", "the number seven, written by hand", "x"])
    return images, tokens
