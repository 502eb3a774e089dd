"""ISO/IEC 30107-3 attack-detection metrics: hand-computed fixtures and brute-force checks."""

import dataclasses
import json

import numpy as np
import pytest
from sklearn.metrics import roc_curve as sk_roc_curve

from overspec.metrics import (
    acer,
    apcer_at_bpcer,
    apcer_bpcer_at_threshold,
    bpcer_at_apcer,
    detection_eer,
    equal_error_rate,
)

BONA_FIDE = np.array([0.1, 0.4, 0.6, 0.8, 0.9])
ATTACKS = {"print": np.array([0.2, 0.5, 0.7]), "replay": np.array([0.3, 0.95])}


def test_rates_at_threshold_hand_computed():
    rates = apcer_bpcer_at_threshold(BONA_FIDE, ATTACKS, 0.5)
    # print: 0.5 and 0.7 accepted (score >= 0.5) -> 2/3; replay: 0.95 -> 1/2; worst species is print.
    assert rates.apcer_per_species == {"print": 2 / 3, "replay": 0.5}
    assert (rates.apcer, rates.worst_species, rates.apcer_pooled) == (2 / 3, "print", 3 / 5)
    assert (rates.bpcer, rates.bona_fide_rejects) == (2 / 5, 2)  # 0.1 and 0.4 rejected
    assert rates.acer == pytest.approx((2 / 3 + 2 / 5) / 2, abs=1e-15)
    assert acer(BONA_FIDE, ATTACKS, 0.5) == rates.acer
    assert rates.n_attack_per_species == {"print": 3, "replay": 2} and rates.n_bona_fide == 5
    # Pooled attacks: one species, APCER = pooled share.
    pooled = apcer_bpcer_at_threshold(BONA_FIDE, np.r_[ATTACKS["print"], ATTACKS["replay"]], 0.5)
    assert (pooled.apcer, pooled.apcer_pooled) == (3 / 5, 3 / 5)


def test_bpcer_at_apcer_hand_computed_per_species():
    (point,) = bpcer_at_apcer(BONA_FIDE, ATTACKS, [0.5])
    # print may accept 1 of 3 (0.7): threshold just above 0.5; replay 1 of 2 (0.95): above 0.3.
    # Every species must satisfy it, so the threshold is just above 0.5.
    assert point.constrained == "apcer" and point.target == 0.5
    assert point.rates.threshold == np.nextafter(0.5, 1.0)
    assert point.rates.apcer_per_species == {"print": 1 / 3, "replay": 0.5}
    assert point.rates.bpcer == 2 / 5
    # With attacks pooled (5), two may be accepted: 0.95 and 0.7 -> threshold just above 0.5 too,
    # but at APCER 0.2 pooled only one (0.95) may: just above 0.7, rejecting bona fide 0.6 as well.
    pooled = np.r_[ATTACKS["print"], ATTACKS["replay"]]
    loose, tight = bpcer_at_apcer(BONA_FIDE, pooled, [0.5, 0.2])
    assert (loose.rates.apcer, loose.rates.bpcer) == (2 / 5, 2 / 5)
    assert (tight.rates.apcer, tight.rates.bpcer, tight.rates.threshold) == (1 / 5, 3 / 5, np.nextafter(0.7, 1))


def test_apcer_at_bpcer_hand_computed():
    low, high = apcer_at_bpcer(BONA_FIDE, ATTACKS, [0.2, 0.5])
    # BPCER <= 0.2: one bona fide may be rejected: threshold 0.4 (rejects only 0.1).
    assert (low.constrained, low.rates.threshold, low.rates.bpcer) == ("bpcer", 0.4, 0.2)
    assert low.rates.apcer_per_species == {"print": 2 / 3, "replay": 0.5}
    # BPCER <= 0.5: two may be rejected: threshold 0.6; print 1/3 (0.7), replay 1/2 (0.95) is worst.
    assert (high.rates.threshold, high.rates.bpcer, high.rates.apcer) == (0.6, 0.4, 0.5)
    assert (high.rates.worst_species, high.rates.apcer_pooled) == ("replay", 2 / 5)
    (everything,) = apcer_at_bpcer(BONA_FIDE, ATTACKS, [1.0])
    assert (everything.rates.apcer, everything.rates.bpcer) == (0.0, 1.0)


def _candidate_thresholds(*score_sets):
    values = np.unique(np.concatenate(score_sets))
    return np.r_[values, np.nextafter(values, np.inf), -np.inf, np.inf]


