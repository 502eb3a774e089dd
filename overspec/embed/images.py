"""Image embeddings of one dataset split, written to HDF5 as batches arrive.

File schema (`embeddings/{model}/{dataset}/{split}.h5`): `features` [N, D] float32 (the model's
projected image embedding, not normalised), `labels` [N] int64, `ids` [N] UTF-8; attributes hold
the model digest, the dataset listing digest, the preprocessing and the provenance block (JSON).
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
def embed_split(model_path: str | Path, manifest_path: str | Path, split: str, out_path: str | Path,
                device: str = "cpu", batch_size: int = 256, num_workers: int = 0,
                provenance: dict[str, Any] | None = None) -> int:
    """Embed every image of one split; returns the number of images."""
    loaded = load_model(model_path, device=device)
    manifest, reader = open_manifest_split(manifest_path, split)
    loader = DataLoader(_TransformedSplit(reader, eval_transform(loaded.card["preprocessing"])),
                        batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.startswith("cuda"))
    n = len(reader)
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as out:
            features = None
            start = 0
            for batch in tqdm(loader, desc=f"embed {Path(manifest_path).parent.name}/{split}", unit="batch",
                              mininterval=5.0):
                feats = loaded.model.encode_image(batch.to(device)).float().cpu().numpy()
                if features is None:
                    dim = feats.shape[1]
                    features = out.create_dataset("features", shape=(n, dim), dtype="float32",
                                                  chunks=(min(n, 1024), dim), track_times=False)
                features[start:start + len(feats)] = feats
                start += len(feats)
            out.create_dataset("labels", data=np.asarray(reader.labels(), np.int64), track_times=False)
            out.create_dataset("ids", data=np.array(reader.ids(), dtype=object), dtype=h5py.string_dtype(),
                               track_times=False)
            out.attrs["dataset"] = manifest["dataset"]
            out.attrs["split"] = split
            out.attrs["listing_sha256"] = manifest["splits"][split]["listing_sha256"]
            out.attrs["preprocessing"] = json.dumps(loaded.card["preprocessing"], sort_keys=True)
            out.attrs["provenance"] = json.dumps(provenance or {}, sort_keys=True)
    return n


def read_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """features [N, D] float32, labels [N] int64, ids."""
    try:
        with h5py.File(path, "r") as f:
            ids = [i.decode() if isinstance(i, bytes) else i for i in f["ids"][...]]
            return f["features"][...], f["labels"][...], ids
    except (OSError, KeyError) as exc:
        raise UserError(f"Embedding file {path} is unreadable or incomplete ({exc}): delete it and rerun embed_images.") from None
