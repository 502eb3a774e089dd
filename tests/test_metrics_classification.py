"""Classification metrics against hand-computed values and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score

from overspec.errors import UserError
from overspec.metrics import (
    accuracy,
    bootstrap_ci,
    mean_per_class_recall,
    primary_metric,
    topk_accuracy,
)


def test_accuracy_hand_computed():
    assert accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75


def test_topk_hand_computed():
    logits = np.array(
        [
            [0.1, 0.7, 0.2],  # true 2: rank 1
            [0.9, 0.05, 0.05],  # true 1: rank 1 (tie with class 2, lower index wins)
            [0.3, 0.3, 0.4],  # true 1: rank 2 (class 2 higher, class 0 tied with lower index)
            [0.5, 0.2, 0.3],  # true 0: rank 0
        ]
    )
    labels = np.array([2, 1, 1, 0])
    assert topk_accuracy(logits, labels, 1) == 0.25
    assert topk_accuracy(logits, labels, 2) == 0.75
    assert topk_accuracy(logits, labels, 3) == 1.0
    assert topk_accuracy(logits, labels, 10) == 1.0


def test_topk_ties_follow_stable_argsort():
    rng = np.random.default_rng(1)
    logits = rng.integers(0, 4, size=(500, 7)).astype(np.float32)  # heavy ties
    labels = rng.integers(0, 7, size=500)
    order = np.argsort(-logits, axis=1, kind="stable")
    for k in (1, 2, 5):
        expected = np.mean([labels[i] in order[i, :k] for i in range(500)])
        assert topk_accuracy(logits, labels, k) == pytest.approx(expected, abs=0)


def test_topk_matches_sklearn_without_ties():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((300, 10))
    labels = rng.integers(0, 10, size=300)
    for k in (1, 3, 5):
        expected = top_k_accuracy_score(labels, logits, k=k, labels=np.arange(10))
        assert topk_accuracy(logits, labels, k) == pytest.approx(expected, abs=1e-15)


def test_topk_rejects_bad_input():
    with pytest.raises(ValueError):
        topk_accuracy(np.zeros((2, 3)), np.array([0, 3]), 1)
    with pytest.raises(ValueError):
        topk_accuracy(np.zeros((2, 3)), np.array([0, 1]), 0)
    with pytest.raises(ValueError):
        topk_accuracy(np.array([[np.nan, 0, 0]]), np.array([0]), 1)


def test_mean_per_class_recall_hand_computed_and_absent_classes():
    labels = np.array([0, 0, 0, 0, 1, 1, 3])  # class 2 absent from labels
    pred = np.array([0, 0, 0, 1, 1, 2, 2])
    # class 0: 3/4, class 1: 1/2, class 3: 0/1 -> mean 5/12; predicted-only class 2 ignored
    assert mean_per_class_recall(pred, labels) == pytest.approx(5 / 12, abs=1e-15)
    assert mean_per_class_recall(pred, labels, n_classes=5) == pytest.approx(5 / 12, abs=1e-15)
    with pytest.raises(ValueError):
        mean_per_class_recall(pred, labels, n_classes=3)


def test_mean_per_class_recall_matches_sklearn_balanced_accuracy():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 12, size=400)
    pred = np.where(rng.random(400) < 0.6, labels, rng.integers(0, 12, size=400))
    assert mean_per_class_recall(pred, labels) == pytest.approx(balanced_accuracy_score(labels, pred), abs=1e-12)


def test_bootstrap_ci_deterministic_and_matches_loop():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 5, size=200)
    pred = np.where(rng.random(200) < 0.7, labels, (labels + 1) % 5)
    ci = bootstrap_ci(accuracy, pred, labels, n_resamples=300, seed=7)
    assert ci == bootstrap_ci(accuracy, pred, labels, n_resamples=300, seed=7)
    assert ci != bootstrap_ci(accuracy, pred, labels, n_resamples=300, seed=8)
    # Same index stream as one vectorised draw: check against an explicit re-computation.
    idx = np.random.default_rng(7).integers(0, 200, size=(300, 200))
    stats = [np.mean(pred[i] == labels[i]) for i in idx]
    assert ci == pytest.approx(tuple(np.quantile(stats, [0.025, 0.975])), abs=1e-15)
    point = accuracy(pred, labels)
    assert ci[0] < point < ci[1]


def test_bootstrap_ci_resamples_2d_rows_jointly():
    logits = np.eye(4)[[0, 1, 2, 3, 0, 1]] * 2.0
    labels = np.array([0, 1, 2, 3, 0, 1])
    assert bootstrap_ci(lambda lg, lb: topk_accuracy(lg, lb, 1), logits, labels, n_resamples=50) == (1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_ci(accuracy, labels, labels[:-1])


def test_primary_metric_dispatch():
    labels = np.array([0, 0, 0, 1])
    pred = np.array([0, 0, 0, 0])
    assert primary_metric("top1", pred, labels, 2) == 0.75
    assert primary_metric("mean_per_class_recall", pred, labels, 2) == 0.5
    with pytest.raises(UserError, match="top5"):
        primary_metric("top5", pred, labels, 2)
