"""IJB-B / IJB-C 1:1 template verification, insightface protocol (``eval_ijbc.py``), vectorised.

Per image: align the loose crop by its 5 landmarks, embed it and its flip and sum the raw
features (F1), keep their norm (N1: no per-image normalisation) and multiply by the detector's
faceness score (D1). Per template: average the images of each media (video frames), sum the
media, L2-normalise. Score: cosine of the two templates of each pair, computed as one matrix
product between the unique first and unique second templates (in row blocks), then read off.
TAR at FAR 1e-6..1e-1 comes from `overspec.metrics.tar_at_far` (at-most FAR, plus insightface's
nearest-point value), AUC from `overspec.metrics.auc`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
from PIL import Image

from overspec.data.biometric.alignment import ARCFACE_TEMPLATE_112, align_face, template_for_size
from overspec.data.biometric.ijb import IJBMeta
from overspec.errors import UserError
from overspec.evaluate.face_verification import EmbedFn, flip_sum_features, l2_normalise
from overspec.metrics import IJB_FAR_TARGETS, auc, tar_at_far


def _load_rgb(path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise UserError(f"The IJB image {path} does not exist; check that loose_crop/ is complete.") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise UserError(f"The IJB image {path} cannot be decoded ({err}); re-download it.") from None


def aligned_batches(
    meta: IJBMeta, batch_size: int, output_size: int = 112, template: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """The loose crops in meta order, aligned to `template` (default: ArcFace, scaled to output_size)."""
    if template is None:
        template = template_for_size(ARCFACE_TEMPLATE_112, 112, output_size)
    for start in range(0, meta.image_names.size, batch_size):
        stop = min(start + batch_size, meta.image_names.size)
        yield np.stack(
            [align_face(_load_rgb(meta.image_path(i)), meta.landmarks[i], template, output_size) for i in range(start, stop)]
        )


def _group_sum(values: np.ndarray, groups: np.ndarray, n_groups: int, chunk: int = 65536) -> np.ndarray:
    """Row sums of `values` per group id in [0, n_groups), accumulated in float64.

    Rows are taken in group order, a chunk at a time, and summed by a sparse 0/1 matrix product
    (np.add.reduceat along axis 0 is ~10x slower at IJB-C size); only each chunk is cast to float64.
    """
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    out = np.zeros((n_groups, values.shape[1]), dtype=np.float64)
    for start in range(0, order.size, chunk):
        rows, ids = order[start : start + chunk], sorted_groups[start : start + chunk]
        low, high = int(ids[0]), int(ids[-1]) + 1
        summing = scipy.sparse.csr_matrix(
            (np.ones(rows.size), (ids - low, np.arange(rows.size))), shape=(high - low, rows.size)
        )
        out[low:high] += summing @ values[rows].astype(np.float64)
    return out


def template_features(
    features: np.ndarray,
    templates: np.ndarray,
    medias: np.ndarray,
    faceness: np.ndarray | None = None,
    normalise_images: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted template ids, L2-normalised template features): media means summed per template."""
    features = np.asarray(features)
    if not np.issubdtype(features.dtype, np.floating):
        features = features.astype(np.float64)
    if normalise_images:  # test mode N0
        features = l2_normalise(features)
    if faceness is not None:  # test mode D1
        features = features * np.asarray(faceness, dtype=features.dtype)[:, None]
    media_keys, media_of_image = np.unique(np.stack([templates, medias], axis=1), axis=0, return_inverse=True)
    media_of_image = media_of_image.reshape(-1)
    counts = np.bincount(media_of_image, minlength=len(media_keys))
    media_means = _group_sum(features, media_of_image, len(media_keys)) / counts[:, None]
    template_ids, template_of_media = np.unique(media_keys[:, 0], return_inverse=True)
    summed = _group_sum(media_means, template_of_media.reshape(-1), len(template_ids))
    return template_ids, l2_normalise(summed)


