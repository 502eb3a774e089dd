"""Input checks shared by the score-based metrics."""

from __future__ import annotations

import numpy as np


def as_scores(values: np.ndarray, name: str, *, keep_float32: bool = False) -> np.ndarray:
    """A finite, non-empty 1-D float array; float64 unless ``keep_float32`` and it already is float32."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} scores must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} scores are empty")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} scores must be numbers, got dtype {array.dtype}")
    if not (keep_float32 and array.dtype == np.float32):
        array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} scores contain NaN or infinite values")
    return array


def allowed_errors(rate: float, n: int) -> int:
    """Largest count c with c / n <= rate (exact in floating point, unlike floor(rate * n))."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"an error-rate target must lie in [0, 1], got {rate}")
    count = int(np.floor(rate * n))
    while count < n and (count + 1) / n <= rate:
        count += 1
    while count > 0 and count / n > rate:
        count -= 1
    return count
