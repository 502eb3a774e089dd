"""Exact ROC, AUC, EER conventions and HTER against hand-computed fixtures, sklearn, pyeer and bob.measure."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from _reference_scores import GENUINE, IMPOSTOR, recorded, recorded_case, roc_scores
from overspec.metrics import (
    auc,
    equal_error_rate,
    error_rates_at_threshold,
    hter,
    hter_at_oracle_threshold,
    roc_curve,
)


def _sklearn(genuine, impostor, drop_intermediate):
    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    return sk_roc_curve(labels, np.r_[genuine, impostor], drop_intermediate=drop_intermediate)


def test_roc_fixture_hand_computed():
    roc = roc_curve(GENUINE, IMPOSTOR)
    np.testing.assert_array_equal(roc.thresholds, [np.inf, 0.9, 0.5, 0.2, 0.1])
    np.testing.assert_array_equal(roc.false_accepts, [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(roc.true_accepts, [0, 1, 3, 3, 3])
    # At the tie (threshold 0.5) the accept rule score >= threshold gives FAR 1/3, TAR 1.
    assert (roc.far[2], roc.tar[2]) == (1 / 3, 1.0)


@pytest.mark.parametrize("decimals", [None, 1, 2])
@pytest.mark.parametrize("drop", [False, True])
def test_roc_matches_sklearn(decimals, drop):
    genuine, impostor = roc_scores(0, decimals=decimals)
    fpr, tpr, thresholds = _sklearn(genuine, impostor, drop)
    roc = roc_curve(genuine, impostor, drop_intermediate=drop)
    np.testing.assert_array_equal(roc.thresholds, thresholds)
    np.testing.assert_array_equal(roc.far, fpr)
    np.testing.assert_array_equal(roc.tar, tpr)


def test_auc_fixture_and_sklearn_with_ties():
    # Pairs won by the genuine: 0.5 vs {0.1, 0.2} twice, 0.9 vs all three, plus two ties at 0.5.
    assert auc(GENUINE, IMPOSTOR) == pytest.approx(8 / 9, abs=1e-15)
    for decimals in (None, 1):
        for n_gen, n_imp in ((204, 1000), (900, 50)):  # both branches: sort the smaller set
            genuine, impostor = roc_scores(1, n_gen, n_imp, decimals)
            labels = np.r_[np.ones(n_gen), np.zeros(n_imp)]
            expected = roc_auc_score(labels, np.r_[genuine, impostor])
            assert auc(genuine, impostor) == pytest.approx(expected, abs=1e-12)


def test_eer_three_conventions_on_fixture():
    result = equal_error_rate(GENUINE, IMPOSTOR)
    assert result.eer == pytest.approx(2 / 9, abs=1e-15)  # interpolated crossing
    assert result.midpoint == pytest.approx(1 / 6, abs=1e-15)  # (FAR+FRR)/2 at argmin |FAR-FRR|
    assert result.nearest_far == pytest.approx(1 / 3, abs=1e-15)  # SMDD/MADation FAR at argmin
    assert (result.low, result.high) == (0.0, pytest.approx(1 / 3, abs=1e-15))
    assert result.threshold == 0.5
    assert (result.n_genuine, result.n_impostor) == (3, 3)


def test_eer_single_outlier():
    # 204 bona fides all above 1,000 attacks except one outlier below them all (notes §6.2).
    rng = np.random.default_rng(2)
    genuine = np.r_[rng.uniform(0.6, 1.0, 203), 0.0]
    impostor = rng.uniform(0.1, 0.4, 1000)
    result = equal_error_rate(genuine, impostor)
    assert result.eer == pytest.approx(1 / 204, abs=1e-15)
    assert result.midpoint == pytest.approx((5 / 1000 + 1 / 204) / 2, abs=1e-15)
    assert result.nearest_far == 0.0  # the "0.00% D-EER" artefact of the thinned-ROC convention
    assert (result.low, result.high) == (pytest.approx(4 / 1000), pytest.approx(1 / 204))
    oracle = hter_at_oracle_threshold(genuine, impostor)
    assert (oracle.far, oracle.frr, oracle.hter) == (0.0, 1 / 204, pytest.approx(1 / 408, abs=1e-15))


def test_eer_exact_crossing_and_bracket_contains_eer():
    genuine = np.array([0.3, 0.6, 0.8, 0.9])
    impostor = np.array([0.1, 0.2, 0.4, 0.7])
    # At threshold 0.6: FAR 1/4 (0.7 accepted), FRR 1/4 (0.3 rejected): an exact crossing.
    result = equal_error_rate(genuine, impostor)
    assert (result.eer, result.low, result.high, result.midpoint) == (0.25, 0.25, 0.25, 0.25)
    for seed in range(20):
        g, i = roc_scores(seed, 50 + seed, 300, decimals=1 if seed % 2 else None)
        r = equal_error_rate(g, i)
        assert r.low <= r.eer <= r.high


def _smdd_style(genuine, impostor):
    """SMDD/MADation/FoundPAD: sklearn roc_curve (default thinning), index argmin |tpr + fpr - 1|."""
    fpr, tpr, thresholds = _sklearn(genuine, impostor, True)
    index = np.nanargmin(np.abs(tpr + fpr - 1.0))
    return fpr[index], 1 - tpr[index], thresholds[index]


@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_nearest_eer_and_oracle_hter_match_literature_code(decimals):
    for seed in range(5):
        genuine, impostor = roc_scores(seed, decimals=decimals)
        fpr, fnr, threshold = _smdd_style(genuine, impostor)
        assert equal_error_rate(genuine, impostor).nearest_far == fpr
        oracle = hter_at_oracle_threshold(genuine, impostor)
        assert oracle.threshold == threshold
        assert oracle.far == pytest.approx(fpr, abs=1e-15)
        assert oracle.hter == pytest.approx((fpr + fnr) / 2, abs=1e-15)


@pytest.mark.parametrize("decimals", [None, 2])
def test_eer_bracket_matches_pyeer(decimals):
    # pyeer is in the test extra. Its eer_info/report modules import pkg_resources (gone from
    # current setuptools); eer_stats, which holds the functions get_eer_stats calls, imports numpy only.
    from pyeer import eer_stats

    for seed in range(5):
        genuine, impostor = roc_scores(seed, decimals=decimals)
        _, fmr, fnmr = eer_stats.calculate_roc(genuine, impostor)
        _, low, high, eer = eer_stats.get_eer_values(fmr, fnmr)
        result = equal_error_rate(genuine, impostor)
        assert (result.low, result.high) == (pytest.approx(low, abs=1e-15), pytest.approx(high, abs=1e-15))
        assert (result.low + result.high) / 2 == pytest.approx(eer, abs=1e-15)


def test_eer_midpoint_matches_bob_measure():
    # bob.measure.eer on these scores, recorded by tests/reference_values/make_bob_measure.py
    # (bob.measure pins numpy<2, so it cannot share the test environment).
    bob = recorded("bob_measure")
    case = recorded_case(bob, "eer_tie_fixture", GENUINE, IMPOSTOR)
    assert case["eer"] == pytest.approx(equal_error_rate(GENUINE, IMPOSTOR).midpoint, abs=1e-15)
    for seed in range(5):
        genuine, impostor = roc_scores(seed)
        case = recorded_case(bob, f"eer_roc_scores_seed{seed}", genuine, impostor)
        assert case["eer"] == pytest.approx(equal_error_rate(genuine, impostor).midpoint, abs=1e-12)


def test_error_rates_at_threshold_accept_rule():
    at_tie = error_rates_at_threshold(GENUINE, IMPOSTOR, 0.5)
    assert (at_tie.far, at_tie.frr, at_tie.false_accepts, at_tie.false_rejects) == (1 / 3, 0.0, 1, 0)
    above = error_rates_at_threshold(GENUINE, IMPOSTOR, 0.50001)
    assert (above.far, above.frr) == (0.0, 2 / 3)
    assert hter(GENUINE, IMPOSTOR, 0.50001) == pytest.approx(1 / 3, abs=1e-15)
    with pytest.raises(ValueError):
        hter(GENUINE, IMPOSTOR, float("nan"))


def test_oracle_threshold_is_optimistic_against_a_dev_threshold():
    dev_genuine, dev_impostor = roc_scores(10)
    test_genuine, test_impostor = roc_scores(11)
    dev_threshold = hter_at_oracle_threshold(dev_genuine, dev_impostor).threshold
    oracle = hter_at_oracle_threshold(test_genuine, test_impostor)
    fixed = error_rates_at_threshold(test_genuine, test_impostor, dev_threshold)
    brute = min(hter(test_genuine, test_impostor, t) for t in np.r_[test_genuine, test_impostor])
    assert brute <= oracle.hter
    assert oracle.hter != fixed.hter


@pytest.mark.parametrize(
    "genuine, impostor",
    [([], [0.1]), ([0.1, np.nan], [0.2]), ([[0.1]], [0.2]), ([0.1], [np.inf]), (["a"], [0.1])],
)
def test_bad_scores_raise(genuine, impostor):
    with pytest.raises(ValueError):
        roc_curve(np.array(genuine), np.array(impostor))
