"""Face-verification metrics: TAR at fixed FAR (IJB-style) and insightface's 10-fold pair accuracy.

* **TAR@FAR** (`tar_at_far`), at-most semantics (bob.measure ``far_threshold``, ISO/IEC 19795):
  with k = the largest false-accept count with k / N_impostor <= target, a score is accepted when
  it is strictly greater than the (k+1)-th largest impostor score; ``threshold`` is the next
  representable value above that score in the impostors' dtype, so score >= threshold gives the
  same counts (also when compared in float32). The achieved FAR never exceeds the target, even
  with ties; it and the false-accept count are reported. ``tar_nearest``/``far_nearest``
  reproduce insightface's IJB number for published tables: sklearn ``roc_curve`` (default
  ``drop_intermediate`` thinning), flipped, TPR at the point whose FPR is nearest the target
  (ties to the larger FPR, then the larger TPR); it may sit above the target FAR. Only the
  impostor scores the deepest operating point reaches are sorted (a cut from a strided sample),
  so 15.6M impostors take well under a second.
* **10-fold accuracy** (`kfold_verification_accuracy`), exactly insightface ``verification.py``
  (``calculate_roc``/``calculate_accuracy``): L2-normalise both embeddings (in their own dtype),
  squared L2 distance d = |e1 - e2|^2, predict "same" when d < threshold (strict), 10 contiguous
  folds (``KFold(shuffle=False)``: the first N mod 10 folds get one extra pair), for each fold the
  first threshold of ``np.arange(0, 4, 0.01)`` maximising accuracy on the other nine folds is
  applied to the held-out fold; reported mean and population std (ddof=0) of the fold accuracies.
  ``method="exact"`` instead searches every midpoint between distinct training distances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from overspec.metrics._scores import allowed_errors, as_scores

IJB_FAR_TARGETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
INSIGHTFACE_THRESHOLDS = np.arange(0, 4, 0.01)


@dataclass(frozen=True)
class TarAtFar:
    """One operating point: at-most TAR with its threshold and counts, plus insightface's nearest value."""

    far_target: float
    tar: float
    threshold: float
    achieved_far: float
    false_accepts: int
    true_accepts: int
    tar_nearest: float
    far_nearest: float
    n_genuine: int
    n_impostor: int