def _template_rows(template_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each wanted template id in the sorted `template_ids` (a lookup table for IJB's small ids)."""
    if template_ids.size and 0 <= template_ids.min() and template_ids.max() < 50_000_000 and wanted.min() >= 0:
        table = np.full(int(max(template_ids.max(), wanted.max())) + 1, -1, dtype=np.int64)
        table[template_ids] = np.arange(template_ids.size)
        rows = table[wanted]
    else:
        rows = np.minimum(np.searchsorted(template_ids, wanted), template_ids.size - 1)
        rows[template_ids[rows] != wanted] = -1
    if (rows < 0).any():
        raise UserError("Some pair templates have no images; check the IJB meta files.")
    return rows


def _compact(rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct rows, sorted; each entry's position among them) without sorting all entries."""
    present = np.zeros(n, dtype=bool)
    present[rows] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[rows]


def score_template_pairs(
    template_ids: np.ndarray, template_feats: np.ndarray, pair_templates: np.ndarray, block_rows: int = 2048
) -> np.ndarray:
    """Cosine score of every pair: unique first templates x unique second templates, by row blocks (float32)."""
    rows = _template_rows(template_ids, np.asarray(pair_templates))
    first, first_of_pair = _compact(rows[:, 0], template_ids.size)
    second, second_of_pair = _compact(rows[:, 1], template_ids.size)
    right = np.ascontiguousarray(template_feats[second].T, dtype=np.float32)
    scores = np.empty(len(rows), dtype=np.float32)
    for start in range(0, first.size, block_rows):
        block_matrix = template_feats[first[start : start + block_rows]].astype(np.float32) @ right
        chosen = np.flatnonzero((first_of_pair >= start) & (first_of_pair < start + block_rows))
        scores[chosen] = block_matrix[first_of_pair[chosen] - start, second_of_pair[chosen]]
    return scores


def insightface_test_mode(flip: bool, use_faceness: bool, normalise_images: bool) -> str:
    """insightface arcface_torch's name: N1 = raw norms kept, D1 = faceness weighting, F1 = flip sum."""
    return f"N{int(not normalise_images)}D{int(use_faceness)}F{int(flip)}"


def evaluate_ijb_features(
    meta: IJBMeta,
    features: np.ndarray,
    use_faceness: bool = True,
    normalise_images: bool = False,
    flip: bool = True,
    far_targets: tuple[float, ...] = IJB_FAR_TARGETS,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Metrics and per-pair scores from per-image (flip-summed, raw) features in meta order."""
    if features.shape[0] != meta.image_names.size:
        raise ValueError(f"{features.shape[0]} features for {meta.image_names.size} IJB images")
    template_ids, feats = template_features(
        features, meta.templates, meta.medias, meta.faceness if use_faceness else None, normalise_images
    )
    scores = score_template_pairs(template_ids, feats, meta.pair_templates)
    genuine, impostor = scores[meta.pair_labels == 1], scores[meta.pair_labels == 0]
    if genuine.size == 0 or impostor.size == 0:
        raise UserError(f"The {meta.name} pair file needs both genuine and impostor pairs; check it.")
    points = tar_at_far(genuine, impostor, far_targets)
    result = {
        "benchmark": meta.name,
        "task": "ijb_1to1",
        "protocol": "insightface IJB 1:1: 5-point alignment, media mean, template sum, cosine; TAR at at-most FAR",
        "test_mode": insightface_test_mode(flip, use_faceness, normalise_images),
        "n_images": int(meta.image_names.size),
        "n_templates": int(np.unique(meta.templates).size),
        "n_media": int(np.unique(np.stack([meta.templates, meta.medias], 1), axis=0).shape[0]),
        "n_pairs": int(scores.size),
        "n_genuine": int(genuine.size),
        "n_impostor": int(impostor.size),
        "tar_at_far": [
            {
                "far": p.far_target,
                "tar": p.tar,
                "achieved_far": p.achieved_far,
                "false_accepts": p.false_accepts,
                "threshold": p.threshold,
                "tar_nearest_insightface": p.tar_nearest,
                "far_nearest_insightface": p.far_nearest,
            }
            for p in points
        ],
        "auc": auc(genuine, impostor),
        "primary_metric": "tar_at_far",
    }
    table = pd.DataFrame(
        {
            "template1": meta.pair_templates[:, 0],
            "template2": meta.pair_templates[:, 1],
            "label": meta.pair_labels.astype(int),
            "score": scores,
        }
    )
    return result, table


def evaluate_ijb(
    meta: IJBMeta,
    embed_fn: EmbedFn,
    batch_size: int = 256,
    output_size: int = 112,
    template: np.ndarray | None = None,
    flip: bool = True,
    use_faceness: bool = True,
    normalise_images: bool = False,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Align, embed (flip-summed) and score one IJB protocol; default test mode N1D1F1 as insightface."""
    features = flip_sum_features(aligned_batches(meta, batch_size, output_size, template), embed_fn, flip=flip)
    result, table = evaluate_ijb_features(meta, features, use_faceness, normalise_images, flip)
    result["aligned_size"] = output_size
    return result, table
