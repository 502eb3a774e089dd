"""General-vision protocols on cached embeddings: zero-shot with the original text encoder, and the
CLIP-paper linear probe. Both read the same HDF5 files; nothing is re-encoded.

Each result JSON gets ``{dataset}.pred.csv`` beside it (``id, label, pred`` per test sample, in the
embedding file's order), so paired statistics (``overspec.analysis.significance``) can resample the
same samples for two models without refitting a probe. The CSV is written first and the JSON names
it with its sha256.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from overspec.embed.store import read_classifier, read_embeddings
from overspec.metrics import bootstrap_ci, mean_per_class_recall, primary_metric, topk_accuracy
from overspec.provenance import read_json, sha256_file, write_json, write_sidecar, write_text

PREDICTION_COLUMNS = ("id", "label", "pred")


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, n_classes: int, primary: str,
                           bootstrap_resamples: int, seed: int) -> dict[str, Any]:
    """top-1, top-5, mean per-class recall, the primary metric and its 95% bootstrap interval."""
    pred = logits.argmax(axis=1)
    value = primary_metric(primary, pred, labels, n_classes)
    result = {
        "top1": topk_accuracy(logits, labels, 1),
        "top5": topk_accuracy(logits, labels, min(5, n_classes)),
        "mean_per_class_recall": mean_per_class_recall(pred, labels, n_classes),
        "primary_metric": primary,
        "primary": value,
        "n": int(len(labels)),
    }
    if bootstrap_resamples > 0:
        low, high = bootstrap_ci(lambda p, y: primary_metric(primary, p, y, n_classes), pred, labels,
                                 n_resamples=bootstrap_resamples, seed=seed)
        result["primary_ci95"] = [low, high]
        result["bootstrap"] = {"resamples": bootstrap_resamples, "seed": seed}
    return result


def predictions_csv(ids: list[str], labels: np.ndarray, logits: np.ndarray) -> str:
    """One row per test sample: its id, true class and predicted class (the argmax of its logits).

    Written with the csv module, not pandas: evaluation jobs are start-up bound and never load pandas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    writer.writerows(zip(ids, np.asarray(labels).tolist(), logits.argmax(axis=1).tolist()))
    return buffer.getvalue()


def predictions_path(json_path: str | os.PathLike) -> Path:
    """``.../toy_colours.json`` -> ``.../toy_colours.pred.csv``."""
    path = Path(json_path)
    return path.with_name(path.stem + ".pred.csv")


def evaluate_zeroshot(embeddings_h5, text_h5, primary: str, bootstrap_resamples: int = 1000,
                      seed: int = 0) -> tuple[dict[str, Any], str]:
    """The metrics and the per-sample predictions (CSV text)."""
    features, labels, ids = read_embeddings(embeddings_h5, "test")
    classifier = read_classifier(text_h5)
    # CLIP's logit scale does not change the ranking; cosine similarities are the logits.
    logits = _normalise(features.astype(np.float64)) @ classifier.astype(np.float64).T
    metrics = classification_metrics(logits, labels, classifier.shape[0], primary, bootstrap_resamples, seed)
    return metrics, predictions_csv(ids, labels, logits)


def evaluate_linear_probe(embeddings_h5, n_classes: int, primary: str, device: str = "cpu",
                          c_grid: list[float] | None = None, bootstrap_resamples: int = 1000,
                          seed: int = 0) -> tuple[dict[str, Any], str]:
    """The metrics and the per-sample predictions (CSV text)."""
    from overspec.evaluate.linear_probe import fit_linear_probe  # imports torch: only probe jobs pay for it

    train_x, train_y, _ = read_embeddings(embeddings_h5, "train")
    val_x, val_y, _ = read_embeddings(embeddings_h5, "val")
    test_x, test_y, test_ids = read_embeddings(embeddings_h5, "test")
    probe = fit_linear_probe(
        train_x, train_y, val_x, val_y, test_x, test_y, n_classes=n_classes,
        c_grid=np.asarray(c_grid, dtype=np.float64) if c_grid else None, device=device,
        select_metric="mean_per_class_recall" if primary == "mean_per_class_recall" else "top1", seed=seed,
    )
    result = classification_metrics(probe.test_logits, test_y, n_classes, primary, bootstrap_resamples, seed)
    result.update({
        "best_c": probe.best_c,
        "val_curve": [[float(c), float(v)] for c, v in probe.val_curve],
        "n_train": probe.n_train, "n_val": probe.n_val, "n_test": probe.n_test,
    })
    return result, predictions_csv(test_ids, test_y, probe.test_logits)


def write_result(out_json, result: dict[str, Any], predictions: str) -> dict[str, Any]:
    """The predictions CSV (with its provenance sidecar), then the JSON naming it and its sha256."""
    csv_path = predictions_path(out_json)
    write_text(csv_path, predictions)
    write_sidecar(csv_path, result["provenance"])
    result["predictions_file"] = {"path": csv_path.name, "sha256": sha256_file(csv_path), "rows": result["n"]}
    write_json(out_json, result)
    return result


def _manifest_facts(manifest_path) -> tuple[str, int, str]:
    manifest = read_json(manifest_path)
    return manifest["dataset"], len(manifest["classes"]), manifest["primary_metric"]


def run_zeroshot(model: str, embeddings_h5, text_h5, manifest_path, out_json, *, bootstrap_resamples: int,
                 seed: int, provenance: dict[str, Any]) -> dict[str, Any]:
    dataset, _, primary = _manifest_facts(manifest_path)
    metrics, predictions = evaluate_zeroshot(embeddings_h5, text_h5, primary, bootstrap_resamples, seed)
    result = {"protocol": "zeroshot", "model": model, "dataset": dataset, **metrics, "provenance": provenance}
    return write_result(out_json, result, predictions)


def run_linear_probe(model: str, embeddings_h5, manifest_path, out_json, *, c_grid,
                     bootstrap_resamples: int, seed: int, provenance: dict[str, Any],
                     device: str = "cpu") -> dict[str, Any]:
    dataset, n_classes, primary = _manifest_facts(manifest_path)
    metrics, predictions = evaluate_linear_probe(embeddings_h5, n_classes, primary, device=device, c_grid=c_grid,
                                                 bootstrap_resamples=bootstrap_resamples, seed=seed)
    result = {"protocol": "linear_probe", "model": model, "dataset": dataset, "feature": "embedding",
              **metrics, "provenance": provenance}
    return write_result(out_json, result, predictions)
