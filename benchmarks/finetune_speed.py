"""CPU cost of one fine-tuning step on the toy backbones, to size the toy study's step budgets.

Runs the real `finetune` (data loading, augmentation, LoRA or full, head, AdamW, log) on procedural
toy faces and reports CPU seconds per optimiser step (process time, one torch thread: robust to
other processes sharing the machine), for each toy architecture and method.

Run: python benchmarks/finetune_speed.py   (prints readable lines, then one JSON object on the last line)
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from overspec.data.toy import faces
from overspec.models.checkpoint import save_model
from overspec.models.factory import create_model, preprocessing_of
from overspec.train.finetune import finetune
from overspec.train.recipe import FinetuneConfig

ARCHS = ("toy-clip-s", "toy-clip-m")
BATCH = 64
STEPS = 6


def _identity_folders(root: Path, identities: int = 32, per_identity: int = 8) -> Path:
    rng = np.random.default_rng(0)
    people = faces.sample_identities(identities, rng)
    images = faces.render_faces([p for p in people for _ in range(per_identity)], rng, 32)
    for k in range(identities):
        for n in range(per_identity):
            folder = root / f"{k:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[k * per_identity + n]).save(folder / f"{n:02d}.png")
    return root


def _seconds_per_step(arch: str, method: str, data: Path, tmp: Path) -> float:
    model = create_model(arch, seed=0)
    base = tmp / f"{arch}.safetensors"
    save_model(base, model, {"architecture": {"open_clip_model": arch}, "preprocessing": preprocessing_of(model)})
    recipe = {"method": method, "lora": {"r": 8, "alpha": 8, "dropout": 0.1}, "head": {"type": "cosface", "s": 32, "m": 0.2},
              "batch_size": BATCH, "epochs": None, "augment": {"hflip": True, "rand_augment": True}}
    timings = []
    for steps in (1, 1 + STEPS):  # the difference removes loading and saving
        start = time.process_time()
        finetune(FinetuneConfig.from_dict(dict(recipe, max_steps=steps)), base, data, tmp / "out.safetensors",
                 tmp / "log.csv", progress=False)
        timings.append(time.process_time() - start)
    return (timings[1] - timings[0]) / STEPS


def main() -> None:
    torch.set_num_threads(1)
    result = {"batch_size": BATCH, "threads": 1}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        data = _identity_folders(tmp / "ids")
        for arch in ARCHS:
            for method in ("lora", "full"):
                seconds = _seconds_per_step(arch, method, data, tmp)
                result[f"{arch}_{method}_cpu_s_per_step"] = round(seconds, 4)
                print(f"{arch:11s} {method:4s} batch {BATCH}: {seconds:.3f} CPU s/step "
                      f"({30 / seconds:.0f} steps in 30 CPU s)")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
