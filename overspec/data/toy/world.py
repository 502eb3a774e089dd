"""The toy world's objects: coloured shapes with textures and counts, texture fields and handwritten
digits (scikit-learn's bundled 8x8 set), drawn with numpy as small RGB images, deterministically
from a numpy Generator.

Every concept here has a name, so the same world yields a captioned pretraining corpus
(`overspec.data.toy.corpus`) and labelled evaluation datasets (`overspec.data.toy.general`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "green": (0.12, 0.66, 0.22),
    "blue": (0.14, 0.30, 0.88),
    "yellow": (0.94, 0.84, 0.12),
    "purple": (0.56, 0.20, 0.72),
    "orange": (0.96, 0.55, 0.10),
    "white": (0.96, 0.96, 0.96),
    "black": (0.06, 0.06, 0.06),
}
SHAPES = ("circle", "square", "triangle", "cross", "star", "ring")
SHAPE_PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses",
                 "star": "stars", "ring": "rings"}
TEXTURES = ("plain", "striped", "checkered", "dotted", "grid", "speckled")
COUNT_WORDS = ("one", "two", "three", "four", "five")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

SUPERSAMPLE = 2  # shapes are drawn at 2x and averaged down: soft, anti-aliased edges


@dataclass(frozen=True)
class ObjectScene:
    shape: str
    colour: str
    texture: str = "plain"
    count: int = 1


# ---------------------------------------------------------------------------------------------
# Primitive masks


def _grid(size: int, ss: int = SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    coords = (np.arange(size * ss) + 0.5) / ss
    return np.meshgrid(coords, coords)  # x, y in pixel units


def shape_mask(shape: str, cx: float, cy: float, r: float, angle: float, size: int) -> np.ndarray:
    """Coverage in [0, 1] of one shape of radius `r` (pixels) centred at (cx, cy)."""
    x, y = _grid(size)
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    d = np.hypot(dx, dy)
    if shape == "circle":
        inside = d <= r
    elif shape == "square":
        inside = np.maximum(np.abs(dx), np.abs(dy)) <= 0.82 * r
    elif shape == "triangle":
        # equilateral, pointing up in its own frame: three half-planes
        inside = (dy <= 0.5 * r) & (np.sqrt(3) * dx - dy <= r) & (-np.sqrt(3) * dx - dy <= r)
    elif shape == "cross":
        arm = 0.34 * r
        inside = ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    elif shape == "star":
        theta = np.arctan2(dy, dx)
        inside = d <= r * (0.55 + 0.45 * np.cos(5 * theta + np.pi / 2)) ** 1.5 + 0.15 * r
    elif shape == "ring":
        inside = (d <= r) & (d >= 0.55 * r)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return _downsample(inside.astype(np.float32))


def texture_mask(texture: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A binary pattern in {0, 1} covering the whole image, with random phase and period."""
    x, y = np.meshgrid(np.arange(size), np.arange(size))
    if texture == "plain":
        return np.ones((size, size), np.float32)
    period = int(rng.integers(4, 7))
    px, py = rng.integers(0, period, size=2)
    if texture == "striped":
        pattern = ((y + py) % period) < period / 2
    elif texture == "checkered":
        half = max(2, period // 2)
        pattern = (((x + px) // half) + ((y + py) // half)) % 2 == 0
    elif texture == "dotted":
        gx, gy = (x + px) % period - period / 2 + 0.5, (y + py) % period - period / 2 + 0.5
        pattern = np.hypot(gx, gy) <= 1.3
    elif texture == "grid":
        pattern = ((x + px) % period == 0) | ((y + py) % period == 0)
    elif texture == "speckled":
        pattern = rng.random((size, size)) < 0.3
    else:
        raise ValueError(f"unknown texture {texture!r}")
    return pattern.astype(np.float32)


def _downsample(mask: np.ndarray, ss: int = SUPERSAMPLE) -> np.ndarray:
    h, w = mask.shape[0] // ss, mask.shape[1] // ss
    return mask.reshape(h, ss, w, ss).mean(axis=(1, 3))


def _grey_background(rng: np.random.Generator, size: int) -> np.ndarray:
    level = rng.uniform(0.32, 0.68)
    tint = rng.normal(0.0, 0.02, size=3)
    return np.broadcast_to(np.clip(level + tint, 0, 1), (size, size, 3)).astype(np.float32).copy()


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float = 0.025) -> np.ndarray:
    img = img + rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _jitter_colour(colour: str, rng: np.random.Generator) -> np.ndarray:
    base = np.asarray(COLOURS[colour], np.float32)
    return np.clip(base + rng.normal(0.0, 0.04, size=3), 0, 1).astype(np.float32)


def _paint(img: np.ndarray, coverage: np.ndarray, colour: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """Paint `colour` where the texture is on and a darker shade of it where it is off."""
    shade = np.where(texture[..., None] > 0.5, colour, colour * 0.45 + 0.05)
    alpha = coverage[..., None]
    return img * (1 - alpha) + shade * alpha


# ---------------------------------------------------------------------------------------------
# Scenes


def render_objects(scene: ObjectScene, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """`count` non-overlapping copies of one shape in one colour and texture, on a grey background."""
    img = _grey_background(rng, size)
    colour = _jitter_colour(scene.colour, rng)
    texture = texture_mask(scene.texture, size, rng)
    if scene.count == 1:
        radius = rng.uniform(0.30, 0.40) * size
        centres = [rng.uniform(radius * 0.9, size - radius * 0.9, size=2)]
    else:
        radius = rng.uniform(0.11, 0.14) * size
        centres = _place(scene.count, radius, size, rng)
    for cx, cy in centres:
        coverage = shape_mask(scene.shape, cx, cy, radius, rng.uniform(-0.25, 0.25), size)
        img = _paint(img, coverage, colour, texture)
    return _finish(img, rng)


def _place(count: int, radius: float, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Rejection-sample centres at least two radii apart (falls back to a jittered grid)."""
    for _ in range(200):
        centres: list[np.ndarray] = []
        for _ in range(count * 30):
            c = rng.uniform(radius, size - radius, size=2)
            if all(np.hypot(*(c - o)) >= 2.1 * radius for o in centres):
                centres.append(c)
                if len(centres) == count:
                    return centres
    cells = np.linspace(radius, size - radius, 3)
    grid = [np.array([gx, gy]) for gy in cells for gx in cells]
    return [grid[i] for i in rng.permutation(len(grid))[:count]]


def render_texture_field(texture: str, rng: np.random.Generator, size: int = 32,
                         colours: tuple[str, str] | None = None) -> np.ndarray:
    """A whole image covered by one texture in two colours."""
    if colours is None:
        names = list(COLOURS)
        first, second = rng.choice(len(names), size=2, replace=False)
        colours = (names[first], names[second])
    on, off = _jitter_colour(colours[0], rng), _jitter_colour(colours[1], rng)
    pattern = texture_mask(texture, size, rng)[..., None]
    if texture == "plain":  # one flat colour with a gentle shading gradient
        ramp = np.linspace(-0.06, 0.06, size, dtype=np.float32)[None, :, None]
        return _finish(np.clip(on + ramp, 0, 1) * np.ones((size, size, 3), np.float32), rng)
    return _finish(pattern * on + (1 - pattern) * off, rng)


@lru_cache(maxsize=1)
def digit_bank() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: images [1797, 8, 8] in [0, 1] and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


@lru_cache(maxsize=64)
def _bilinear_matrix(out_size: int, in_size: int = 8) -> np.ndarray:
    """[out, in] weights of bilinear resampling (pixel-centre aligned): resized = M @ img @ M.T."""
    pos = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = (pos - lo).astype(np.float32)
    m = np.zeros((out_size, in_size), np.float32)
    m[np.arange(out_size), lo] += 1 - frac
    m[np.arange(out_size), hi] += frac
    return m


def render_digit(index: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Digit `index` of the bank, scaled to fill the image and inked in a random colour on a grey
    background. The 8x8 glyph is scaled by exactly size/8 with no shift, so each ViT patch of a toy
    backbone (patch 8 at 32 px) sees whole glyph cells: position jitter made digits unlearnable in
    the toy pretraining budget, while ink colour and background still vary."""
    images, _ = digit_bank()
    m = _bilinear_matrix(size)
    canvas = m @ images[index] @ m.T
    img = _grey_background(rng, size)
    ink = _jitter_colour(str(rng.choice(list(COLOURS))), rng)
    return _finish(_paint(img, canvas, ink, np.ones((size, size), np.float32)), rng)


DIGIT_SPLIT_PER_CLASS = {"corpus": 85, "train": 45, "val": 12, "test": 30}  # the rarest digit has 174 glyphs


def digit_split(seed: int = 0) -> dict[str, np.ndarray]:
    """Bank indices split into disjoint, class-balanced parts: one for the pretraining corpus, the rest
    for the digits dataset's train / val / test, so no evaluation glyph is ever seen in pretraining."""
    _, labels = digit_bank()
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {name: [] for name in DIGIT_SPLIT_PER_CLASS}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        start = 0
        for name, n in DIGIT_SPLIT_PER_CLASS.items():
            parts[name] += idx[start:start + n].tolist()
            start += n
    return {name: np.asarray(sorted(v), np.int64) for name, v in parts.items()}
