"""Tiny open_clip ViTs for tests: registered under a test name, randomly initialised."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch

from overspec.models.factory import create_model


def tiny_vit(folder: Path, name: str, *, image_size: int, layers: int, width: int, embed_dim: int,
             head_width: int = 16, patch_size: int = 8) -> torch.nn.Module:
    """A ViT of the given shape with a one-layer text tower, in eval mode (seed 0)."""
    config = folder / f"{name}.json"
    config.write_text(json.dumps({
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": image_size, "layers": layers, "width": width, "head_width": head_width,
                       "patch_size": patch_size},
        "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1},
    }))
    open_clip.add_model_config(config)
    return create_model(name, seed=0).eval()


class Killed(Exception):
    """Stands for the embedding job being killed."""


def kill_encoder_after(monkeypatch, images: int) -> list[int]:
    """Make the image encoder raise `Killed` once `images` images have been embedded; returns the
    list of batch sizes it embedded before that."""
    from overspec.embed.encoder import ImageEncoder

    seen: list[int] = []
    real_call = ImageEncoder.__call__

    def dies(self, pixels):
        if sum(seen) >= images:
            raise Killed()
        seen.append(len(pixels))
        return real_call(self, pixels)

    monkeypatch.setattr(ImageEncoder, "__call__", dies)
    return seen
