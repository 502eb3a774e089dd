"""5-point face alignment: a least-squares similarity transform onto a template, applied with PIL.

Landmarks are (x, y) pixels with pixel centres at integer coordinates (the OpenCV and insightface
convention), ordered image-left eye, image-right eye, nose tip, left and right mouth corner.
`similarity_transform` is Umeyama's closed form (what skimage's ``SimilarityTransform.estimate``
computes: rotation, uniform scale and translation, no reflection); `align_face` warps with
bilinear sampling and black borders, like insightface's ``cv2.warpAffine`` call.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from overspec.errors import UserError

# insightface face_align.arcface_dst: the 96x112 template shifted +8 px in x, for 112x112 crops.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def template_for_size(template: np.ndarray, template_size: int, output_size: int) -> np.ndarray:
    """Scale a template made for `template_size` pixels to `output_size` (pixel centres kept at integers)."""
    scale = output_size / template_size
    return (np.asarray(template, dtype=np.float64) + 0.5) * scale - 0.5


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix [sR | t] minimising sum |s R src_i + t - dst_i|^2 (Umeyama 1991, no reflection)."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need matching (N>=2, 2) point arrays, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    if variance == 0:
        raise ValueError("the source points coincide")
    scale = (s * d).sum() / variance
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(
    image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, output_size: int
) -> np.ndarray:
    """Warp `image` (uint8 HxWx3) so its 5 landmarks land on `template` in an output_size^2 crop."""
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(landmarks).all():
        raise UserError("Face landmarks contain NaN or infinite values; check the landmark file.")
    forward = np.vstack([similarity_transform(landmarks, template), [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(forward)[:2]  # output pixel -> input pixel, centre-at-integer coordinates
    # PIL samples with pixel centres at +0.5: shift into and out of that convention.
    linear, shift = inverse[:, :2], inverse[:, 2]
    offset = shift + 0.5 - linear @ np.array([0.5, 0.5])
    data = (linear[0, 0], linear[0, 1], offset[0], linear[1, 0], linear[1, 1], offset[1])
    warped = Image.fromarray(np.ascontiguousarray(image)).transform(
        (output_size, output_size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0)
    )
    return np.asarray(warped)
