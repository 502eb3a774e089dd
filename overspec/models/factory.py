"""Creating open_clip models by name, including overspec's own toy architectures."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Mapping

import open_clip
import torch

from overspec.errors import UserError
from overspec.models.architectures import MODEL_CONFIG_DIR

open_clip.add_model_config(MODEL_CONFIG_DIR)


def architecture_config(arch: str) -> dict[str, Any]:
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise UserError(
            f"Unknown open_clip architecture '{arch}': use one of open_clip.list_models() "
            f"(e.g. ViT-B-16, ViT-L-14) or a toy one ({', '.join(sorted(p.stem for p in MODEL_CONFIG_DIR.glob('*.json')))})."
        )
    return cfg


def register_architecture(arch: str, model_config: Mapping[str, Any]) -> None:
    """Make an architecture known to open_clip for this process (one derived from a Hugging Face
    config that open_clip has no file for; its config travels in the model card)."""
    known = open_clip.get_model_config(arch)
    if known is not None:
        if known != dict(model_config):
            raise UserError(f"Model config of architecture {arch} differs from the one already known under that name.")
        return
    folder = Path(tempfile.mkdtemp(prefix="overspec-arch-"))  # open_clip registers configs from files only
    path = folder / f"{arch}.json"
    path.write_text(json.dumps(dict(model_config)))
    open_clip.add_model_config(path)


def architecture_of_card(card: Mapping[str, Any]) -> str:
    """The architecture a model card names, registered first when the card carries its config."""
    arch = card["architecture"]["open_clip_model"]
    if "model_config" in card["architecture"]:
        register_architecture(arch, card["architecture"]["model_config"])
    return arch


def create_model(arch: str, seed: int | None = None) -> open_clip.CLIP:
    """A randomly initialised open_clip model (weights are loaded separately, from safetensors)."""
    architecture_config(arch)
    if seed is not None:
        torch.manual_seed(seed)
    # open_clip warns that no pretrained weights were loaded: that is intended here.
    logging.getLogger().disabled, previous = True, logging.getLogger().disabled
    try:
        model = open_clip.create_model(arch, pretrained=None)
    finally:
        logging.getLogger().disabled = previous
    return model


def get_tokenizer(arch: str):
    """The real CLIP BPE tokenizer that ships with open_clip, at the architecture's context length."""
    architecture_config(arch)
    return open_clip.get_tokenizer(arch)


def preprocessing_of(model: torch.nn.Module) -> dict[str, Any]:
    """The image preprocessing a model expects, as plain JSON-able values (colour order RGB)."""
    cfg = dict(model.visual.preprocess_cfg)
    return {
        "size": list(cfg["size"]) if isinstance(cfg["size"], (tuple, list)) else [cfg["size"], cfg["size"]],
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "interpolation": cfg["interpolation"],
        "resize_mode": cfg["resize_mode"],
        "colour_order": cfg.get("mode", "RGB"),
    }
