"""Attack-detection error rates (MAD, PAD) in ISO/IEC 30107-3 terms.

Orientation: **bona fide is the positive class** and a **higher score means more bona fide**
(e.g. the softmax probability of "bona fide"); a presentation is **accepted as bona fide when
score >= threshold**. APCER(t) = share of attack presentations with score >= t; BPCER(t) = share
of bona fide presentations with score < t. ``attacks`` is either one array (all attacks pooled,
as most academic code does) or a mapping from attack-instrument species (PAI) name to its scores,
in which case APCER is the **maximum** over species (ISO/IEC 30107-3, OULU-NPU) and the
per-species values are reported too.

* **APCER/BPCER/ACER at a threshold** (`apcer_bpcer_at_threshold`, `acer`): the threshold must
  come from a development or source set; ACER = (APCER + BPCER)/2 (OULU-NPU).
* **BPCER@APCER = x** (`bpcer_at_apcer`), at-most semantics: the lowest threshold at which every
  species' APCER is <= x, so BPCER is as small as that allows (bob.pad.base ``bpcer20`` style; MAD
  papers use x = 1%, 10%, 20%). **APCER@BPCER = x** (`apcer_at_bpcer`): the highest threshold at
  which BPCER <= x. Achieved rates and counts are reported beside each value, and ``nearest`` holds
  the SMDD/MADation number (pooled attacks, nearest ROC point, may overshoot x) for literature tables.
* **D-EER** (`detection_eer`): the equal error rate with APCER as FAR and BPCER as FRR, under the
  conventions of :func:`overspec.metrics.roc.equal_error_rate` (report ``eer``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from overspec.metrics._scores import allowed_errors, as_scores
from overspec.metrics.roc import EqualErrorRate, equal_error_rate, roc_curve

MAD_OPERATING_POINTS = (0.01, 0.1, 0.2)
POOLED = "attack"

Attacks = np.ndarray | Mapping[str, np.ndarray]


def _species(attacks: Attacks) -> dict[str, np.ndarray]:
    """Attack scores per species, each sorted ascending in its own dtype; a bare array is one pooled species."""
    if isinstance(attacks, Mapping):
        if not attacks:
            raise ValueError("attacks mapping is empty")
        return {
            str(name): np.sort(as_scores(scores, f"attack[{name}]", keep_float32=True))
            for name, scores in attacks.items()
        }
    return {POOLED: np.sort(as_scores(attacks, "attack", keep_float32=True))}


def _accepted(sorted_scores: np.ndarray, threshold: float) -> int:
    # Compare in float64 so a threshold is never rounded to the scores' float32.
    return int(sorted_scores.size - np.searchsorted(sorted_scores.astype(np.float64), threshold, side="left"))


@dataclass(frozen=True)
class AttackErrorRates:
    """APCER (max over species), BPCER and ACER at one threshold, with per-species detail and counts."""

    threshold: float
    apcer: float
    bpcer: float
    acer: float
    apcer_pooled: float
    apcer_per_species: dict[str, float]
    worst_species: str
    attack_accepts_per_species: dict[str, int]
    bona_fide_rejects: int
    n_bona_fide: int
    n_attack_per_species: dict[str, int]


def _rates(bona_fide: np.ndarray, species: dict[str, np.ndarray], threshold: float) -> AttackErrorRates:
    accepts = {name: _accepted(scores, threshold) for name, scores in species.items()}
    sizes = {name: int(scores.size) for name, scores in species.items()}
    per_species = {name: accepts[name] / sizes[name] for name in species}
    worst = min(per_species, key=lambda name: (-per_species[name], name))  # ties: first name
    rejects = int(np.searchsorted(bona_fide, threshold, side="left"))
    bpcer = rejects / bona_fide.size
    return AttackErrorRates(
        threshold=float(threshold),
        apcer=per_species[worst],
        bpcer=bpcer,
        acer=(per_species[worst] + bpcer) / 2.0,
        apcer_pooled=sum(accepts.values()) / sum(sizes.values()),
        apcer_per_species=per_species,
        worst_species=worst,
        attack_accepts_per_species=accepts,
        bona_fide_rejects=rejects,
        n_bona_fide=int(bona_fide.size),
        n_attack_per_species=sizes,
    )


def apcer_bpcer_at_threshold(bona_fide: np.ndarray, attacks: Attacks, threshold: float) -> AttackErrorRates:
    """APCER, BPCER and ACER at a threshold fixed beforehand (development or source set)."""
    threshold = float(threshold)
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    return _rates(np.sort(as_scores(bona_fide, "bona fide")), _species(attacks), threshold)


def acer(bona_fide: np.ndarray, attacks: Attacks, threshold: float) -> float:
    """(APCER + BPCER)/2 at a threshold fixed beforehand; APCER is the max over species if given per species."""
    return apcer_bpcer_at_threshold(bona_fide, attacks, threshold).acer


@dataclass(frozen=True)
class AttackOperatingPoint:
    """A fixed-rate operating point: ``target`` bounds ``constrained`` ("apcer" or "bpcer") from above.

    ``nearest`` is the SMDD/MADation value of the other rate, for comparison with published tables
    (pooled attacks, nearest point of sklearn's default ROC, so the constrained rate may overshoot).
    """

    constrained: str
    target: float
    rates: AttackErrorRates
    nearest: float


def _literature_nearest(
    bona_fide: np.ndarray, species: dict[str, np.ndarray], constrained: str, target: float
) -> float:
    """MADation ``evaluate_mad_performance``: BPCER at the first argmin |APCER - x|,
    or APCER at the last argmin |BPCER - x|, on sklearn's default ROC of pooled attacks."""
    roc = roc_curve(bona_fide, np.concatenate([s.astype(np.float64) for s in species.values()]), drop_intermediate=True)
    apcer, bpcer = roc.far, 1.0 - roc.tar
    if constrained == "apcer":
        return float(bpcer[np.argmin(np.abs(apcer - target))])
    gap = np.abs(bpcer - target)
    return float(apcer[np.flatnonzero(gap == gap.min())[-1]])


def _at_most_apcer_threshold(sorted_scores: np.ndarray, rate: float) -> float:
    """Lowest threshold with (scores >= threshold) / n <= rate.

    That is the next value, in the scores' dtype, above the (k+1)-th largest score.
    """
    k = allowed_errors(rate, sorted_scores.size)
    if k >= sorted_scores.size:
        return -np.inf
    return float(np.nextafter(sorted_scores[sorted_scores.size - 1 - k], np.inf))


def bpcer_at_apcer(
    bona_fide: np.ndarray, attacks: Attacks, apcer_targets: float | Sequence[float] = MAD_OPERATING_POINTS
) -> list[AttackOperatingPoint]:
    """BPCER at the lowest threshold where APCER (every species) is at most each target."""
    bona_fide = np.sort(as_scores(bona_fide, "bona fide"))
    species = _species(attacks)
    points = []
    for target in np.atleast_1d(np.asarray(apcer_targets, dtype=np.float64)):
        threshold = max(_at_most_apcer_threshold(scores, float(target)) for scores in species.values())
        rates = _rates(bona_fide, species, threshold)
        nearest = _literature_nearest(bona_fide, species, "apcer", float(target))
        points.append(AttackOperatingPoint("apcer", float(target), rates, nearest))
    return points


def apcer_at_bpcer(
    bona_fide: np.ndarray, attacks: Attacks, bpcer_targets: float | Sequence[float] = MAD_OPERATING_POINTS
) -> list[AttackOperatingPoint]:
    """APCER at the highest threshold where BPCER is at most each target."""
    bona_fide = np.sort(as_scores(bona_fide, "bona fide"))
    species = _species(attacks)
    points = []
    for target in np.atleast_1d(np.asarray(bpcer_targets, dtype=np.float64)):
        k = allowed_errors(float(target), bona_fide.size)
        # Rejecting scores < the (k+1)-th smallest rejects at most k bona fides.
        threshold = float(bona_fide[k]) if k < bona_fide.size else np.inf
        rates = _rates(bona_fide, species, threshold)
        nearest = _literature_nearest(bona_fide, species, "bpcer", float(target))
        points.append(AttackOperatingPoint("bpcer", float(target), rates, nearest))
    return points


def detection_eer(bona_fide: np.ndarray, attack: np.ndarray) -> EqualErrorRate:
    """D-EER: APCER = BPCER crossing (pooled attacks); see ``equal_error_rate`` for the conventions."""
    return equal_error_rate(bona_fide, attack)
