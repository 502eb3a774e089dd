"""The paired bootstrap: weighted metrics by hand, p-values by hand, a known difference found and a zero
difference not (at the nominal rate)."""

from __future__ import annotations

import numpy as np
import pytest

from overspec.analysis.bootstrap import p_value, primary_replicates, resample_weights, summarize, weighted_primary
from overspec.metrics import bootstrap_ci, primary_metric

LABELS = np.array([0, 0, 1, 1])
RIGHT = np.array([0, 0, 1, 1])
HALF = np.array([0, 1, 1, 0])  # samples 0 and 2 right


@pytest.mark.parametrize(("weights", "top1", "recall"), [
    ([1, 1, 1, 1], 0.5, 0.5),
    ([2, 0, 1, 1], 0.75, (2 / 2 + 1 / 2) / 2),  # class 0: sample 0 twice, right; class 1: one right, one wrong
    ([1, 1, 0, 2], 0.25, (1 / 2 + 0 / 2) / 2),
    ([4, 0, 0, 0], 1.0, 1.0),  # class 1 absent from the replicate: the mean runs over class 0 only
])
def test_weighted_metrics_by_hand(weights, top1, recall):
    w = np.array([weights], dtype=float)
    assert weighted_primary("top1", w, LABELS, HALF)[0] == pytest.approx(top1, abs=1e-15)
    assert weighted_primary("mean_per_class_recall", w, LABELS, HALF)[0] == pytest.approx(recall, abs=1e-15)


def test_unit_weights_and_replicates_match_the_evaluation_metrics():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 300)
    pred = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 7, 300))
    for metric in ("top1", "mean_per_class_recall"):
        value, replicates = primary_replicates(metric, labels, {"m": pred}, 200, 3)["m"]
        assert value == pytest.approx(primary_metric(metric, pred, labels, 7), abs=1e-15)
        # the same seed gives the same resamples as the evaluation's own interval
        interval = bootstrap_ci(lambda p, y, m=metric: primary_metric(m, p, y, 7), pred, labels, n_resamples=200, seed=3)
        assert tuple(np.quantile(replicates, [0.025, 0.975])) == pytest.approx(interval, abs=1e-12)


def test_resample_weights_count_draws():
    chunks = list(resample_weights(50, 30, 0))
    weights = np.concatenate(chunks)
    assert weights.shape == (30, 50) and (weights.sum(axis=1) == 50).all() and (weights >= 0).all()
    assert np.array_equal(weights, np.concatenate(list(resample_weights(50, 30, 0))))  # seeded


def test_p_value_by_hand():
    # 1 of 4 replicates <= 0, 3 >= 0: p = 2 * min(1 + 1, 3 + 1) / (4 + 1)
    assert p_value(np.array([-0.1, 0.2, 0.3, 0.4]), 0.0) == pytest.approx(0.8)
    assert p_value(np.array([0.1, 0.2, 0.3, 0.4]), 0.0) == pytest.approx(2 / 5)
    assert p_value(np.zeros(9), 0.0) == 1.0  # all ties: no evidence either way
    assert p_value(np.array([0.9, 1.1, 1.2]), 1.0) == pytest.approx(2 * 2 / 4)


def _pair(metric, labels, model, baseline, resamples=400, seed=0):
    scored = primary_replicates(metric, labels, {"model": model, "baseline": baseline}, resamples, seed)
    (mine, mine_r), (base, base_r) = scored["model"], scored["baseline"]
    return summarize(mine - base, mine_r - base_r, 0.0)


def test_a_model_never_worse_on_any_sample():
    # model right everywhere, baseline right on half: every replicate's difference is its share of the other
    # half, > 0 unless all 40 draws miss it (2^-40), so no replicate is <= 0 and p = 2 (0 + 1) / (99 + 1)
    result = _pair("top1", np.arange(40) % 2, np.arange(40) % 2, np.zeros(40, dtype=int), resamples=99)
    assert result["estimate"] == 0.5 and result["significant"]
    assert result["p_value"] == pytest.approx(2 / 100)  # no replicate <= 0


def test_known_difference_is_significant():
    # 1000 samples: the baseline right on 500, the model on the same 500 and 300 more (+30 points)
    labels = np.zeros(1000, dtype=int)
    baseline = np.where(np.arange(1000) < 500, 0, 1)
    model = np.where(np.arange(1000) < 800, 0, 1)
    result = _pair("top1", labels, model, baseline)
    assert result["estimate"] == pytest.approx(0.3) and result["significant"]
    assert 0.26 < result["ci_low"] < 0.3 < result["ci_high"] < 0.34  # SE sqrt(0.3 * 0.7 / 1000) = 0.0145


def test_identical_predictions_are_not_significant():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 5, 500)
    pred = np.where(rng.random(500) < 0.7, labels, (labels + 1) % 5)
    for metric in ("top1", "mean_per_class_recall"):
        result = _pair(metric, labels, pred, pred.copy())
        assert result == {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0, "significant": False}


def _independent(seed, accuracy_model, accuracy_baseline, n=1000):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    model = np.where(rng.random(n) < accuracy_model, labels, (labels + 1) % 10)
    baseline = np.where(rng.random(n) < accuracy_baseline, labels, (labels + 1) % 10)
    return _pair("top1", labels, model, baseline, resamples=400, seed=seed)["significant"]


def test_equal_accuracy_false_positive_rate_is_nominal():
    # Two models right independently with probability 0.7 on 1000 samples: at alpha 0.05 over 200 seeds the
    # rejection count is Binomial(200, 0.05), mean 10, sd 3.1; accept 0.01..0.10 (mean +- ~3 sd).
    rate = np.mean([_independent(seed, 0.7, 0.7) for seed in range(200)])
    assert 0.01 <= rate <= 0.10, rate


def test_a_moderate_difference_is_usually_found():
    # +10 points between independent predictions on 1000 samples: SE ~0.019, z ~ 5.2, power ~0.9997
    rate = np.mean([_independent(seed, 0.80, 0.70) for seed in range(40)])
    assert rate >= 0.95, rate


def test_unknown_metric_and_mismatched_lengths():
    from overspec.errors import UserError

    with pytest.raises(UserError, match="Unknown primary metric"):
        weighted_primary("f1", np.ones((1, 4)), LABELS, HALF)
    with pytest.raises(ValueError, match="disagree"):
        weighted_primary("top1", np.ones((1, 3)), LABELS, HALF)