@pytest.mark.parametrize("decimals", [None, 2])
def test_operating_points_match_brute_force(decimals):
    rng = np.random.default_rng(0)
    bona_fide = rng.normal(1.0, 1.0, 204)
    species = {"a": rng.normal(-0.5, 1.0, 500), "b": rng.normal(0.3, 1.0, 300).astype(np.float32)}
    if decimals is not None:
        bona_fide = np.round(bona_fide, decimals)
        species = {k: np.round(v, decimals) for k, v in species.items()}
    candidates = _candidate_thresholds(bona_fide, *species.values())
    all_rates = [apcer_bpcer_at_threshold(bona_fide, species, t) for t in candidates]
    for point in bpcer_at_apcer(bona_fide, species, [0.01, 0.1, 0.2]):
        feasible = [r.bpcer for r in all_rates if r.apcer <= point.target]
        assert point.rates.bpcer == min(feasible)
        assert max(point.rates.apcer_per_species.values()) <= point.target
    for point in apcer_at_bpcer(bona_fide, species, [0.01, 0.1, 0.2]):
        feasible = [r.apcer for r in all_rates if r.bpcer <= point.target]
        assert point.rates.apcer == min(feasible)
        assert point.rates.bpcer <= point.target


def _madation(bona_fide, attack, targets):
    """MADation evaluate_mad_performance: sklearn roc_curve, nearest points (get_apcer_op/get_bpcer_op)."""
    labels = np.r_[np.ones(bona_fide.size), np.zeros(attack.size)]
    fpr, tpr, _ = sk_roc_curve(labels, np.r_[bona_fide, attack], pos_label=1)
    apcer, bpcer = fpr, 1 - tpr
    bpcer_at = [bpcer[np.argmin(abs(apcer - x))] for x in targets]
    apcer_at = []
    for x in targets:
        temp = abs(bpcer - x)
        apcer_at.append(apcer[np.where(temp == np.min(temp))[0][-1]])
    return bpcer_at, apcer_at


@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_nearest_matches_madation(decimals):
    rng = np.random.default_rng(3)
    for _ in range(3):
        bona_fide, attack = rng.normal(1.0, 1.0, 204), rng.normal(-0.5, 1.0, 1000)
        if decimals is not None:
            bona_fide, attack = np.round(bona_fide, decimals), np.round(attack, decimals)
        targets = [0.01, 0.1, 0.2]
        bpcer_at, apcer_at = _madation(bona_fide, attack, targets)
        assert [p.nearest for p in bpcer_at_apcer(bona_fide, attack, targets)] == pytest.approx(bpcer_at, abs=1e-15)
        assert [p.nearest for p in apcer_at_bpcer(bona_fide, attack, targets)] == pytest.approx(apcer_at, abs=1e-15)


def test_float32_thresholds_reproduce_counts():
    rng = np.random.default_rng(1)
    bona_fide = rng.normal(1.0, 1.0, 204).astype(np.float32)
    attack = rng.normal(0.0, 1.0, 1000).astype(np.float32)
    for point in bpcer_at_apcer(bona_fide, attack):
        accepted = np.count_nonzero(attack >= point.rates.threshold)  # numpy compares in float32 here
        assert accepted == point.rates.attack_accepts_per_species["attack"]
        assert np.count_nonzero(bona_fide < point.rates.threshold) == point.rates.bona_fide_rejects


def test_detection_eer_is_equal_error_rate_with_bona_fide_positive():
    assert detection_eer(np.array([0.5, 0.5, 0.9]), np.array([0.5, 0.1, 0.2])).eer == pytest.approx(2 / 9)
    rng = np.random.default_rng(2)
    bona_fide, attack = rng.normal(1, 1, 204), rng.normal(0, 1, 1000)
    assert detection_eer(bona_fide, attack) == equal_error_rate(bona_fide, attack)


def test_results_are_json_serialisable():
    (point,) = bpcer_at_apcer(BONA_FIDE, ATTACKS, 0.1)
    assert json.loads(json.dumps(dataclasses.asdict(point)))["rates"]["worst_species"] == "print"


def test_bad_input_raises():
    with pytest.raises(ValueError):
        apcer_bpcer_at_threshold(BONA_FIDE, {}, 0.5)
    with pytest.raises(ValueError):
        bpcer_at_apcer(BONA_FIDE, ATTACKS, [1.5])
    with pytest.raises(ValueError):
        apcer_bpcer_at_threshold(BONA_FIDE, {"x": np.array([np.nan])}, 0.5)
