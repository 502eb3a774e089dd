"""Image embeddings of every split of one dataset, written to HDF5 as batches arrive.

The file layout is documented in `overspec.embed.store`, which reads it without torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from open_clip.transform import image_transform
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from overspec.data.readers import SplitReader, open_split
from overspec.errors import UserError
from overspec.models.checkpoint import load_model
from overspec.provenance import atomic_path, read_json


def eval_transform(preprocessing: dict[str, Any]):
    """open_clip's own evaluation transform for the model's preprocessing settings."""
    return image_transform(
        tuple(preprocessing["size"]), is_train=False, mean=tuple(preprocessing["mean"]),
        std=tuple(preprocessing["std"]), resize_mode=preprocessing["resize_mode"],
        interpolation=preprocessing["interpolation"],
    )


class _TransformedSplit(Dataset):
    def __init__(self, reader: SplitReader, transform) -> None:
        self.reader, self.transform = reader, transform

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.reader.load(index))


def open_manifest_split(manifest_path: str | Path, split: str) -> tuple[dict[str, Any], SplitReader]:
    """The manifest and a reader for one split, checked against the listing recorded at preparation."""
    manifest = read_json(manifest_path)
    if split not in manifest["splits"]:
        raise UserError(f"Dataset {manifest['dataset']} has no split '{split}' (it has {', '.join(manifest['splits'])}).")
    reader = open_split(manifest["reader"], manifest["root"], split, tuple(manifest["classes"]),
                        manifest.get("options", {}))
    recorded = manifest["splits"][split]["listing_sha256"]
    if reader.listing_digest() != recorded:
        raise UserError(f"The files of {manifest['dataset']}/{split} under {manifest['root']} changed since "
                        f"{manifest_path} was written: rerun prepare_dataset for it (delete that manifest).")
    return manifest, reader


@torch.inference_mode()
def embed_dataset(model_path: str | Path, manifest_path: str | Path, out_path: str | Path, device: str = "cpu",
                  batch_size: int = 256, num_workers: int = 0, provenance: dict[str, Any] | None = None) -> dict[str, int]:
    """Embed every split of a prepared dataset into one HDF5 file; returns the images per split."""
    loaded = load_model(model_path, device=device)
    transform = eval_transform(loaded.card["preprocessing"])
    manifest = read_json(manifest_path)
    sizes = {}
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as out:
            out.attrs["dataset"] = manifest["dataset"]
            out.attrs["preprocessing"] = json.dumps(loaded.card["preprocessing"], sort_keys=True)
            out.attrs["provenance"] = json.dumps(provenance or {}, sort_keys=True)
            for split in manifest["splits"]:
                _, reader = open_manifest_split(manifest_path, split)
                group = out.create_group(split, track_order=True)
                group.attrs["listing_sha256"] = manifest["splits"][split]["listing_sha256"]
                sizes[split] = _embed_split(loaded.model, reader, transform, group, device, batch_size, num_workers,
                                            f"embed {manifest['dataset']}/{split}")
    return sizes


def _embed_split(model, reader: SplitReader, transform, group: h5py.Group, device: str, batch_size: int,
                 num_workers: int, description: str) -> int:
    loader = DataLoader(_TransformedSplit(reader, transform), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=device.startswith("cuda"))
    n = len(reader)
    features = None
    start = 0
    for batch in tqdm(loader, desc=description, unit="batch", mininterval=5.0):
        feats = model.encode_image(batch.to(device)).float().cpu().numpy()
        if features is None:
            dim = feats.shape[1]
            features = group.create_dataset("features", shape=(n, dim), dtype="float32",
                                            chunks=(min(n, 1024), dim), track_times=False)
        features[start:start + len(feats)] = feats
        start += len(feats)
    group.create_dataset("labels", data=np.asarray(reader.labels(), np.int64), track_times=False)
    group.create_dataset("ids", data=np.array(reader.ids(), dtype=object), dtype=h5py.string_dtype(),
                         track_times=False)
    return n
