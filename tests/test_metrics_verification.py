"""TAR@FAR (at-most and insightface nearest) and insightface's 10-fold pair accuracy."""

import numpy as np
import pytest
from sklearn.metrics import roc_curve as sk_roc_curve
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

from _reference_scores import recorded, recorded_case, verification_scores
from overspec.metrics import INSIGHTFACE_THRESHOLDS, kfold_verification_accuracy, tar_at_far

TARGETS = (1e-4, 1e-3, 3e-3, 1e-2, 0.05, 0.1, 0.29, 0.5)


def _brute_force_at_most(genuine, impostor, targets):
    """Best TAR over every ROC threshold whose FAR is at most each target."""
    labels = np.r_[np.ones(genuine.size), np.zeros(impostor.size)]
    fpr, tpr, _ = sk_roc_curve(labels, np.r_[genuine, impostor], drop_intermediate=False)
    return [tpr[fpr <= target].max() for target in targets]


def _insightface_nearest(genuine, impostor, targets):
    """insightface IJB: flip the default sklearn ROC and take the first minimum of |fpr - target|."""
    labels = np.r_[np.ones(genuine.size), np.zeros(impostor.size)]
    fpr, tpr, _ = sk_roc_curve(labels, np.r_[genuine, impostor])
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    picks = []
    for target in targets:
        _, index = min(list(zip(abs(fpr - target), range(len(fpr)))))
        picks.append((tpr[index], fpr[index]))
    return picks


def _check_against_references(genuine, impostor, targets):
    points = tar_at_far(genuine, impostor, targets)
    expected_tar = _brute_force_at_most(genuine, impostor, targets)
    expected_nearest = _insightface_nearest(genuine, impostor, targets)
    for point, tar, (tar_nearest, far_nearest) in zip(points, expected_tar, expected_nearest):
        assert point.tar == pytest.approx(tar, abs=1e-15)
        assert (point.tar_nearest, point.far_nearest) == (pytest.approx(tar_nearest, abs=1e-15), far_nearest)
    return points


@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_tar_at_far_at_most_matches_brute_force(decimals):
    for seed in range(3):
        genuine, impostor = verification_scores(seed, decimals=decimals, dtype=np.float32)
        for point in _check_against_references(genuine, impostor, TARGETS):
            assert point.achieved_far <= point.far_target
            # The reported threshold reproduces the counts under the rule score >= threshold.
            assert np.count_nonzero(impostor >= point.threshold) == point.false_accepts
            assert np.count_nonzero(genuine >= point.threshold) == point.true_accepts
            assert point.achieved_far == point.false_accepts / impostor.size


@pytest.mark.parametrize("decimals, offset", [(None, 0.0), (2, 0.005), (2, 0.0), (1, 0.0)])
def test_tar_at_far_nearest_matches_insightface(decimals, offset):
    # offset 0.005 after rounding: impostor-only ties; offset 0: ties within and across classes.
    for seed in range(3):
        genuine, impostor = verification_scores(seed, decimals=decimals)
        _check_against_references(genuine + offset, impostor, TARGETS + (1e-6, 0.0, 0.7, 1.0))


def test_tar_at_far_matches_references_on_small_degenerate_sets():
    rng = np.random.default_rng(11)
    for _ in range(200):
        genuine = rng.integers(0, 4, rng.integers(1, 6)).astype(float)
        impostor = rng.integers(0, 4, rng.integers(1, 12)).astype(float) - rng.integers(0, 2)
        _check_against_references(genuine, impostor, [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])


def test_tar_at_far_hand_computed_with_ties():
    genuine = np.array([0.95, 0.9, 0.8, 0.7, 0.6])
    impostor = np.array([0.9, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1])
    first, second, third = tar_at_far(genuine, impostor, [0.1, 0.2, 0.3])
    # FAR <= 0.1: one false accept allowed, the 0.9 impostor; genuine 0.9 ties it and is accepted.
    assert (first.tar, first.achieved_far, first.false_accepts) == (0.4, 0.1, 1)
    # FAR <= 0.2: two allowed, but the next impostors are a tied pair at 0.8: still only one.
    assert (second.tar, second.achieved_far, second.false_accepts) == (0.4, 0.1, 1)
    # Nearest-point (insightface) takes FAR 0.3 for target 0.2: |0.3-0.2| = |0.1-0.2|, ties go up.
    assert (second.far_nearest, second.tar_nearest) == (0.3, 1.0)
    assert (third.tar, third.achieved_far, third.false_accepts) == (1.0, 0.3, 3)


def test_tar_at_far_float32_partition_path_and_targets():
    genuine, impostor = verification_scores(5, n_gen=500, n_imp=300_000, dtype=np.float32)
    points = _check_against_references(genuine, impostor, (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1))
    assert points == tar_at_far(genuine, impostor)  # the IJB targets are the default
    assert [p.far_target for p in points] == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert points[0].false_accepts == 0 and points[1].false_accepts == 3  # floor(1e-5 * 300000)
    assert tar_at_far(genuine, impostor, 1.0)[0].threshold == -np.inf


