"""Exact ROC, AUC, equal error rates and half total error rates for two-class scores.

Orientation: ``genuine`` scores belong to the positive class (a mated pair; a bona fide
presentation) and a **higher score means more genuine**. A score is **accepted when
score >= threshold**. False accept rate FAR(t) = share of impostor scores >= t; false reject rate
FRR(t) = share of genuine scores < t; TAR = 1 - FRR. Pass distances negated.

* **ROC** (`roc_curve`): one sort of all scores, ties collapsed, one point per distinct score
  plus a first point at threshold +inf (nothing accepted), exactly the points of
  ``sklearn.metrics.roc_curve(drop_intermediate=False)``. ``drop_intermediate=True`` reproduces
  sklearn's default thinning, which the literature's "nearest point" numbers depend on.
* **AUC** (`auc`): Mann-Whitney probability that a genuine outscores an impostor, ties counting
  one half; equal to the trapezoidal area under the exact ROC (``roc_auc_score``).
* **EER** (`equal_error_rate`): the primary value ``eer`` is the crossing of FAR and FRR on the
  ROC with straight segments between its points (what a randomised threshold between two
  adjacent scores achieves). Also given, named: the FVC2000 bracket ``[low, high]`` of pyeer
  (its EER is the bracket's midpoint); ``midpoint`` = (FAR+FRR)/2 at the point where |FAR-FRR| is
  smallest (bob.measure ``eer``); ``nearest_far`` = FAR at argmin |FAR-FRR| on sklearn's thinned
  ROC (the SMDD/MADation/FoundPAD "EER"). On genuine {.5,.5,.9}, impostor {.5,.1,.2} these are
  2/9, [0, 1/3], 1/6 and 1/3.
* **HTER** (`error_rates_at_threshold`, `hter`): (FAR + FRR)/2 at a threshold passed in, which
  must come from a development or source set. `hter_at_oracle_threshold` instead picks the
  threshold on the scores it evaluates (argmin |TAR + FAR - 1| on sklearn's thinned ROC, as
  SSDG/FoundPAD ``performances_cross_db`` do): an optimistic number, only for literature tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from overspec.metrics._scores import as_scores


@dataclass(frozen=True)
class Roc:
    """ROC points in order of descending threshold; point 0 is threshold +inf (nothing accepted)."""

    thresholds: np.ndarray
    false_accepts: np.ndarray
    true_accepts: np.ndarray
    n_genuine: int
    n_impostor: int

    @property
    def far(self) -> np.ndarray:
        return self.false_accepts / self.n_impostor

    @property
    def tar(self) -> np.ndarray:
        return self.true_accepts / self.n_genuine

    @property
    def frr(self) -> np.ndarray:
        return (self.n_genuine - self.true_accepts) / self.n_genuine


def roc_curve(genuine: np.ndarray, impostor: np.ndarray, *, drop_intermediate: bool = False) -> Roc:
    """Exact ROC from one sort with tied scores collapsed into one point (accept score >= threshold)."""
    genuine, impostor = as_scores(genuine, "genuine"), as_scores(impostor, "impostor")
    scores = np.concatenate([genuine, impostor])
    order = np.argsort(scores, kind="stable")[::-1]
    ranked = scores[order]
    true_accepts = np.cumsum(order < genuine.size, dtype=np.int64)
    false_accepts = np.arange(1, ranked.size + 1, dtype=np.int64) - true_accepts
    # The last position of each run of equal scores is the point for that threshold.
    last_of_run = np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]), ranked.size - 1]
    thresholds = ranked[last_of_run]
    false_accepts, true_accepts = false_accepts[last_of_run], true_accepts[last_of_run]
    if drop_intermediate and thresholds.size > 2:
        # sklearn's rule: drop a point when both counts step by the same amount before and after it.
        keep = np.r_[True, (np.diff(false_accepts, 2) != 0) | (np.diff(true_accepts, 2) != 0), True]
        thresholds, false_accepts, true_accepts = thresholds[keep], false_accepts[keep], true_accepts[keep]
    return Roc(
        thresholds=np.r_[np.inf, thresholds],
        false_accepts=np.r_[0, false_accepts],
        true_accepts=np.r_[0, true_accepts],
        n_genuine=int(genuine.size),
        n_impostor=int(impostor.size),
    )


def auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """P(genuine > impostor) + P(tie)/2, by sorting the smaller set and counting with searchsorted."""
    genuine, impostor = as_scores(genuine, "genuine"), as_scores(impostor, "impostor")
    if genuine.size <= impostor.size:
        reference, probes, probes_are_genuine = np.sort(genuine), impostor, False
    else:
        reference, probes, probes_are_genuine = np.sort(impostor), genuine, True
    below = np.searchsorted(reference, probes, side="left").sum(dtype=np.int64)
    not_above = np.searchsorted(reference, probes, side="right").sum(dtype=np.int64)
    ties = int(not_above - below)
    # Pairs where the genuine score wins, counted from whichever side was searched.
    wins = int(below) if probes_are_genuine else int(reference.size * probes.size - not_above)
    return float((2 * wins + ties) / (2 * genuine.size * impostor.size))


@dataclass(frozen=True)
class EqualErrorRate:
    """EER under several named conventions; ``eer`` (interpolated crossing) is the one to report."""

    eer: float
    low: float
    high: float
    midpoint: float
    nearest_far: float
    threshold: float
    n_genuine: int
    n_impostor: int


def _scaled_gap(roc: Roc) -> np.ndarray:
    """(FRR - FAR) * n_genuine * n_impostor as exact integers; strictly decreasing along the ROC."""
    return (roc.n_genuine - roc.true_accepts) * roc.n_impostor - roc.false_accepts * roc.n_genuine


def _oracle_index(thinned: Roc) -> int:
    """sklearn-style argmin |TAR + FAR - 1| (first occurrence) on a thinned ROC."""
    return int(np.argmin(np.abs(thinned.tar + thinned.far - 1.0)))


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> EqualErrorRate:
    """EER: interpolated FAR = FRR crossing, plus the FVC2000 bracket and the midpoint/nearest variants."""
    roc = roc_curve(genuine, impostor)
    far, frr, gap = roc.far, roc.frr, _scaled_gap(roc)
    # gap starts at +n_g*n_i (threshold +inf) and ends at -n_g*n_i (everything accepted).
    cross = int(np.argmax(gap <= 0))
    if gap[cross] == 0:
        eer = float(far[cross])
    else:
        a, b, c, e = far[cross - 1], frr[cross - 1], far[cross], frr[cross]
        t = (b - a) / ((b - a) - (e - c))
        eer = float(a + t * (c - a))
    # FVC2000 / pyeer: of the two points flanking the crossing, the one with the smaller FAR + FRR.
    above = cross if gap[cross] == 0 else cross - 1
    below = above if gap[above] == 0 or above == gap.size - 1 else above + 1
    if far[below] + frr[below] <= far[above] + frr[above]:
        low, high = sorted((float(frr[below]), float(far[below])))
    else:
        low, high = sorted((float(far[above]), float(frr[above])))
    nearest = int(np.argmin(np.abs(gap)))
    thinned = roc_curve(genuine, impostor, drop_intermediate=True)
    return EqualErrorRate(
        eer=eer,
        low=low,
        high=high,
        midpoint=float((far[nearest] + frr[nearest]) / 2.0),
        nearest_far=float(thinned.far[_oracle_index(thinned)]),
        threshold=float(roc.thresholds[nearest]),
        n_genuine=roc.n_genuine,
        n_impostor=roc.n_impostor,
    )


@dataclass(frozen=True)
class ErrorRates:
    """Error rates at one threshold (accept score >= threshold), with the counts behind them."""

    threshold: float
    far: float
    frr: float
    hter: float
    false_accepts: int
    false_rejects: int
    n_genuine: int
    n_impostor: int


def _error_rates(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> ErrorRates:
    false_accepts = int(np.count_nonzero(impostor >= threshold))
    false_rejects = int(np.count_nonzero(genuine < threshold))
    far, frr = false_accepts / impostor.size, false_rejects / genuine.size
    return ErrorRates(
        threshold=float(threshold),
        far=far,
        frr=frr,
        hter=(far + frr) / 2.0,
        false_accepts=false_accepts,
        false_rejects=false_rejects,
        n_genuine=int(genuine.size),
        n_impostor=int(impostor.size),
    )


def error_rates_at_threshold(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> ErrorRates:
    """FAR, FRR and HTER at a threshold fixed beforehand (from a development or source set)."""
    threshold = float(threshold)
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    return _error_rates(as_scores(genuine, "genuine"), as_scores(impostor, "impostor"), threshold)


def hter(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> float:
    """Half total error rate (FAR + FRR)/2 at a threshold fixed beforehand."""
    return error_rates_at_threshold(genuine, impostor, threshold).hter


def hter_at_oracle_threshold(genuine: np.ndarray, impostor: np.ndarray) -> ErrorRates:
    """Error rates at the EER threshold chosen on these same scores (literature convention, optimistic).

    Reproduces SSDG/FoundPAD ``performances_cross_db``: threshold = sklearn ``roc_curve``
    (default thinning) point minimising |TAR + FAR - 1|, first occurrence.
    """
    genuine, impostor = as_scores(genuine, "genuine"), as_scores(impostor, "impostor")
    thinned = roc_curve(genuine, impostor, drop_intermediate=True)
    return _error_rates(genuine, impostor, thinned.thresholds[_oracle_index(thinned)])
