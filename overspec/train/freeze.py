"""`freeze_blocks: N`: adapt only the last blocks of the image encoder.

The first N transformer blocks of an open_clip ViT get no LoRA and no gradient, and with full
fine-tuning neither does the stem that feeds them (patch embedding, class and position embeddings,
ln_pre), so everything below block N stays bit-identical to the pretrained model; the blocks above
and what follows them (ln_post, the projection) adapt as the recipe says.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from overspec.errors import UserError
from overspec.models.lora_config import LoRAConfig
from overspec.train.recipe import FinetuneConfig

STEM = ("conv1", "class_embedding", "positional_embedding", "ln_pre")  # what runs before block 0


def encoder_depth(model: nn.Module, where: str) -> int:
    """The image encoder's number of transformer blocks; a model without them cannot freeze blocks."""
    blocks = getattr(getattr(getattr(model, "visual", None), "transformer", None), "resblocks", None)
    if blocks is None:
        raise UserError(f"{where}.freeze_blocks needs an open_clip ViT image encoder (visual.transformer.resblocks); "
                        "this model has none: set freeze_blocks to 0.")
    return len(blocks)


def lora_for(config: FinetuneConfig, depth: int) -> LoRAConfig:
    """The recipe's LoRA settings with the frozen blocks left out (`blocks` None = every block)."""
    if not config.freeze_blocks:
        return config.lora
    blocks = range(depth) if config.lora.blocks is None else config.lora.blocks
    return dataclasses.replace(config.lora, blocks=tuple(b for b in blocks if b >= config.freeze_blocks))


def freeze_below(visual: nn.Module, n: int) -> list[str]:
    """requires_grad False on the stem and blocks 0..n-1 of a ViT (n > 0); the frozen parameter names."""
    frozen = []
    if n <= 0:
        return frozen
    for name, p in visual.named_parameters():
        parts = name.split(".")
        below = parts[0] in STEM or (parts[:2] == ["transformer", "resblocks"] and int(parts[2]) < n)
        if below:
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def freeze_card(config: FinetuneConfig, depth: int) -> dict:
    """What the model card records: how many blocks were frozen, of how many, and which adapted."""
    return {"frozen": config.freeze_blocks, "depth": depth,
            "adapted_blocks": list(range(config.freeze_blocks, depth)) if config.method == "full"
            else list(lora_for(config, depth).blocks or range(depth))}
