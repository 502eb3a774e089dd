"""Classification metrics for zero-shot and linear-probe evaluation.

Conventions:

* **Top-k accuracy.** A sample is a hit when its true class is among the first k classes of a
  *stable* descending sort of its logits: classes scoring strictly higher than the true class
  rank before it, and so do tied classes with a **smaller class index**. A tie therefore never
  counts in the sample's favour beyond what ``np.argsort(-logits, kind="stable")`` gives (torch's
  ``topk`` breaks ties in an unspecified order). ``k >= C`` gives 1.0.
* **Mean per-class recall** (CLIP's "mean per class", sklearn's ``balanced_accuracy_score``):
  the unweighted mean over the classes present in ``labels`` of the share of that class's
  samples predicted correctly. Classes absent from ``labels`` are ignored, even if predicted.
* **Bootstrap interval.** Percentile interval of the metric over resamples of whole rows
  (all arrays resampled with the same indices), from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from overspec.errors import UserError

PRIMARY_METRICS = ("top1", "mean_per_class_recall")

# Rows per chunk in top-k so the N x C comparison never needs more than ~32 MB of booleans.
_TOPK_CHUNK_ELEMENTS = 1 << 25
# Bootstrap resamples drawn per chunk; fixed so a seed always gives the same index stream.
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 22


def _labels_1d(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
        array = array.astype(np.int64)
    if array.min() < 0:
        raise ValueError(f"{name} holds a negative class index ({array.min()})")
    return array


def _same_length(pred: np.ndarray, labels: np.ndarray) -> None:
    if pred.shape[0] != labels.shape[0]:
        raise ValueError(f"pred has {pred.shape[0]} rows but labels has {labels.shape[0]}")


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose predicted class equals the label."""
    pred, labels = _labels_1d(pred, "pred"), _labels_1d(labels, "labels")
    _same_length(pred, labels)
    return float(np.count_nonzero(pred == labels) / labels.size)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of samples whose true class is within the top ``k`` of a stable descending sort."""
    logits = np.asarray(logits)
    labels = _labels_1d(labels, "labels")
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D [N, C], got shape {logits.shape}")
    _same_length(logits, labels)
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    n_classes = logits.shape[1]
    if labels.max() >= n_classes:
        raise ValueError(f"labels hold class {labels.max()} but logits have only {n_classes} columns")
    if np.isnan(logits).any():
        raise ValueError("logits contain NaN")
    class_index = np.arange(n_classes)
    rows_per_chunk = max(1, _TOPK_CHUNK_ELEMENTS // max(n_classes, 1))
    hits = 0
    for start in range(0, labels.size, rows_per_chunk):
        block = logits[start : start + rows_per_chunk]
        truth = labels[start : start + rows_per_chunk]
        true_logit = block[np.arange(truth.size), truth][:, None]
        # Rank in a stable argsort of -logits: strictly higher logits, plus ties at lower indices.
        rank = np.count_nonzero(block > true_logit, axis=1) + np.count_nonzero(
            (block == true_logit) & (class_index[None, :] < truth[:, None]), axis=1
        )
        hits += int(np.count_nonzero(rank < k))
    return float(hits / labels.size)


def mean_per_class_recall(pred: np.ndarray, labels: np.ndarray, n_classes: int | None = None) -> float:
    """Unweighted mean of per-class recall over the classes present in ``labels``."""
    pred, labels = _labels_1d(pred, "pred"), _labels_1d(labels, "labels")
    _same_length(pred, labels)
    if n_classes is not None:
        for name, array in (("pred", pred), ("labels", labels)):
            if array.max() >= n_classes:
                raise ValueError(f"{name} holds class {array.max()} but n_classes is {n_classes}")
    size = int(max(labels.max(), pred.max())) + 1 if n_classes is None else int(n_classes)
    support = np.bincount(labels, minlength=size)
    correct = np.bincount(labels[pred == labels], minlength=size)
    present = support > 0
    return float(np.mean(correct[present] / support[present]))


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile ``1 - alpha`` interval of ``metric_fn(*arrays)`` over row bootstrap resamples.

    All arrays are resampled jointly (row ``i`` of each stays together). The indices for all
    resamples are drawn in fixed-size vectorised chunks, so a seed always gives the same interval.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = arrays[0].shape[0] if arrays[0].ndim else 0
    if n == 0:
        raise ValueError("bootstrap_ci needs at least one row")
    for a in arrays[1:]:
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"all arrays must have {n} rows, got shape {a.shape}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    values = np.empty(n_resamples, dtype=np.float64)
    done = 0
    for indices in bootstrap_indices(n, n_resamples, seed):
        for row in indices:
            values[done] = metric_fn(*(a[row] for a in arrays))
            done += 1
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_indices(n: int, n_resamples: int, seed: int | Sequence[int]) -> Iterator[np.ndarray]:
    """Row indices of ``n_resamples`` bootstrap resamples of ``n`` rows, as ``[count, n]`` chunks.

    Drawn from ``numpy.random.default_rng(seed)`` in chunks of a fixed size, so a seed always gives
    the same resamples, whoever consumes them (one model's interval, two models' paired difference).
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    done = 0
    while done < n_resamples:
        count = min(per_chunk, n_resamples - done)
        yield rng.integers(0, n, size=(count, n))
        done += count


def primary_metric(name: str, pred: np.ndarray, labels: np.ndarray, n_classes: int | None) -> float:
    """The dataset's primary metric by name: ``"top1"`` or ``"mean_per_class_recall"``."""
    if name == "top1":
        return accuracy(pred, labels)
    if name == "mean_per_class_recall":
        return mean_per_class_recall(pred, labels, n_classes)
    raise UserError(f"Unknown primary metric {name!r}; use one of {', '.join(PRIMARY_METRICS)} in the dataset table.")
