"""Reading the embedding store (`embeddings/{model}/{dataset}.h5`) with h5py and numpy only, so
evaluation jobs start without importing torch or open_clip.

Layout: one group per split (`train`, `val`, `test`), each with `features` [N, D] float32 (the
model's projected image embedding, not normalised), `labels` [N] int64 and `ids` [N] UTF-8.
File attributes: dataset, preprocessing, provenance (JSON); group attributes: listing digest.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from overspec.errors import UserError


def read_embeddings(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """features [N, D] float32, labels [N] int64 and ids of one split."""
    try:
        with h5py.File(path, "r") as f:
            group = f[split]
            ids = [i.decode() if isinstance(i, bytes) else i for i in group["ids"][...]]
            return group["features"][...], group["labels"][...], ids
    except (OSError, KeyError) as exc:
        raise UserError(f"Embedding file {path} has no readable split '{split}' ({exc}): delete it and rerun "
                        f"embed_images.") from None


def read_classifier(path: str | Path) -> np.ndarray:
    """The zero-shot classifier [C, D] written by embed_images (overspec.embed.text)."""
    try:
        with h5py.File(path, "r") as f:
            return f["classifier"][...]
    except (OSError, KeyError) as exc:
        raise UserError(f"Classifier file {path} is unreadable ({exc}): delete it and rerun embed_images.") from None
