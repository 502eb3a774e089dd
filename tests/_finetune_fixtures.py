"""Shared helpers for the LoRA / heads / fine-tuning / import tests: a tiny open_clip architecture,
a base model file and small training sets in the real on-disk formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TINY_ARCH = "test-tiny-clip"
_TINY_CONFIG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 16, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}


def register_tiny_arch() -> str:
    """Make `test-tiny-clip` known to open_clip in this process (idempotent)."""
    from overspec.models.factory import register_architecture

    register_architecture(TINY_ARCH, _TINY_CONFIG)
    return TINY_ARCH


def make_base_model(path: Path, seed: int = 0, arch: str | None = None) -> Path:
    from overspec.models.checkpoint import save_model
    from overspec.models.factory import create_model, preprocessing_of

    arch = arch or register_tiny_arch()
    model = create_model(arch, seed=seed)
    save_model(path, model, {"architecture": {"open_clip_model": arch}, "preprocessing": preprocessing_of(model),
                             "name": "tiny-base"})
    return path


def _image(colour: np.ndarray, rng: np.random.Generator, size: int = 16) -> Image.Image:
    pixels = np.clip(colour[None, None, :] * 255 + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    pixels[: size // 2, : size // 4] = 255 - pixels[: size // 2, : size // 4]  # an asymmetric mark
    return Image.fromarray(pixels)


def make_identity_folders(root: Path, identities: int = 4, per_identity: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(identities):
        colour = rng.uniform(0, 1, 3)
        folder = root / f"id_{i:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_identity):
            _image(colour, rng).save(folder / f"{j:02d}.png")
    return root


def make_csv_list(root: Path, per_class: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = ["image_path,label"]
    for k in range(per_class):
        for label, colour in (("bonafide", np.array([0.8, 0.6, 0.5])), ("attack", np.array([0.3, 0.3, 0.9]))):
            name = f"img/{label}_{k:02d}.png"
            _image(colour, rng).save(root / name)
            rows.append(f"{name},{label}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root / "list.csv"


def ddp_worker(rank: int, world: int, port: int, kwargs: dict) -> None:
    """Entry point of one gloo rank (torch.multiprocessing.spawn)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    register_tiny_arch()
    from overspec.train.finetune import finetune
    from overspec.train.recipe import FinetuneConfig

    config = FinetuneConfig.from_dict(kwargs.pop("recipe"))
    finetune(config, progress=False, **kwargs)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and the shared CI cores are often oversubscribed."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny base model, identity folders (4 x 6) and a MAD list (8 + 8), once per test module."""
    root = tmp_path_factory.mktemp("world")
    return {"base": make_base_model(root / "base.safetensors"),
            "ids": make_identity_folders(root / "ids", identities=4, per_identity=6),
            "csv": make_csv_list(root / "mad", per_class=8)}
