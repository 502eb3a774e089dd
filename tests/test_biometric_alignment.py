"""5-point similarity alignment: exact recovery of known transforms and pixel-exact warps."""

import numpy as np
import pytest

from overspec.data.biometric.alignment import ARCFACE_TEMPLATE_112, align_face, similarity_transform, template_for_size


def test_recovers_a_known_similarity_exactly():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.4, 1.3, np.array([7.0, -2.5])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity_transform(src, src @ (scale * rot).T + shift)
    assert np.allclose(matrix[:, :2], scale * rot) and np.allclose(matrix[:, 2], shift)


def test_least_squares_fit_and_no_reflection():
    src = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [1.0, 2.0]])
    # a mirror image cannot be matched by a similarity: the best fit keeps orientation
    matrix = similarity_transform(src, src * [-1.0, 1.0])
    assert np.linalg.det(matrix[:, :2]) > 0
    # noisy points: the fit minimises the squared error, so perturbing it only increases the error
    rng = np.random.default_rng(1)
    dst = src * 2 + 1 + rng.normal(0, 0.1, src.shape)
    m = similarity_transform(src, dst)
    err = ((src @ m[:, :2].T + m[:, 2] - dst) ** 2).sum()
    for delta in (1e-3, -1e-3):
        worse = m.copy()
        worse[0, 0] += delta
        worse[1, 1] += delta
        assert ((src @ worse[:, :2].T + worse[:, 2] - dst) ** 2).sum() > err


def test_warp_puts_landmark_pixels_on_the_template():
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    landmarks = np.array([[10.0, 12.0], [26.0, 12.0], [18.0, 20.0], [12.0, 28.0], [24.0, 28.0]])
    for x, y in landmarks.astype(int):
        image[y, x] = 255
    # template = landmarks scaled by 2 about the pixel-centre origin and shifted by 3 px: exact pixels
    template = landmarks * 2 + 3
    out = align_face(image, landmarks, template, 64)
    assert out.shape == (64, 64, 3)
    for x, y in template.astype(int):
        assert out[y, x, 0] == 255
    assert out[0, 0].tolist() == [0, 0, 0]


def test_arcface_template_scaling():
    assert np.allclose(template_for_size(ARCFACE_TEMPLATE_112, 112, 112), ARCFACE_TEMPLATE_112)
    scaled = template_for_size(ARCFACE_TEMPLATE_112, 112, 224)
    assert np.allclose(scaled, ARCFACE_TEMPLATE_112 * 2 + 0.5)
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((5, 2)), np.ones((5, 2)))
