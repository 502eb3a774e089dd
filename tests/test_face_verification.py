"""Flip-sum fusion and the pair-set protocol on embeddings with hand-computable results."""

import numpy as np
import pandas as pd
import pytest

from overspec.data.biometric.pair_bin import read_pair_set, write_pair_set
from overspec.evaluate.face_verification import (
    evaluate_pair_embeddings,
    evaluate_pair_set,
    flip_sum_embeddings,
    flip_sum_features,
)


def _column_embed(batch):
    """A 'model' whose features are the mean intensity of each image column (flip reverses them)."""
    return batch.astype(np.float64).mean(axis=(1, 3))


def test_flip_sum_is_sum_of_raw_embeddings_then_l2_normalised():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    raw = _column_embed(batch) + _column_embed(batch[:, :, ::-1])
    assert np.allclose(flip_sum_features([batch], _column_embed), raw)
    fused = flip_sum_embeddings([batch[:2], batch[2:]], _column_embed)
    assert fused.dtype == np.float32
    assert np.allclose(fused, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    # the fused feature is mirror-symmetric for this model
    assert np.allclose(fused, fused[:, ::-1], atol=1e-6)
    # without flip: just the normalised embedding
    plain = flip_sum_embeddings([batch], _column_embed, flip=False)
    own = _column_embed(batch)
    assert np.allclose(plain, own / np.linalg.norm(own, axis=1, keepdims=True), atol=1e-6)


def test_sum_before_normalising_differs_from_normalising_first():
    # norms differ between an image and its flip only if the model is not flip-equivariant; check the order matters
    def lopsided(batch):
        x = batch.astype(np.float64).mean(axis=(1, 3))
        return np.stack([x[:, 0] * 10, x[:, -1]], axis=1)

    batch = np.zeros((1, 2, 2, 3), np.uint8)
    batch[0, :, 0] = 200
    batch[0, :, 1] = 20
    sum_first = flip_sum_embeddings([batch], lopsided)[0]
    f, g = lopsided(batch)[0], lopsided(batch[:, :, ::-1])[0]
    normalise_first = f / np.linalg.norm(f) + g / np.linalg.norm(g)
    normalise_first /= np.linalg.norm(normalise_first)
    assert np.allclose(sum_first, (f + g) / np.linalg.norm(f + g), atol=1e-6)
    assert not np.allclose(sum_first, normalise_first, atol=1e-3)


def test_pair_protocol_on_hand_made_embeddings():
    # 20 pairs, 10 folds of 2; genuine pairs identical, impostors orthogonal -> every fold perfect
    n = 20
    same = np.array([True, False] * (n // 2))
    e = np.zeros((2 * n, 4))
    for i in range(n):
        e[2 * i, i % 4] = 1.0
        e[2 * i + 1, i % 4 if same[i] else (i + 1) % 4] = 1.0
    result, scores = evaluate_pair_embeddings(e, same, "toy")
    assert result["accuracy"] == 1.0 and result["accuracy_std"] == 0.0
    assert result["n_pairs"] == 20 and result["n_genuine"] == 10 and result["auc"] == 1.0 and result["eer"] == 0.0
    assert isinstance(scores, pd.DataFrame) and len(scores) == n
    assert scores["cosine"].tolist() == [1.0, 0.0] * 10
    assert scores["squared_l2"].tolist() == [0.0, 2.0] * 10
    assert scores["fold"].tolist() == [k for k in range(10) for _ in range(2)]  # contiguous folds
    assert scores["image1"].tolist()[:2] == [0, 2] and scores["image2"].tolist()[:2] == [1, 3]


def test_one_swapped_pair_costs_one_fold_one_error():
    n = 20
    same = np.array([True, False] * (n // 2))
    e = np.zeros((2 * n, 2))
    e[:, 0] = 1.0
    for i in np.flatnonzero(~same):
        e[2 * i + 1] = [0.0, 1.0]
    e[2 * 4 + 1] = [0.0, 1.0]  # genuine pair 4 (fold 2) looks like an impostor
    result, _ = evaluate_pair_embeddings(e, same, "toy")
    assert result["fold_accuracies"][2] == 0.5
    assert result["accuracy"] == pytest.approx(0.95)


def test_evaluate_pair_set_end_to_end(tmp_path):
    rng = np.random.default_rng(1)
    people = [rng.integers(0, 256, (6, 6, 3), dtype=np.uint8) for _ in range(40)]
    images, issame = [], []
    for i in range(20):  # genuine: same image twice; impostor: two people
        if i % 2 == 0:
            images += [people[i], people[i]]
        else:
            images += [people[i], people[i + 20]]
        issame.append(i % 2 == 0)
    write_pair_set(tmp_path / "toy.bin", images, issame, fmt="PNG")
    def centred(batch):
        return _column_embed(batch) - 127.5

    result, scores = evaluate_pair_set(read_pair_set(tmp_path / "toy.bin"), centred, batch_size=7)
    assert result["benchmark"] == "toy" and result["accuracy"] == 1.0 and result["flip"] is True
    assert result["image_size"] == [6, 6]
    assert np.allclose(scores.loc[scores["issame"] == 1, "cosine"], 1.0)