class _ImpostorTail:
    """The impostor scores above a cut, sorted ascending, holding at least the depth+1 largest.

    ``top`` holds every impostor score above ``below`` (ties included); ``below`` is the largest
    score not in ``top`` (-inf when ``top`` holds them all) and ``below_count`` its multiplicity.
    The cut comes from a strided sample, so only about the top ``depth`` scores are ever sorted.
    """

    def __init__(self, impostor: np.ndarray, depth: int) -> None:
        n = impostor.size
        share = (depth + 1) / n
        while share < 0.5:
            sample = impostor[:: max(1, n // 200_000)]
            # A cut a little deeper than needed; every score >= it is kept, so the result stays exact.
            rank = min(sample.size - 1, int(sample.size * (1.0 - 1.1 * share)) - 64)
            if rank <= 0:
                break
            tail = np.sort(impostor[impostor >= np.partition(sample, rank)[rank]])
            lowest = int(np.searchsorted(tail, tail[0], side="right"))  # copies of the tail's lowest value
            if tail.size - lowest >= depth + 1:
                self.top, self.below, self.below_count = tail[lowest:], float(tail[0]), lowest
                self.complete = False
                return
            share *= 2.0
        self.top, self.below, self.below_count, self.complete = np.sort(impostor), -np.inf, 0, True


def _at_most(tail: _ImpostorTail, genuine: np.ndarray, allowed: int) -> tuple[float, int, int]:
    """Threshold, false accepts and true accepts for at most ``allowed`` false accepts."""
    top = tail.top
    if allowed >= top.size and tail.complete:
        return -np.inf, top.size, genuine.size
    # Next representable value (in the impostors' dtype) above the (allowed+1)-th largest impostor.
    threshold = np.nextafter(top[top.size - 1 - allowed], np.inf)
    false_accepts = int(top.size - np.searchsorted(top, threshold, side="left"))
    true_accepts = int(genuine.size - np.searchsorted(genuine, float(threshold), side="left"))
    return float(threshold), false_accepts, true_accepts


def _insightface_points(tail: _ImpostorTail, genuine: np.ndarray, thinned: bool) -> tuple[np.ndarray, np.ndarray]:
    """False-accept levels kept by sklearn's ``drop_intermediate`` thinning, with the most true accepts at each.

    Each distinct impostor value u gives the level #impostors >= u. sklearn keeps a (tie-collapsed)
    ROC point unless the score groups before and after it hold equal (impostor, genuine) counts, so
    u's level keeps a point when a genuine lies strictly between u and the next lower impostor
    value, when the groups at those two values differ, or at the two ends of the curve. Level 0
    (the prepended origin) always survives. Returned in order of increasing level.
    """
    top, n_gen = tail.top, genuine.size
    starts = np.flatnonzero(np.r_[True, top[1:] != top[:-1]])
    counts = np.diff(np.r_[starts, top.size])
    m = starts.size
    # Slot of each genuine among w = [below, distinct values ascending]: equal to w[j] or inside (w[j-1], w[j]).
    w = np.r_[tail.below, top[starts].astype(np.float64)]
    slot = np.searchsorted(w, genuine, side="left")
    equal = slot <= m
    equal[equal] = w[slot[equal]] == genuine[equal]
    ties = np.bincount(slot[equal], minlength=m + 1)  # genuines equal to w[j]
    gaps = np.bincount(slot[~equal], minlength=m + 2)  # genuines in (w[j-1], w[j]); gaps[m+1]: above all
    at_most = np.cumsum(gaps[: m + 1] + ties)  # genuines <= w[j]
    # For the distinct value w[k], k = 1..m, its next lower impostor value is w[k-1].
    survives = (
        (gaps[1 : m + 1] > 0)
        | (counts != np.r_[tail.below_count, counts[:-1]])
        | (ties[1:] != ties[:-1])
        | (w[:-1] == -np.inf)  # the lowest score group ends the curve
    )
    if not thinned:
        survives[:] = True
    survives[-1] |= at_most[m] == n_gen  # the highest score group starts the curve
    levels = top.size - starts
    above_next = n_gen - at_most[:-1]
    return np.r_[0, levels[survives][::-1]], np.r_[n_gen - at_most[m], above_next[survives][::-1]]


def _more_than_two_scores(tail: _ImpostorTail, genuine: np.ndarray, impostor: np.ndarray) -> bool:
    """Whether all scores together take more than two values (sklearn thins only such curves)."""
    few = np.unique(np.r_[tail.top[[0, -1]], genuine[[0, -1]], [tail.below] if tail.below > -np.inf else []])
    if few.size > 2:
        return True
    # Every score lies among these at most two values unless one differs from both.
    return any(bool(np.any((scores != few[0]) & (scores != few[-1]))) for scores in (impostor, genuine))


def _nearest(levels: np.ndarray, accepts: np.ndarray, n_imp: int, target: float, complete: bool):
    """insightface's pick: the surviving level whose FAR is nearest the target, ties to the larger FAR."""
    far = levels / n_imp
    index = int(np.searchsorted(far, target, side="left"))
    if index == far.size:
        if not complete:
            return None  # a nearer level may lie deeper than the sorted tail
        index -= 1
    elif index > 0 and abs(far[index] - target) > abs(far[index - 1] - target):
        index -= 1
    return int(accepts[index]), float(far[index])


def tar_at_far(
    genuine: np.ndarray, impostor: np.ndarray, far_targets: float | Sequence[float] = IJB_FAR_TARGETS
) -> list[TarAtFar]:
    """TAR at each target FAR with at-most semantics, plus insightface's nearest-point TAR."""
    impostor = as_scores(impostor, "impostor", keep_float32=True)
    genuine = np.sort(as_scores(genuine, "genuine"))
    targets = [float(x) for x in np.atleast_1d(np.asarray(far_targets, dtype=np.float64))]
    n_imp, n_gen = impostor.size, genuine.size
    allowed = [allowed_errors(x, n_imp) for x in targets]
    # Sort only the impostors the deepest operating point can reach, plus a margin for the nearest pick.
    depth = max(allowed) + 1 + max(256, max(allowed) // 8)
    while True:
        tail = _ImpostorTail(impostor, depth)
        levels, accepts = _insightface_points(tail, genuine, _more_than_two_scores(tail, genuine, impostor))
        nearest = [_nearest(levels, accepts, n_imp, x, tail.complete) for x in targets]
        if all(pick is not None for pick in nearest):
            break
        depth *= 4
    results = []
    for target, k, (accepted_nearest, far_nearest) in zip(targets, allowed, nearest):
        threshold, false_accepts, true_accepts = _at_most(tail, genuine, k)
        results.append(
            TarAtFar(
                far_target=target,
                tar=true_accepts / n_gen,
                threshold=threshold,
                achieved_far=false_accepts / n_imp,
                false_accepts=false_accepts,
                true_accepts=true_accepts,
                tar_nearest=accepted_nearest / n_gen,
                far_nearest=far_nearest,
                n_genuine=n_gen,
                n_impostor=n_imp,
            )
        )
    return results


@dataclass(frozen=True)
class KFoldAccuracy:
    """Mean and std of the per-fold accuracies, with each fold's accuracy and chosen threshold."""

    mean: float
    std: float
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]
    method: str


def _l2_normalise(embeddings: np.ndarray) -> np.ndarray:
    # sklearn.preprocessing.normalize: divide by the row norm in the input dtype; (near-)zero rows stay.
    norms = np.sqrt(np.einsum("ij,ij->i", embeddings, embeddings))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    return embeddings / norms[:, None]


def _correct_counts(distances: np.ndarray, same: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Correct predictions at each threshold under "same if distance < threshold"."""
    same_sorted, diff_sorted = np.sort(distances[same]), np.sort(distances[~same])
    true_same = np.searchsorted(same_sorted, thresholds, side="left")
    true_diff = diff_sorted.size - np.searchsorted(diff_sorted, thresholds, side="left")
    return true_same + true_diff


def _exact_candidates(distances: np.ndarray) -> np.ndarray:
    values = np.unique(distances)
    return np.r_[values[0] - 1.0, (values[1:] + values[:-1]) / 2.0, values[-1] + 1.0]


def kfold_verification_accuracy(
    embeddings1: np.ndarray,
    embeddings2: np.ndarray,
    issame: np.ndarray,
    n_folds: int = 10,
    method: str = "grid",
) -> KFoldAccuracy:
    """insightface's k-fold pair accuracy (``method="grid"``) or its exact-threshold variant.

    Pass the raw (e.g. flip-summed) embeddings of each pair's two images; they are L2-normalised
    here exactly as insightface does, so normalising them beforehand can move a distance by an ulp.
    """
    e1, e2 = np.asarray(embeddings1), np.asarray(embeddings2)
    same = np.asarray(issame)
    if e1.ndim != 2 or e1.shape != e2.shape:
        raise ValueError(f"embeddings1 and embeddings2 must be 2-D of equal shape, got {e1.shape} and {e2.shape}")
    if same.shape != (e1.shape[0],):
        raise ValueError(f"issame must have one entry per pair ({e1.shape[0]}), got shape {same.shape}")
    if not np.isin(same, (0, 1)).all():
        raise ValueError("issame must hold booleans or 0/1")
    if method not in ("grid", "exact"):
        raise ValueError(f"method must be 'grid' or 'exact', got {method!r}")
    if not 2 <= n_folds <= e1.shape[0]:
        raise ValueError(f"n_folds must be between 2 and the number of pairs, got {n_folds}")
    if not np.issubdtype(e1.dtype, np.floating):
        e1, e2 = e1.astype(np.float64), e2.astype(np.float64)
    same = same.astype(bool)
    diff = _l2_normalise(e1) - _l2_normalise(e2)
    # Exact float64 copy of the distances, so searchsorted compares like np.less does.
    distances = np.sum(np.square(diff), axis=1).astype(np.float64)
    if not np.isfinite(distances).all():
        raise ValueError("embeddings contain NaN or infinite values")
    folds = np.array_split(np.arange(distances.size), n_folds)
    accuracies, chosen = [], []
    for held_out in folds:
        train = np.ones(distances.size, dtype=bool)
        train[held_out] = False
        grid = INSIGHTFACE_THRESHOLDS if method == "grid" else _exact_candidates(distances[train])
        best = grid[int(np.argmax(_correct_counts(distances[train], same[train], grid)))]
        correct = _correct_counts(distances[held_out], same[held_out], np.array([best]))[0]
        accuracies.append(float(correct / held_out.size))
        chosen.append(float(best))
    return KFoldAccuracy(
        mean=float(np.mean(accuracies)),
        std=float(np.std(accuracies)),
        fold_accuracies=tuple(accuracies),
        fold_thresholds=tuple(chosen),
        method=method,
    )
