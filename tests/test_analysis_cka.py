"""Linear CKA against hand-computed values and its invariances."""

from __future__ import annotations

import numpy as np
import pytest

from overspec.analysis.cka import linear_cka


def test_hand_computed_one_feature_is_squared_pearson():
    # centred x = [-1.5, -0.5, 0.5, 1.5], y = [-1.5, 0.5, -0.5, 1.5]: x.y = 4, |x|^2 = |y|^2 = 5 -> (4/5)^2
    assert linear_cka([[1], [2], [3], [4]], [[1], [3], [2], [4]]) == pytest.approx(0.64, abs=1e-12)


def test_hand_computed_two_features_against_one():
    # X is centred, X^T X = 2 I (norm 2 sqrt 2); Y = X's first column, Y^T Y = 2; Y^T X = [2, 0] (norm^2 4)
    x = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=float)
    assert linear_cka(x, x[:, :1]) == pytest.approx(4 / (2 * np.sqrt(2) * 2), abs=1e-12)  # 1/sqrt(2)


def test_identical_features_give_one_and_it_is_symmetric():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 16)), rng.normal(size=(200, 8))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)


def test_invariant_to_rotation_isotropic_scale_and_translation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 24))
    y = x @ rng.normal(size=(24, 24)) + 0.5 * rng.normal(size=(300, 24))  # related, not equal
    rotation, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    reference = linear_cka(x, y)
    assert 0.2 < reference < 0.99
    assert linear_cka(x @ rotation, y) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(3.7 * x, 1e-3 * y) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(x + 100.0, y - 5.0) == pytest.approx(reference, abs=1e-9)
    assert linear_cka(x, x @ rotation * 42.0) == pytest.approx(1.0, abs=1e-12)


def test_not_invariant_to_anisotropic_scaling():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 4))
    # X^T X ~ n I and Y = X diag(1, 1, 1, 10): CKA ~ (3 + 100) / (2 sqrt(3 + 10^4)) = 0.515, not 1
    assert linear_cka(x, x * np.array([1.0, 1.0, 1.0, 10.0])) == pytest.approx(103 / (2 * np.sqrt(10003)), abs=0.02)


@pytest.mark.parametrize(("n", "d"), [(2000, 32), (1000, 64)])
def test_independent_features_are_near_zero(n, d):
    # For independent Gaussian features E[CKA] ~ d / (n + d) (0.016 and 0.060 here); over 20 draws the mean is
    # within 15% of that and no draw exceeds twice it.
    rng = np.random.default_rng(3)
    values = np.array([linear_cka(rng.normal(size=(n, d)), rng.normal(size=(n, d))) for _ in range(20)])
    expected = d / (n + d)
    assert abs(values.mean() - expected) < 0.15 * expected
    assert values.max() < 2 * expected


def test_constant_features_give_nan_and_bad_shapes_raise():
    assert np.isnan(linear_cka(np.ones((5, 3)), np.arange(10.0).reshape(5, 2)))
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="2-D"):
        linear_cka(np.zeros(5), np.zeros((5, 1)))
