"""Linear CKA (centred kernel alignment with the linear kernel; Kornblith et al., ICML 2019, eq. 5).

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)

with Xc, Yc the column-centred feature matrices [n, d1], [n, d2] of the same n samples (row i of
both is sample i). It is 1 when Y is X up to an orthogonal transform, an isotropic scale and a
translation, and near 0 for unrelated features: for independent Gaussian features its expectation
is about d / (n + d) (d features each), the finite-sample floor. With one feature each it is the
squared Pearson correlation. Computed in the feature space ([d, d] matrices), so n can be large.
"""

from __future__ import annotations

import numpy as np


def _centred(features: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, d], got shape {array.shape}")
    if array.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples, got {array.shape[0]}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array - array.mean(axis=0, keepdims=True)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two feature matrices with paired rows; NaN when either is constant."""
    xc, yc = _centred(x, "x"), _centred(y, "y")
    if xc.shape[0] != yc.shape[0]:
        raise ValueError(f"x has {xc.shape[0]} samples but y has {yc.shape[0]}; CKA needs the same samples")
    # Scale each matrix to unit Frobenius norm first: CKA is scale invariant, and the squares stay far
    # from float64's range whatever the feature magnitudes.
    norm_x, norm_y = np.linalg.norm(xc), np.linalg.norm(yc)
    if norm_x == 0.0 or norm_y == 0.0:
        return float("nan")
    xc, yc = xc / norm_x, yc / norm_y
    cross = np.linalg.norm(yc.T @ xc) ** 2
    return float(cross / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))
