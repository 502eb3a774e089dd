"""Pillow's bicubic / bilinear resize, reproduced bit for bit on batched uint8 tensors (any device).

open_clip preprocesses with PIL. torch's own interpolation differs from it by up to ~20 grey
levels when upscaling (tiny CIFAR-like images to 224 pixels): a different cubic kernel and float
instead of fixed-point arithmetic. So batches resized on the GPU use Pillow's algorithm
(`libImaging/Resample.c`): separable filters with Pillow's kernel, support and normalisation,
coefficients in 22-bit fixed point, a horizontal pass rounded to uint8, then a vertical pass.
Each pass is a matrix product in float64, which is exact here: every product and partial sum is
an integer far below 2**53. Pillow >= 11.2 runs the vertical pass first when the height shrinks
more than twice as much as the width; which order the installed Pillow uses is checked once on a
probe image, so the emulation follows whichever version is installed.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

PRECISION_BITS = 32 - 8 - 2  # Resample.c, 8 bits per channel


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


FILTERS = {"bicubic": (_bicubic, 2.0), "bilinear": (_bilinear, 1.0)}


@lru_cache(maxsize=256)
def fixed_point_weights(in_size: int, out_size: int, interpolation: str) -> torch.Tensor:
    """[out_size, in_size] integer weights (float64) of Pillow's `precompute_coeffs` +
    `normalize_coeffs_8bpc` for the whole input range (no crop box), vectorised over outputs
    with the same float64 operations in the same order (the tap sum is sequential, as in C)."""
    kernel, base_support = FILTERS[interpolation]
    scale = filterscale = in_size / out_size
    filterscale = max(filterscale, 1.0)
    support = base_support * filterscale
    ss = 1.0 / filterscale  # Pillow multiplies by the reciprocal; dividing rounds differently
    ksize = math.ceil(support) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C's (int) truncates toward zero
    count = np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    valid = taps[None, :] < count[:, None]
    weights = np.where(valid, kernel((taps[None, :] + xmin[:, None] - center[:, None] + 0.5) * ss), 0.0)
    total = np.zeros(out_size)
    for tap in range(ksize):  # sequential like C's `ww += w` (np.sum would sum pairwise)
        total = total + weights[:, tap]
    weights = np.where(total[:, None] != 0.0, weights / np.where(total == 0.0, 1.0, total)[:, None], weights)
    fixed = np.trunc(np.where(weights < 0, -0.5 + weights * (1 << PRECISION_BITS), 0.5 + weights * (1 << PRECISION_BITS)))
    matrix = np.zeros((out_size, in_size))
    rows = np.repeat(np.arange(out_size), ksize).reshape(out_size, ksize)
    columns = xmin[:, None] + taps[None, :]
    matrix[rows[valid], columns[valid]] = fixed[valid]
    return torch.from_numpy(matrix)


def _pass(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One fixed-point pass along the last axis: round-half-up shift, then clip to 0..255."""
    acc = values @ weights.T.to(values.device) + float(1 << (PRECISION_BITS - 1))
    return torch.floor(acc / float(1 << PRECISION_BITS)).clamp_(0, 255)


def _resize(images: torch.Tensor, size: tuple[int, int], interpolation: str, vertical_first: bool) -> torch.Tensor:
    height, width = images.shape[-2:]
    out_h, out_w = size
    values = images.to(torch.float64)

    def horizontal(v: torch.Tensor) -> torch.Tensor:
        return _pass(v, fixed_point_weights(width, out_w, interpolation)) if out_w != width else v

    def vertical(v: torch.Tensor) -> torch.Tensor:
        if out_h == height:
            return v
        return _pass(v.transpose(-1, -2), fixed_point_weights(height, out_h, interpolation)).transpose(-1, -2)

    values = horizontal(vertical(values)) if vertical_first else vertical(horizontal(values))
    return values.to(torch.uint8)


@lru_cache(maxsize=1)
def pillow_may_run_vertical_first() -> bool:
    """Whether the installed Pillow uses the vertical-first order (checked on a probe image whose
    result differs between the two orders)."""
    from PIL import Image

    probe = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    expected = torch.from_numpy(np.array(Image.fromarray(probe).resize((65, 32), Image.BICUBIC))).permute(2, 0, 1)
    tensor = torch.from_numpy(probe).permute(2, 0, 1)
    for vertical_first in (False, True):
        if torch.equal(_resize(tensor, (32, 65), "bicubic", vertical_first), expected):
            return vertical_first
    raise RuntimeError("The installed Pillow resizes differently from overspec.embed.pil_resize in either pass "
                       "order; update that module for this Pillow version.")


def vertical_first(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Pillow's pass order (Resample.c, ImagingResampleInner)."""
    if not pillow_may_run_vertical_first():
        return False
    return (in_h - out_h) > 0 and (in_h - out_h) > (in_w - out_w) * 2


def pil_resize(images: torch.Tensor, size: tuple[int, int], interpolation: str = "bicubic") -> torch.Tensor:
    """uint8 [..., C, H, W] -> uint8 [..., C, size[0], size[1]], equal to PIL's `Image.resize`."""
    height, width = images.shape[-2:]
    if tuple(size) == (height, width):
        return images
    return _resize(images, size, interpolation, vertical_first(height, width, *size))