def test_tar_at_far_deepens_the_sorted_tail_when_the_nearest_point_is_far():
    # All genuines above all impostors but one below them: the thinned ROC has no point between
    # FAR 0 and FAR 1, so the nearest pick for 0.6 lies beyond the first sorted tail.
    rng = np.random.default_rng(12)
    impostor = rng.uniform(0.0, 1.0, 50_000)
    genuine = np.r_[rng.uniform(2.0, 3.0, 99), -1.0]
    low, high = _check_against_references(genuine, impostor, [0.1, 0.6])
    assert (low.far_nearest, low.tar_nearest, high.far_nearest, high.tar_nearest) == (0.0, 0.99, 1.0, 1.0)
    assert (low.tar, low.achieved_far, high.tar, high.achieved_far) == (0.99, 0.1, 0.99, 0.6)


def test_tar_at_far_saturatedverification_scores():
    # Probabilities that saturate at exactly 0 and 1: two distinct scores, sklearn does not thin.
    genuine, impostor = np.array([1.0, 1.0, 1.0, 0.0]), np.array([0.0] * 7 + [1.0])
    _check_against_references(genuine, impostor, [0.0, 0.1, 0.5, 0.9, 1.0])


def _bob_points(case):
    return [(point["far_target"], point) for point in case["points"]]


def test_bob_measure_reference_thresholds():
    # bob.measure.far_threshold and farfrr, recorded by tests/reference_values/make_bob_measure.py
    # (bob.measure pins numpy<2, so it cannot share the test environment). Both choose the
    # largest achieved FAR at most the target, so the achieved FARs must be equal.
    bob = recorded("bob_measure")
    # bob.measure tests/test_error.py: negatives 0..9, positives 10..19 -> achieved FAR = floor(10 f)/10.
    negatives, positives = np.arange(10.0), np.arange(10.0, 20.0)
    case = recorded_case(bob, "far_threshold_bob_separable", positives, negatives)
    assert len(case["points"]) == 21
    for far, expected in _bob_points(case):
        point = tar_at_far(positives, negatives, far)[0]
        assert point.achieved_far == np.floor(10 * far + 1e-9) / 10 == pytest.approx(expected["far"], abs=1e-15)
        assert point.tar == 1 - expected["frr"] == 1.0
    # Tied negatives: FAR 0.5 may accept the four 1.0s (4/9); FAR 0.4 may not, so none at all.
    tied = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0])
    assert tar_at_far(positives / 10, tied, 0.5)[0].achieved_far == 4 / 9
    assert tar_at_far(positives / 10, tied, 0.4)[0].achieved_far == 0.0
    case = recorded_case(bob, "far_threshold_bob_tied", positives / 10, tied)
    assert [far for far, _ in _bob_points(case)] == [0.4, 0.5]
    for far, expected in _bob_points(case):
        point = tar_at_far(positives / 10, tied, far)[0]
        assert (point.achieved_far, point.tar) == (pytest.approx(expected["far"], abs=1e-15), 1 - expected["frr"])
    extra_accepts = []
    for decimals in (None, 1):
        genuine, impostor = verification_scores(7, n_gen=300, n_imp=1000, decimals=decimals)
        case = recorded_case(bob, f"far_threshold_verification_scores_seed7_decimals{decimals}", genuine, impostor)
        assert [far for far, _ in _bob_points(case)] == [0.001, 0.01, 0.1, 0.25]
        for far, expected in _bob_points(case):
            point = tar_at_far(genuine, impostor, far)[0]
            assert point.achieved_far == pytest.approx(expected["far"], abs=1e-15)
            # bob's accept rule is ours: its FAR and FRR recount under score >= its threshold.
            assert np.mean(impostor >= expected["threshold"]) == pytest.approx(expected["far"], abs=1e-15)
            assert np.mean(genuine < expected["threshold"]) == pytest.approx(expected["frr"], abs=1e-15)
            # bob sets its threshold on the last accepted impostor; tar_at_far on the lowest score
            # with the same false accepts, so it also accepts the genuines between the two.
            assert point.threshold <= expected["threshold"]
            assert point.tar >= 1 - expected["frr"] - 1e-15
            assert point.tar == np.mean(genuine >= point.threshold)
            extra_accepts.append(round((point.tar - (1 - expected["frr"])) * genuine.size))
    # Where impostors lie apart, the two differ: 27 more genuines (TAR 0.39 vs bob's 0.30) at FAR 0.001.
    assert extra_accepts == [27, 1, 0, 0, 9, 0, 0, 0]


