"""Result files as the evaluation jobs write them (JSON + per-sample predictions CSV) and embedding files
in the store's layout, for the analysis tests."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from overspec.evaluate.general import predictions_csv, write_result
from overspec.metrics import primary_metric

MODELS = {
    "base": {"backbone_label": "toy-S", "adaptation": "none"},
    "tuned": {"backbone_label": "toy-S", "adaptation": "fr"},
}


def ids_of(n: int) -> list[str]:
    return [f"test/{i:05d}.png" for i in range(n)]


def write_fake_result(root: Path, protocol: str, model: str, dataset: str, labels, pred, metric: str = "top1",
                      ids: list[str] | None = None, top1: float | None = None) -> Path:
    """``root/{protocol}/{model}/{dataset}.json`` and its ``.pred.csv``, values computed from ``pred``."""
    labels, pred = np.asarray(labels), np.asarray(pred)
    logits = np.eye(int(max(labels.max(), pred.max())) + 1)[pred]  # argmax = pred
    value = primary_metric(metric, pred, labels, None)
    result = {"protocol": protocol, "model": model, "dataset": dataset, "primary_metric": metric, "primary": value,
              "top1": primary_metric("top1", pred, labels, None) if top1 is None else top1, "n": int(labels.size),
              "provenance": {"rule": "fake"}}
    path = root / protocol / model / f"{dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_result(path, result, predictions_csv(ids or ids_of(labels.size), labels, logits))
    return path


def write_embeddings(path: Path, features: np.ndarray, ids: list[str] | None = None) -> Path:
    """A test split in the embedding store's layout (``overspec.embed.store``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        group = f.create_group("test")
        group["features"] = features.astype(np.float32)
        group["labels"] = np.zeros(len(features), dtype=np.int64)
        group["ids"] = np.array(ids or ids_of(len(features)), dtype=h5py.string_dtype())
    return path
