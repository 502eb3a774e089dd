"""Procedural toy faces: determinism, identity vs nuisance, morphs, attacks, landmarks."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from overspec.data.biometric.alignment import align_face
from overspec.data.toy import faces as F
from overspec.errors import UserError


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def test_same_seed_gives_identical_identities_and_images():
    def make(seed):
        rng = np.random.default_rng(seed)
        ids = F.sample_identities(5, rng)
        imgs = [F.render_face(i, rng) for i in ids]
        morph = F.morph(ids[0], ids[1], rng, method="pixel")
        attack = F.present_attack(imgs[0], rng, "replay")
        return ids, imgs, morph, attack

    ids1, imgs1, m1, a1 = make(7)
    ids2, imgs2, m2, a2 = make(7)
    assert ids1 == ids2
    for x, y in zip(imgs1 + [m1, a1], imgs2 + [m2, a2]):
        assert np.array_equal(x, y)
    ids3, _, _, _ = make(8)
    assert ids3 != ids1


def test_identities_are_distinct_and_canonical_renders_differ():
    rng = np.random.default_rng(0)
    ids = F.sample_identities(300, rng)
    assert len(set(ids)) == 300
    imgs = np.stack([F.render_face(i, rng, nuisance=0.0) for i in ids]).reshape(300, -1).astype(np.float32)
    sq = (imgs**2).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * imgs @ imgs.T
    np.fill_diagonal(d2, np.inf)
    # no two canonical faces are pixel-identical (RMS difference of at least 1 grey level)
    assert np.sqrt(d2.min() / imgs.shape[1]) > 1.0


def test_canonical_image_ignores_the_rng_and_nuisance_varies_it():
    ident = F.sample_identities(1, np.random.default_rng(1))[0]
    a = F.render_face(ident, np.random.default_rng(10), nuisance=0.0)
    b = F.render_face(ident, np.random.default_rng(11), nuisance=0.0)
    assert np.array_equal(a, b)
    c = F.render_face(ident, np.random.default_rng(10), nuisance=1.0)
    d = F.render_face(ident, np.random.default_rng(11), nuisance=1.0)
    assert not np.array_equal(c, d)


def test_same_identity_pairs_are_closer_than_different_identity_pairs():
    rng = np.random.default_rng(3)
    ids = F.sample_identities(100, rng)
    same, diff = [], []
    for k, ident in enumerate(ids):
        x, y = F.render_face(ident, rng), F.render_face(ident, rng)
        z = F.render_face(ids[(k + 1) % len(ids)], rng)
        same.append(_dist(x, y))
        diff.append(_dist(x, z))
    # background, lighting and pose dominate raw pixels (by design), yet identity still shows
    assert np.mean(same) < 0.92 * np.mean(diff)
    assert np.mean(np.array(same) < np.array(diff)) > 0.6
    # ... but nuisance is not trivial: same-identity photos still differ noticeably
    assert np.mean(same) > 10.0


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_dtypes(size):
    rng = np.random.default_rng(4)
    a, b = F.sample_identities(2, rng)
    img = F.render_face(a, rng, size=size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    for method in F.MORPH_METHODS:
        m = F.morph(a, b, rng, size=size, method=method)
        assert m.shape == (size, size, 3) and m.dtype == np.uint8
    for kind in F.ATTACK_KINDS:
        p = F.present_attack(img, rng, kind)
        assert p.shape == img.shape and p.dtype == np.uint8
        assert not np.array_equal(p, img)


def test_unknown_morph_method_and_attack_kind_are_user_errors():
    rng = np.random.default_rng(5)
    a, b = F.sample_identities(2, rng)
    with pytest.raises(UserError, match="morph method"):
        F.morph(a, b, rng, method="diffusion")
    with pytest.raises(UserError, match="presentation attack"):
        F.present_attack(F.render_face(a, rng), rng, "deepfake")


def test_morphs_lie_between_their_parents():
    rng = np.random.default_rng(6)
    ids = F.sample_identities(40, rng)
    between = 0
    for k in range(0, 40, 2):
        a, b = ids[k], ids[k + 1]
        ca, cb = F.render_face(a, rng, nuisance=0.0), F.render_face(b, rng, nuisance=0.0)
        m = F.morph(a, b, rng, method="landmark", nuisance=0.0)
        between += _dist(m, ca) < _dist(ca, cb) and _dist(m, cb) < _dist(ca, cb)
    assert between >= 18


def test_blend_identities_endpoints():
    a, b = F.sample_identities(2, np.random.default_rng(7))
    assert F.blend_identities(a, b, 0.0) == a
    assert F.blend_identities(a, b, 1.0) == b
    half = F.blend_identities(a, b, 0.5, geometry_only=True)
    assert half.face_width == pytest.approx((a.face_width + b.face_width) / 2)
    assert half.hair_rgb == a.hair_rgb  # appearance kept from the first parent


def test_attributes_use_the_known_vocabulary():
    ids = F.sample_identities(200, np.random.default_rng(8))
    seen = {k: set() for k in F.face_attributes(ids[0])}
    for ident in ids:
        attrs = F.face_attributes(ident)
        assert attrs["hair_colour"] in F.HAIR_COLOURS
        assert attrs["hair_style"] in F.HAIR_STYLES
        assert attrs["skin_tone"] in F.SKIN_TONE_NAMES
        assert attrs["eye_colour"] in F.EYE_COLOURS
        for k, v in attrs.items():
            seen[k].add(v)
    assert all(len(v) >= 2 for v in seen.values())  # every attribute actually varies


def test_landmarks_land_on_the_rendered_features():
    rng = np.random.default_rng(9)
    ident = dataclasses.replace(F.sample_identities(1, rng)[0], eye_size=0.1, eye_rgb=(0.1, 0.2, 0.9), glasses=False)
    nz = dataclasses.replace(F.sample_nuisance(rng, 0.0), tx=0.06, ty=-0.04, rotation=0.15, scale=1.05, yaw=0.2)
    img = F.render_with(ident, nz, size=64).astype(np.float64)
    pts = F.face_landmarks(ident, nz, 64)
    for x, y in pts[:2]:  # the iris colour sits at both eye landmarks
        assert np.abs(img[round(y), round(x)] - np.array([0.1, 0.2, 0.9]) * 255).max() < 40
    assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]  # image-left first
    assert pts[2, 1] > pts[0, 1] and pts[3, 1] > pts[2, 1]  # eyes above nose above mouth


def test_batched_rendering_equals_one_at_a_time():
    ids = F.sample_identities(150, np.random.default_rng(10))  # more than one internal chunk at size 64
    batched = F.render_faces(ids, np.random.default_rng(11), size=64)
    rng = np.random.default_rng(11)
    single = np.stack([F.render_face(i, rng, size=64) for i in ids])
    assert batched.shape == (150, 64, 64, 3) and np.array_equal(batched, single)


def test_aligning_a_loose_crop_to_the_toy_template_recovers_the_framing():
    rng = np.random.default_rng(12)
    aligned_err, resized_err = [], []
    for ident in F.sample_identities(20, rng):
        nz = dataclasses.replace(F.sample_nuisance(rng, 0.0), noise_sigma=0.0)
        loose = dataclasses.replace(nz, scale=0.7, tx=0.12, ty=-0.08, rotation=0.2)
        crop = F.render_with(ident, loose, size=48)
        aligned = align_face(crop, F.face_landmarks(ident, loose, 48), F.canonical_landmarks(32), 32)
        target = F.render_with(ident, nz, size=32)
        resized = np.asarray(Image.fromarray(crop).resize((32, 32)))
        aligned_err.append(_dist(aligned[8:24, 8:24], target[8:24, 8:24]))  # the inner face
        resized_err.append(_dist(resized[8:24, 8:24], target[8:24, 8:24]))
    # what is left is the identity's own geometry against the average-face template
    assert np.mean(aligned_err) < 0.5 * np.mean(resized_err)