def _insightface_10fold(embeddings1, embeddings2, issame, nrof_folds=10):
    """insightface verification.py calculate_roc/calculate_accuracy, written out plainly."""
    embeddings1, embeddings2 = normalize(embeddings1), normalize(embeddings2)
    thresholds = np.arange(0, 4, 0.01)
    dist = np.sum(np.square(embeddings1 - embeddings2), 1)
    accuracy, best = [], []
    for train_set, test_set in KFold(n_splits=nrof_folds, shuffle=False).split(np.arange(len(issame))):
        acc_train = np.zeros(len(thresholds))
        for i, threshold in enumerate(thresholds):
            predict = np.less(dist[train_set], threshold)
            actual = issame[train_set]
            tp = np.sum(np.logical_and(predict, actual))
            tn = np.sum(np.logical_and(np.logical_not(predict), np.logical_not(actual)))
            acc_train[i] = float(tp + tn) / dist[train_set].size
        chosen = thresholds[np.argmax(acc_train)]
        predict = np.less(dist[test_set], chosen)
        actual = issame[test_set]
        tp = np.sum(np.logical_and(predict, actual))
        tn = np.sum(np.logical_and(np.logical_not(predict), np.logical_not(actual)))
        accuracy.append(float(tp + tn) / dist[test_set].size)
        best.append(chosen)
    return np.mean(accuracy), np.std(accuracy), accuracy, best


def _pairs(seed, n_pairs, dim=16, dtype=np.float32, noise=1.2):
    rng = np.random.default_rng(seed)
    issame = rng.random(n_pairs) < 0.5
    first = rng.standard_normal((n_pairs, dim))
    second = np.where(
        issame[:, None], first + noise * rng.standard_normal((n_pairs, dim)), rng.standard_normal((n_pairs, dim))
    )
    return (3.0 * first).astype(dtype), (0.5 * second).astype(dtype), issame


@pytest.mark.parametrize("n_pairs, dtype", [(6000, np.float32), (1003, np.float64), (700, np.float32)])
def test_kfold_matches_insightface(n_pairs, dtype):
    e1, e2, issame = _pairs(n_pairs, n_pairs, dtype=dtype)
    mean, std, accuracies, thresholds = _insightface_10fold(e1, e2, issame)
    result = kfold_verification_accuracy(e1, e2, issame)
    assert result.fold_accuracies == pytest.approx(accuracies, abs=0)
    assert result.fold_thresholds == pytest.approx(thresholds, abs=0)
    assert (result.mean, result.std) == (pytest.approx(mean, abs=1e-15), pytest.approx(std, abs=1e-15))
    assert 0.6 < result.mean < 1.0


def test_kfold_hand_computed_two_folds():
    # Unit vectors at angles giving squared distances 2 - 2 cos: pairs 0,1 (fold 1) and 2,3 (fold 2).
    angles = np.array([0.1, 2.0, 0.2, 1.5])
    e1 = np.tile([[1.0, 0.0]], (4, 1))
    e2 = np.c_[np.cos(angles), np.sin(angles)]
    issame = np.array([True, False, True, False])
    distances = 2 - 2 * np.cos(angles)  # 0.00999.., 2.832, 0.0399, 1.858
    result = kfold_verification_accuracy(e1, e2, issame, n_folds=2)
    # Fold 0 trains on pairs 2, 3: the first perfect grid threshold is 0.04 (> 0.0399); it splits 0, 1.
    # Fold 1 trains on pairs 0, 1: the first perfect one is 0.01 (> 0.00999), which rejects pair 2.
    assert result.fold_thresholds == (0.04, 0.01)
    assert result.fold_accuracies == (1.0, 0.5)
    assert (result.mean, result.std) == (0.75, 0.25)
    # Exact mode takes the midpoint between the training distances and gets both folds right.
    exact = kfold_verification_accuracy(e1, e2, issame, n_folds=2, method="exact")
    assert exact.fold_thresholds == pytest.approx(
        ((distances[2] + distances[3]) / 2, (distances[0] + distances[1]) / 2)
    )
    assert exact.fold_accuracies == (1.0, 1.0)


def test_kfold_exact_never_worse_on_training_folds():
    e1, e2, issame = _pairs(3, 1200, dtype=np.float64, noise=2.0)
    grid = kfold_verification_accuracy(e1, e2, issame)
    exact = kfold_verification_accuracy(e1, e2, issame, method="exact")
    assert grid.method == "grid" and exact.method == "exact"
    assert set(grid.fold_thresholds) <= set(np.round(INSIGHTFACE_THRESHOLDS, 12)) | set(INSIGHTFACE_THRESHOLDS)
    assert abs(grid.mean - exact.mean) < 0.02


def test_kfold_rejects_bad_input():
    e1, e2, issame = _pairs(0, 20)
    with pytest.raises(ValueError):
        kfold_verification_accuracy(e1, e2[:-1], issame)
    with pytest.raises(ValueError):
        kfold_verification_accuracy(e1, e2, issame[:-1])
    with pytest.raises(ValueError):
        kfold_verification_accuracy(e1, e2, issame, method="best")
    with pytest.raises(ValueError):
        kfold_verification_accuracy(e1, e2, issame.astype(int) * 2)
