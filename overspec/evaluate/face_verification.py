"""Face verification on pair sets (insightface ``.bin``: LFW, CFP-FP, AgeDB-30, ...), flip-sum fused.

Protocol (insightface ``eval/verification.py``): each image's embedding is summed with that of
its horizontal flip, the sum is L2-normalised, and pairs (2i, 2i+1) are scored by the 10-fold
accuracy of `overspec.metrics.kfold_verification_accuracy` (contiguous folds, squared-L2
threshold grid 0..4 step 0.01, strict <, mean and std of the fold accuracies). The exact-threshold
variant, AUC and EER of the cosine scores are reported beside it.

The model enters only as an ``EmbedFn``: a callable from a uint8 RGB batch [B,H,W,3] to features
[B,D]; resizing and normalisation for the model are its business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from overspec.data.biometric.pair_bin import PairSet
from overspec.errors import UserError
from overspec.metrics import auc, equal_error_rate, kfold_verification_accuracy

EmbedFn = Callable[[np.ndarray], np.ndarray]

PAIR_PROTOCOL = "insightface 10-fold: flip-sum fused L2-normalised embeddings, squared-L2 grid 0:4:0.01, strict <"


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (zero rows stay zero; norms in float64), returned float32."""
    features = np.asarray(features)
    if features.dtype not in (np.float32, np.float64):
        features = features.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", features, features, dtype=np.float64))
    scale = (1.0 / np.where(norms > 0, norms, 1.0)).astype(features.dtype)
    return (features * scale[:, None]).astype(np.float32, copy=False)


def _embed(embed_fn: EmbedFn, batch: np.ndarray) -> np.ndarray:
    features = np.asarray(embed_fn(batch))
    if features.ndim != 2 or features.shape[0] != batch.shape[0]:
        raise ValueError(f"the embedding function returned shape {features.shape} for a batch of {batch.shape[0]}")
    if not np.isfinite(features).all():
        raise UserError("The model produced NaN or infinite embeddings; check the checkpoint and its preprocessing.")
    return features.astype(np.float64)


def flip_sum_features(batches: Iterable[np.ndarray], embed_fn: EmbedFn, flip: bool = True) -> np.ndarray:
    """Raw embedding of each image plus that of its horizontal flip, not normalised, float32 [N,D].

    float32 like the model's output: IJB-C's 469k x 512 features stay under 1 GB.
    """
    out = []
    for batch in batches:
        features = _embed(embed_fn, batch)
        if flip:
            features = features + _embed(embed_fn, np.ascontiguousarray(batch[:, :, ::-1]))
        out.append(features.astype(np.float32))
    if not out:
        raise UserError("There are no images to embed; check the benchmark file.")
    return np.concatenate(out)


def flip_sum_embeddings(batches: Iterable[np.ndarray], embed_fn: EmbedFn, flip: bool = True) -> np.ndarray:
    """insightface fusion: embedding(img) + embedding(hflip(img)), then L2-normalised (float32 [N,D])."""
    return l2_normalise(flip_sum_features(batches, embed_fn, flip))


def evaluate_pair_embeddings(
    embeddings: np.ndarray, issame: np.ndarray, benchmark: str, n_folds: int = 10
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Metrics and per-pair scores from fused embeddings of all images in file order (pair i = rows 2i, 2i+1)."""
    embeddings = np.asarray(embeddings)
    same = np.asarray(issame, dtype=bool)
    if embeddings.shape[0] != 2 * same.size:
        raise ValueError(f"{embeddings.shape[0]} embeddings for {same.size} pairs; need two per pair")
    e1, e2 = l2_normalise(embeddings[0::2]), l2_normalise(embeddings[1::2])
    grid = kfold_verification_accuracy(e1, e2, same, n_folds=n_folds, method="grid")
    exact = kfold_verification_accuracy(e1, e2, same, n_folds=n_folds, method="exact")
    cosine = np.einsum("ij,ij->i", e1.astype(np.float64), e2.astype(np.float64))
    eer = equal_error_rate(cosine[same], cosine[~same])
    folds = np.concatenate([np.full(len(part), k) for k, part in enumerate(np.array_split(np.arange(same.size), n_folds))])
    result = {
        "benchmark": benchmark,
        "task": "face_verification",
        "protocol": PAIR_PROTOCOL,
        "n_pairs": int(same.size),
        "n_genuine": int(same.sum()),
        "n_impostor": int((~same).sum()),
        "n_folds": n_folds,
        "accuracy": grid.mean,
        "accuracy_std": grid.std,
        "fold_accuracies": list(grid.fold_accuracies),
        "fold_thresholds": list(grid.fold_thresholds),
        "accuracy_exact_threshold": exact.mean,
        "accuracy_exact_threshold_std": exact.std,
        "auc": auc(cosine[same], cosine[~same]),
        "eer": eer.eer,
        "eer_bracket": [eer.low, eer.high],
        "primary_metric": "accuracy",
    }
    scores = pd.DataFrame(
        {
            "pair": np.arange(same.size),
            "image1": np.arange(0, 2 * same.size, 2),
            "image2": np.arange(1, 2 * same.size, 2),
            "fold": folds,
            "issame": same.astype(int),
            "cosine": cosine,
            "squared_l2": np.sum((e1.astype(np.float64) - e2.astype(np.float64)) ** 2, axis=1),
        }
    )
    return result, scores


def evaluate_pair_set(
    pair_set: PairSet, embed_fn: EmbedFn, batch_size: int = 256, flip: bool = True
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Embed every image of `pair_set` (flip-sum fused) and score it with the 10-fold protocol."""
    embeddings = flip_sum_embeddings(pair_set.batches(batch_size), embed_fn, flip=flip)
    result, scores = evaluate_pair_embeddings(embeddings, pair_set.issame, pair_set.name)
    result["flip"] = flip
    result["image_size"] = list(pair_set.image(0).shape[:2])
    return result, scores
