"""Procedural faces for the toy world: identities, renders, morphs and presentation attacks.

A face is drawn analytically: every part (face, hair, eyes, brows, nose, mouth, ...) is a soft
mask from an approximate signed distance, evaluated on a pixel grid that the pose transform has
already moved. So pose, scale and rotation cost nothing extra and any size renders the same face.

Identity = the parameters of `FaceIdentity` (continuous geometry and colours plus a few
categorical traits). Nuisance = what changes from photo to photo of the same person (pose,
expression, lighting, background, clothing, sensor noise); `nuisance=0` gives the canonical image.
Everything is deterministic given the numpy Generator passed in. `render_faces` draws a list of
faces as one batch (the same images as `render_face` in a loop, about twice as fast);
`face_landmarks` gives the 5 points insightface aligns with, `canonical_landmarks` the toy
alignment template. Morphs (`morph`) and presentation attacks (`present_attack`) carry artefacts
that a detector can learn but not trivially.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from overspec.errors import UserError

# ---------------------------------------------------------------------------------------------
# Palettes (RGB in [0, 1]); names are what captions and attributes use.

SKIN_RAMP = np.array(
    [[0.97, 0.83, 0.73], [0.90, 0.70, 0.56], [0.76, 0.55, 0.40], [0.55, 0.37, 0.25], [0.33, 0.21, 0.14]],
    dtype=np.float32,
)
SKIN_TONE_NAMES = ("light", "fair", "medium", "tan", "dark")
HAIR_COLOURS = {
    "black": (0.07, 0.06, 0.06),
    "brown": (0.33, 0.20, 0.11),
    "blond": (0.86, 0.72, 0.42),
    "red": (0.66, 0.26, 0.10),
    "grey": (0.62, 0.62, 0.62),
}
HAIR_COLOUR_WEIGHTS = (0.32, 0.30, 0.16, 0.10, 0.12)
EYE_COLOURS = {
    "brown": (0.30, 0.17, 0.08),
    "blue": (0.25, 0.45, 0.80),
    "green": (0.25, 0.55, 0.30),
    "grey": (0.55, 0.58, 0.62),
}
EYE_COLOUR_WEIGHTS = (0.5, 0.22, 0.13, 0.15)
HAIR_STYLES = ("short", "fringe", "side-parted", "long", "curly", "bald")
HAIR_STYLE_WEIGHTS = (0.26, 0.16, 0.18, 0.22, 0.12, 0.06)
FACIAL_HAIR = ("none", "stubble", "moustache", "beard")
FACIAL_HAIR_WEIGHTS = (0.64, 0.12, 0.08, 0.16)
MORPH_METHODS = ("landmark", "pixel", "gan")
ATTACK_KINDS = ("print", "replay", "mask")
CANONICAL_BACKGROUND = (0.55, 0.57, 0.60)
CANONICAL_CLOTHING = (0.25, 0.28, 0.35)


@dataclass(frozen=True)
class FaceIdentity:
    """The parameters that make a person: geometry in face units ([-1, 1] across the image), colours in RGB."""

    skin_tone: float  # 0 = lightest .. 1 = darkest, along SKIN_RAMP
    skin_warmth: float  # -1 .. 1, red/yellow undertone
    face_width: float  # half-width of the face ellipse
    face_length: float  # half-height of the face ellipse
    jaw_taper: float  # 0 = round/square jaw .. 1 = narrow chin
    eye_y: float
    eye_spacing: float  # distance between eye centres
    eye_size: float
    eye_colour: str
    eye_rgb: tuple[float, float, float]
    brow_height: float  # above the eye centre
    brow_thickness: float
    brow_tilt: float  # radians, positive = outer ends up
    nose_length: float
    nose_width: float
    mouth_y: float
    mouth_width: float  # half-width
    mouth_curve: float  # positive = smiling corners
    lip_thickness: float
    lip_redness: float
    ear_size: float
    hair_colour: str
    hair_rgb: tuple[float, float, float]
    hair_style: str
    hair_length: float  # 0..1, how far long hair falls
    hairline: float  # v coordinate of the hairline
    hair_volume: float  # how far the hair rises above the skull
    facial_hair: str
    glasses: bool
    moles: tuple[tuple[float, float], ...]  # positions in face units


def _choice(rng: np.random.Generator, options: tuple, weights: tuple) -> str:
    return options[int(rng.choice(len(options), p=np.asarray(weights) / np.sum(weights)))]


def _sample_identity(rng: np.random.Generator) -> FaceIdentity:
    u = rng.uniform
    hair_colour = _choice(rng, tuple(HAIR_COLOURS), HAIR_COLOUR_WEIGHTS)
    hair_rgb = np.clip(np.array(HAIR_COLOURS[hair_colour]) * u(0.85, 1.15) + rng.normal(0, 0.025, 3), 0, 1)
    eye_colour = _choice(rng, tuple(EYE_COLOURS), EYE_COLOUR_WEIGHTS)
    eye_rgb = np.clip(np.array(EYE_COLOURS[eye_colour]) + rng.normal(0, 0.04, 3), 0, 1)
    style = _choice(rng, HAIR_STYLES, HAIR_STYLE_WEIGHTS)
    face_width = u(0.48, 0.64)
    face_length = u(0.64, 0.80)
    n_moles = int(rng.choice(4, p=[0.55, 0.25, 0.12, 0.08]))
    moles = tuple(
        (round(float(u(-0.7, 0.7) * face_width), 4), round(float(u(-0.1, 0.6) * face_length), 4)) for _ in range(n_moles)
    )
    return FaceIdentity(
        skin_tone=float(rng.beta(1.6, 1.6)),
        skin_warmth=float(u(-1, 1)),
        face_width=float(face_width),
        face_length=float(face_length),
        jaw_taper=float(u(0, 1)),
        eye_y=float(u(-0.14, 0.0)),
        eye_spacing=float(u(0.34, 0.50)),
        eye_size=float(u(0.065, 0.10)),
        eye_colour=eye_colour,
        eye_rgb=tuple(float(c) for c in eye_rgb),
        brow_height=float(u(0.10, 0.18)),
        brow_thickness=float(u(0.025, 0.065)),
        brow_tilt=float(u(-0.35, 0.35)),
        nose_length=float(u(0.16, 0.30)),
        nose_width=float(u(0.07, 0.15)),
        mouth_y=float(u(0.34, 0.48)),
        mouth_width=float(u(0.12, 0.24)),
        mouth_curve=float(u(-0.04, 0.08)),
        lip_thickness=float(u(0.035, 0.075)),
        lip_redness=float(u(0, 1)),
        ear_size=float(u(0.08, 0.14)),
        hair_colour=hair_colour,
        hair_rgb=tuple(float(c) for c in hair_rgb),
        hair_style=style,
        hair_length=float(u(0, 1)),
        hairline=float(u(-0.52, -0.32)),
        hair_volume=float(u(0.06, 0.20)),
        facial_hair=_choice(rng, FACIAL_HAIR, FACIAL_HAIR_WEIGHTS),
        glasses=bool(rng.random() < 0.12),
        moles=moles,
    )


def sample_identities(n: int, rng: np.random.Generator) -> list[FaceIdentity]:
    """`n` independent identities drawn from `rng`."""
    return [_sample_identity(rng) for _ in range(n)]


def face_attributes(identity: FaceIdentity) -> dict[str, str]:
    """Coarse nameable attributes for captions ("a photo of a face with red hair")."""
    tone = SKIN_TONE_NAMES[min(int(identity.skin_tone * len(SKIN_TONE_NAMES)), len(SKIN_TONE_NAMES) - 1)]
    ratio = identity.face_length / identity.face_width
    shape = "round" if ratio < 1.22 else ("long" if ratio > 1.45 else "oval")
    return {
        "skin_tone": tone,
        "hair_colour": identity.hair_colour,
        "hair_style": identity.hair_style,
        "eye_colour": identity.eye_colour,
        "facial_hair": identity.facial_hair,
        "glasses": "glasses" if identity.glasses else "no glasses",
        "face_shape": shape,
        "expression": "smiling" if identity.mouth_curve > 0.03 else "neutral",
    }


# ---------------------------------------------------------------------------------------------
# Nuisance: the per-photo state. Always drawn with the same number of rng calls, scaled by `amount`.


@dataclass(frozen=True)
class Nuisance:
    tx: float
    ty: float
    scale: float
    rotation: float  # radians
    yaw: float  # shifts the inner features sideways, a cheap turn of the head
    smile: float  # added to mouth_curve
    mouth_open: float
    eye_open: float  # 1 open .. ~0.1 blink
    background: tuple[float, float, float]
    background_gradient: float
    clothing: tuple[float, float, float]
    light_angle: float
    light_amount: float
    brightness: float
    contrast: float
    gains: tuple[float, float, float]
    noise_sigma: float
    noise_seed: int


def sample_nuisance(rng: np.random.Generator, amount: float = 1.0) -> Nuisance:
    """One photo's nuisance state; `amount=0` is the canonical photo (same number of draws)."""
    a = float(amount)
    n = rng.standard_normal(15).tolist()
    uni = rng.random(11).tolist()
    bg = [c + a * (0.1 + 0.8 * r - c) for c, r in zip(CANONICAL_BACKGROUND, uni[1:4])]
    clothing = [c + a * (0.1 + 0.7 * r - c) for c, r in zip(CANONICAL_CLOTHING, uni[4:7])]
    return Nuisance(
        tx=0.05 * a * n[0],
        ty=0.05 * a * n[1],
        scale=math.exp(0.05 * a * n[2]),
        rotation=math.radians(5.0) * a * n[3],
        yaw=0.25 * a * n[4],
        smile=0.03 * a * n[5],
        mouth_open=0.025 * a * max(n[6], 0.0),
        eye_open=0.15 if uni[0] < 0.08 * min(a, 1.0) else 1.0 - min(0.4, 0.12 * a * abs(n[7])),
        background=tuple(min(max(c, 0.0), 1.0) for c in bg),
        background_gradient=0.12 * a * n[8],
        clothing=tuple(min(max(c, 0.0), 1.0) for c in clothing),
        light_angle=2 * math.pi * uni[7],
        light_amount=0.3 * a * uni[8],
        brightness=0.07 * a * n[9],
        contrast=math.exp(0.10 * a * n[10]),
        gains=tuple(1.0 + 0.035 * a * g for g in n[11:14]),
        noise_sigma=0.018 * a,
        noise_seed=int(uni[9] * 2**31),
    )


# ---------------------------------------------------------------------------------------------
# Drawing. Faces are drawn in batches: every parameter is a (B, 1, 1) column, so one numpy call
# paints one part on every face at once and the per-call overhead is shared (>= 2000 faces/s).

_FLOAT_FIELDS = tuple(f.name for f in dataclasses.fields(FaceIdentity) if f.type == "float")
_NUISANCE_SCALARS = ("tx", "ty", "scale", "rotation", "yaw", "smile", "mouth_open", "eye_open",
                     "background_gradient", "light_angle", "light_amount", "brightness", "contrast")
_MAX_MOLES = 3
_FACE_CENTRE_V = 0.06


@functools.lru_cache(maxsize=8)
def _base_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: (x to the right, y down)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    y, x = np.meshgrid(c, c, indexing="ij")
    return x, y


def _skin_rgb(identity: FaceIdentity) -> np.ndarray:
    t = identity.skin_tone * (len(SKIN_RAMP) - 1)
    i = min(int(t), len(SKIN_RAMP) - 2)
    base = SKIN_RAMP[i] + (t - i) * (SKIN_RAMP[i + 1] - SKIN_RAMP[i])
    warm = identity.skin_warmth * np.array([0.03, 0.0, -0.03], dtype=np.float32)
    return np.clip(base + warm, 0, 1).astype(np.float32)


class _Batch:
    """Identity and nuisance parameters of B faces as float32 columns: scalars (B,1,1), colours (B,3,1,1)."""

    def __init__(self, identities: list[FaceIdentity], nuisances: list[Nuisance]) -> None:
        def col(values) -> np.ndarray:
            return np.asarray(values, dtype=np.float32).reshape(len(values), 1, 1)

        def rgb(values) -> np.ndarray:
            return np.asarray(values, dtype=np.float32).reshape(len(values), 3, 1, 1)

        for name in _FLOAT_FIELDS:
            setattr(self, name, col([getattr(i, name) for i in identities]))
        for name in _NUISANCE_SCALARS:
            setattr(self, "nz_" + name, col([getattr(n, name) for n in nuisances]))
        self.skin = rgb([_skin_rgb(i) for i in identities])
        self.hair = rgb([i.hair_rgb for i in identities])
        self.eye = rgb([i.eye_rgb for i in identities])
        self.background = rgb([n.background for n in nuisances])
        self.clothing = rgb([n.clothing for n in nuisances])
        self.gains = rgb([n.gains for n in nuisances])
        styles = [i.hair_style for i in identities]
        for style in HAIR_STYLES:
            setattr(self, "style_" + style.replace("-", "_"), col([s == style for s in styles]))
        self.beard_alpha = col([{"beard": 0.9, "stubble": 0.35}.get(i.facial_hair, 0.0) for i in identities])
        self.moustache = col([i.facial_hair == "moustache" for i in identities])
        self.glasses = col([i.glasses for i in identities])
        self.grey_hair = col([i.hair_colour == "grey" for i in identities])
        far = [(9.0, 9.0)] * _MAX_MOLES  # padding moles far outside the image draw nothing
        self.moles = [
            (col([(i.moles + tuple(far))[k][0] for i in identities]), col([(i.moles + tuple(far))[k][1] for i in identities]))
            for k in range(_MAX_MOLES)
        ]
        self.any_moles = any(i.moles for i in identities)
        self.noise = [(n.noise_sigma, n.noise_seed) for n in nuisances]


def _ellipse_d(u: np.ndarray, v: np.ndarray, a, b) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse with half-axes a, b centred at the origin."""
    d = np.hypot(u / a, v / b)
    d -= np.float32(1.0)
    d *= np.minimum(a, b)
    return d


class _Canvas:
    """B RGB float images (B,3,H,W: channel-first keeps numpy's inner loops long) painted back to front."""

    def __init__(self, background: np.ndarray, size: int, inv_px: np.ndarray) -> None:
        self.img = np.broadcast_to(background, (len(background), 3, size, size)).copy()
        self.fg = np.zeros((len(background), size, size), dtype=np.float32)
        self.inv_px = inv_px

    def mask(self, d: np.ndarray, alpha=None) -> np.ndarray:
        m = d * -self.inv_px
        m += np.float32(0.5)
        np.clip(m, np.float32(0.0), np.float32(1.0), out=m)
        if alpha is not None:
            m *= alpha
        return m

    def paint(self, m: np.ndarray, colour, foreground: bool = True) -> None:
        colour = np.asarray(colour, dtype=np.float32)
        delta = (colour.reshape(3, 1, 1) if colour.ndim == 1 else colour) - self.img
        delta *= m[:, None]
        self.img += delta
        if foreground:
            np.maximum(self.fg, m, out=self.fg)


def _draw(p: _Batch, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The scenes before photometric effects: float images (B,H,W,3) and subject masks (B,H,W)."""
    f32 = np.float32
    x, y = _base_grid(size)
    # Face coordinates of every pixel: the inverse pose transform applied to the pixel grid.
    cos, sin = np.cos(p.nz_rotation) / p.nz_scale, np.sin(p.nz_rotation) / p.nz_scale
    x0, y0 = x - p.nz_tx, y - p.nz_ty
    u = cos * x0 + sin * y0
    v = cos * y0 - sin * x0
    cv = _Canvas(p.background, size, inv_px=p.nz_scale * f32(size / 2.0))
    cv.img += (p.nz_background_gradient * y)[:, None]
    au = np.abs(u)
    fv = v - f32(_FACE_CENTRE_V)
    skin, hair = p.skin, p.hair

    # Long hair falls behind the head and shoulders.
    if p.style_long.any():
        bottom = 0.35 + 0.6 * p.hair_length
        half_w = p.face_width + f32(0.13)
        d = np.maximum(au - half_w, np.maximum(f32(-0.4) - v, v - bottom))
        d = np.maximum(d, _ellipse_d(u, v - f32(0.1), half_w + f32(0.02), 0.8 + 0.6 * p.hair_length))
        cv.paint(cv.mask(d, p.style_long), hair * f32(0.85))
    # Shoulders (clothing changes per photo) and neck.
    cv.paint(cv.mask(_ellipse_d(u, v - f32(1.38), f32(0.95), f32(0.55))), p.clothing)
    neck_d = np.maximum(au - 0.55 * p.face_width, np.maximum(f32(0.3) - v, v - f32(0.95)))
    cv.paint(cv.mask(neck_d), skin * f32(0.82))
    # Ears at the sides of the face, at eye-to-nose height.
    ear_y = p.eye_y + 0.5 * p.nose_length
    cv.paint(cv.mask(_ellipse_d(au - p.face_width, v - ear_y, 0.55 * p.ear_size, p.ear_size)), skin * f32(0.92))
    # Face: an ellipse whose lower half narrows with the jaw taper.
    low = np.clip(fv / p.face_length, f32(0.0), f32(1.0))
    taper = f32(1.0) - f32(0.35) * p.jaw_taper * low * low
    face_d = _ellipse_d(u / taper, fv, p.face_width, p.face_length)
    face_m = cv.mask(face_d)
    cv.paint(face_m, skin)

    # Hair on top of the head: inside an enlarged skull ellipse and above the (style-dependent) hairline.
    vol = p.hair_volume * (1.0 + 0.5 * p.style_curly)
    skull = _ellipse_d(u, fv + 0.5 * vol, p.face_width + f32(0.06) + 0.4 * vol, p.face_length + vol)
    line = p.hairline + f32(0.16) * p.style_fringe + p.style_side_parted * (f32(0.10) + f32(0.12) * u)
    hl = v - (line + f32(0.10) * (u / p.face_width) ** 2)  # the hairline curves down at the temples
    if p.style_long.any():  # long hair also frames the face
        hl = np.where(p.style_long > 0, np.minimum(hl, au - 0.85 * p.face_width), hl)
    colour = hair
    if p.style_curly.any():
        curl = f32(0.12) * p.style_curly * np.sin(u * f32(38.0)) * np.sin(v * f32(38.0))
        colour = hair * (1.0 + curl)[:, None]
    cv.paint(cv.mask(np.maximum(skull, hl), f32(1.0) - p.style_bald), colour)

    # Inner features move sideways with yaw; left/right pairs share one distance via |x|.
    fu = u - f32(0.12) * p.nz_yaw
    afu = np.abs(fu)
    ev = v - p.eye_y
    ex = afu - 0.5 * p.eye_spacing
    # Brows: thin tilted ellipses above the eyes, darker than the hair.
    tc, ts = np.cos(p.brow_tilt), np.sin(p.brow_tilt)
    by = ev + p.brow_height
    brow_colour = np.where(p.grey_hair[:, None] > 0, hair * f32(0.75), hair * f32(0.8) + f32(0.06))
    brow_d = _ellipse_d(tc * ex + ts * by, tc * by - ts * ex, 1.5 * p.eye_size, 0.5 * p.brow_thickness)
    cv.paint(cv.mask(brow_d), brow_colour, False)
    # Eyes: white, then iris; blinking squashes them vertically.
    eh = p.eye_size * f32(0.62) * p.nz_eye_open
    cv.paint(cv.mask(_ellipse_d(ex, ev, p.eye_size, np.maximum(eh, f32(0.008)))), (0.93, 0.92, 0.90), False)
    iris_r = f32(0.62) * p.eye_size
    cv.paint(cv.mask(_ellipse_d(ex, ev, iris_r, np.maximum(np.minimum(iris_r, eh), f32(0.006)))), p.eye, False)
    if p.glasses.any():
        ring = np.abs(_ellipse_d(ex, ev, 1.9 * p.eye_size, 1.5 * p.eye_size)) - f32(0.018)
        bridge = np.maximum(afu - (0.5 * p.eye_spacing - 1.9 * p.eye_size), np.abs(ev + f32(0.02)) - f32(0.012))
        cv.paint(cv.mask(np.minimum(ring, bridge), p.glasses), (0.08, 0.08, 0.09), False)
    # Nose: a soft shaded ridge and two nostrils at its base.
    nose_u = u - f32(0.16) * p.nz_yaw
    nose_c = p.eye_y + 0.55 * p.nose_length + f32(0.04)
    cv.paint(cv.mask(_ellipse_d(nose_u, v - nose_c, 0.5 * p.nose_width, 0.5 * p.nose_length), f32(0.3)),
             skin * f32(0.72), False)
    nostril_d = _ellipse_d(np.abs(nose_u) - 0.28 * p.nose_width, v - (p.eye_y + p.nose_length + f32(0.04)),
                           f32(0.03), f32(0.018))
    cv.paint(cv.mask(nostril_d, f32(0.75)), skin * f32(0.45), False)
    # Facial hair before the mouth so the lips stay visible.
    if p.beard_alpha.any():
        d = np.maximum(face_d, (p.mouth_y - f32(0.10)) - v)  # the face below the upper lip
        cv.paint(cv.mask(d, p.beard_alpha), hair * f32(0.9), False)
    if p.moustache.any():
        d = np.maximum(afu - 1.05 * p.mouth_width, np.abs(v - (p.mouth_y - f32(0.075))) - f32(0.03))
        cv.paint(cv.mask(d, p.moustache), hair * f32(0.85), False)
    # Mouth: a curved band whose corners rise with the smile.
    curve = p.mouth_curve + p.nz_smile
    to_line = np.abs(v - (p.mouth_y - curve * (fu / p.mouth_width) ** 2))
    d = np.maximum(to_line - (0.5 * p.lip_thickness + p.nz_mouth_open), afu - p.mouth_width)
    red = np.array([0.12, 0.0, 0.0], dtype=np.float32).reshape(3, 1, 1)
    lip = skin * (0.70 - 0.08 * p.lip_redness)[:, None] + red * (0.5 + p.lip_redness)[:, None]
    cv.paint(cv.mask(d), np.clip(lip, 0, 1), False)
    if (p.nz_mouth_open > 0.004).any():
        d = np.maximum(to_line - p.nz_mouth_open, afu - 0.8 * p.mouth_width)
        cv.paint(cv.mask(d, (p.nz_mouth_open > 0.004).astype(np.float32)), (0.15, 0.05, 0.05), False)
    if p.any_moles:
        for mu, mv in p.moles:
            m = cv.mask(_ellipse_d(u - mu, fv - mv, f32(0.03), f32(0.03)))
            cv.paint(m * face_m, skin * f32(0.4), False)
    return cv.img, cv.fg


def _photometric(img: np.ndarray, fg: np.ndarray, size: int, p: _Batch) -> np.ndarray:
    """Directional light on the subject, then global brightness, contrast and white balance."""
    x, y = _base_grid(size)
    shade = p.nz_light_amount * (np.cos(p.nz_light_angle) * x + np.sin(p.nz_light_angle) * y)
    img = img * (1.0 + fg * shade)[:, None]
    gain = (p.nz_contrast[:, None] * p.gains).astype(np.float32)
    offset = ((0.5 + p.nz_brightness - 0.5 * p.nz_contrast)[:, None] * p.gains).astype(np.float32)
    img *= gain
    img += offset
    return img


_NOISE_BANK_SIZE = 1 << 20


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed buffer of standard normal noise; each photo reads a window of it at its own offset (fast)."""
    return np.random.default_rng(20240611).standard_normal(_NOISE_BANK_SIZE, dtype=np.float32)


def _add_noise(img: np.ndarray, noise: list[tuple[float, int]]) -> np.ndarray:
    """Add each photo's sensor noise in place; `img` is (B,H,W,3) float."""
    count = img[0].size
    for k, (sigma, seed) in enumerate(noise):
        if sigma > 0:
            start = seed % (_NOISE_BANK_SIZE - count)
            img[k] += np.float32(sigma) * _noise_bank()[start : start + count].reshape(img[k].shape)
    return img


def _to_uint8(img: np.ndarray, noise: list[tuple[float, int]]) -> np.ndarray:
    """Add each photo's sensor noise and quantise; `img` is (B,H,W,3) float in [0, 1]."""
    out = np.clip(_add_noise(img, noise), 0.0, 1.0)
    out *= np.float32(255.0)
    out += np.float32(0.5)
    return out.astype(np.uint8)


def _chunk(size: int) -> int:
    return max(1, (1 << 17) // (size * size))


def _render_float(identities: list[FaceIdentity], nuisances: list[Nuisance], size: int) -> np.ndarray:
    out = np.empty((len(identities), size, size, 3), dtype=np.float32)
    step = _chunk(size)
    for start in range(0, len(identities), step):
        p = _Batch(identities[start : start + step], nuisances[start : start + step])
        img, fg = _draw(p, size)
        out[start : start + step] = _photometric(img, fg, size, p).transpose(0, 2, 3, 1)
    return out


def render_many(identities: list[FaceIdentity], nuisances: list[Nuisance], size: int = 32) -> np.ndarray:
    """Render each identity under its own explicit nuisance state (uint8 BxHxWx3 RGB)."""
    img = _render_float(list(identities), list(nuisances), size)
    return _to_uint8(img, [(n.noise_sigma, n.noise_seed) for n in nuisances])


def capture(images: np.ndarray, nuisances: list[Nuisance]) -> np.ndarray:
    """What the camera records of noise-free `images` (uint8 BxHxWx3): each photo's own sensor noise, quantised."""
    return _to_uint8(images.astype(np.float32) / np.float32(255.0), [(n.noise_sigma, n.noise_seed) for n in nuisances])


def render_with(identity: FaceIdentity, nz: Nuisance, size: int = 32) -> np.ndarray:
    """Render `identity` under an explicit nuisance state (uint8 HxWx3 RGB)."""
    return render_many([identity], [nz], size)[0]


def render_faces(
    identities: list[FaceIdentity], rng: np.random.Generator, size: int = 32, nuisance: float = 1.0
) -> np.ndarray:
    """One photo of each identity (uint8 BxHxWx3 RGB), batched for speed; equals `render_face` in a loop."""
    nuisances = [sample_nuisance(rng, nuisance) for _ in identities]
    return render_many(identities, nuisances, size)


def render_face(identity: FaceIdentity, rng: np.random.Generator, size: int = 32, nuisance: float = 1.0) -> np.ndarray:
    """One photo of `identity` (uint8 HxWx3 RGB); `nuisance=0` gives the canonical image."""
    return render_with(identity, sample_nuisance(rng, nuisance), size)


def face_landmarks(identity: FaceIdentity, nz: Nuisance, size: int) -> np.ndarray:
    """The 5 landmarks (image-left eye, image-right eye, nose tip, left and right mouth corner) in pixels.

    Pixel centres are at integer coordinates (the OpenCV/insightface convention).
    """
    f = identity
    shift = 0.12 * nz.yaw
    curve = f.mouth_curve + nz.smile
    corner_v = f.mouth_y - curve
    pts = np.array(
        [
            [-0.5 * f.eye_spacing + shift, f.eye_y],
            [0.5 * f.eye_spacing + shift, f.eye_y],
            [0.16 * nz.yaw, f.eye_y + f.nose_length + 0.02],
            [-f.mouth_width + shift, corner_v],
            [f.mouth_width + shift, corner_v],
        ],
        dtype=np.float64,
    )
    c, s = math.cos(nz.rotation) * nz.scale, math.sin(nz.rotation) * nz.scale
    x = c * pts[:, 0] - s * pts[:, 1] + nz.tx
    y = s * pts[:, 0] + c * pts[:, 1] + nz.ty
    return np.stack([(x + 1.0) * size / 2.0 - 0.5, (y + 1.0) * size / 2.0 - 0.5], axis=1)


def canonical_nuisance() -> Nuisance:
    """The nuisance state of the canonical photo (centred, frontal, neutral light, no noise)."""
    return sample_nuisance(np.random.default_rng(0), 0.0)


def canonical_landmarks(size: int) -> np.ndarray:
    """The toy alignment template: 5 landmarks of an average face in the canonical photo of `size` pixels."""
    mean_face = dataclasses.replace(
        _sample_identity(np.random.default_rng(0)),
        eye_spacing=0.42, eye_y=-0.07, nose_length=0.23, mouth_width=0.18, mouth_y=0.41, mouth_curve=0.02,
    )
    return face_landmarks(mean_face, canonical_nuisance(), size)


# ---------------------------------------------------------------------------------------------
# Morphing attacks

_GEOMETRY_FIELDS = (
    "face_width", "face_length", "jaw_taper", "eye_y", "eye_spacing", "eye_size", "brow_height", "brow_tilt",
    "nose_length", "nose_width", "mouth_y", "mouth_width", "mouth_curve", "ear_size", "hairline",
)


def blend_identities(a: FaceIdentity, b: FaceIdentity, alpha: float, geometry_only: bool = False) -> FaceIdentity:
    """Parameters interpolated (weight `alpha` on b); categorical traits come from the nearer parent."""
    def lerp(x, y):
        return float((1 - alpha) * x + alpha * y)

    changes = {name: lerp(getattr(a, name), getattr(b, name)) for name in _GEOMETRY_FIELDS}
    if not geometry_only:
        near = a if alpha < 0.5 else b
        for field in dataclasses.fields(FaceIdentity):
            name = field.name
            if name in changes:
                continue
            x, y = getattr(a, name), getattr(b, name)
            if isinstance(x, float):
                changes[name] = lerp(x, y)
            elif name in ("eye_rgb", "hair_rgb"):
                changes[name] = tuple(lerp(p, q) for p, q in zip(x, y))
            else:
                changes[name] = getattr(near, name)
    return dataclasses.replace(a, **changes)


def _box_blur(img: np.ndarray, weight: float) -> np.ndarray:
    """Mix `weight` of a 3x3 box blur (edge-padded) into the image."""
    p = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = img.shape[:2]
    box = sum(p[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    return (1 - weight) * img + weight * box


# Weight of the 3x3 box blur each morphing method's resampling leaves (drawn uniformly per morph).
RESAMPLING_BLUR = {"landmark": (0.5, 0.8), "pixel": (0.3, 0.5), "gan": (0.3, 0.5)}


def morph(
    identity_a: FaceIdentity,
    identity_b: FaceIdentity,
    rng: np.random.Generator,
    size: int = 32,
    method: str = "landmark",
    nuisance: float = 1.0,
) -> np.ndarray:
    """A toy morphing attack of two identities (uint8 HxWx3 RGB).

    Every method leaves the trace real morphs share: the image was made from photos, not taken, so
    its sensor noise is not a camera's -- blended from the parents' noise (weaker, as averaging two
    independent fields is) or, for a generated face, absent -- and it was resampled (warped,
    aligned or resized: a slight blur). On top, each method has its own artefact:
    landmark: both faces warped to the averaged geometry, then pixel-blended and smoothed most (hair ghosting, smooth skin);
    pixel: two independently posed photos aligned and alpha-blended (double edges everywhere; lighter resampling);
    gan: one noise-free render of the fully blended parameters, resized, with a faint upsampling checkerboard.
    The training method (landmark) carries the shared trace most strongly, so unseen methods stay harder.
    """
    if method not in MORPH_METHODS:
        raise UserError(f"Unknown toy morph method {method!r}: choose one of {', '.join(MORPH_METHODS)}.")
    alpha = float(rng.uniform(0.4, 0.6))
    nz = sample_nuisance(rng, nuisance)
    # the second parent photo's own sensor noise (same sigma, another window of the noise bank)
    noise = [(nz.noise_sigma, nz.noise_seed), (nz.noise_sigma, int(rng.integers(0, 2**31 - 1)))]
    if method == "landmark":
        a = blend_identities(identity_a, identity_b, alpha, geometry_only=True)
        b = blend_identities(identity_b, identity_a, 1 - alpha, geometry_only=True)
        pair = _add_noise(_render_float([a, b], [nz, nz], size), noise)
        img = _box_blur((1 - alpha) * pair[0] + alpha * pair[1], float(rng.uniform(*RESAMPLING_BLUR[method])))
    elif method == "pixel":
        offset = rng.normal(0, 0.045, 3)
        nz_b = dataclasses.replace(
            nz, tx=nz.tx + offset[0], ty=nz.ty + offset[1], rotation=nz.rotation + 0.5 * offset[2], yaw=-nz.yaw
        )
        pair = _add_noise(_render_float([identity_a, identity_b], [nz, nz_b], size), noise)
        img = _box_blur((1 - alpha) * pair[0] + alpha * pair[1], float(rng.uniform(*RESAMPLING_BLUR[method])))
    else:
        img = _render_float([blend_identities(identity_a, identity_b, alpha)], [nz], size)[0]
        img = _box_blur(img, float(rng.uniform(*RESAMPLING_BLUR[method])))
        yy, xx = np.indices((size, size))
        checker = np.where((yy + xx) % 2 == 0, 1.0, -1.0).astype(np.float32)
        img = img + np.float32(rng.uniform(0.004, 0.008)) * checker[..., None]
    return _to_uint8(img[None], [(0.0, 0)])[0]


# ---------------------------------------------------------------------------------------------
# Presentation attacks, applied to a captured image


def _grid_for(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    yy, xx = np.indices((h, w), dtype=np.float32)
    return xx, yy


def _border(img: np.ndarray, rng: np.random.Generator, colour: np.ndarray, max_width: int) -> np.ndarray:
    """Paint a frame of `colour` on a random non-empty subset of sides."""
    sides = rng.random(4) < 0.5
    sides[int(rng.integers(4))] = True
    width = rng.integers(1, max_width + 1, 4)
    out = img.copy()
    if sides[0]:
        out[: width[0]] = colour
    if sides[1]:
        out[-width[1] :] = colour
    if sides[2]:
        out[:, : width[2]] = colour
    if sides[3]:
        out[:, -width[3] :] = colour
    return out


# Amplitude of the print's halftone dots and the replay's moire, and the share of the face's contrast a
# mask keeps (each drawn uniformly per attack video).
ATTACK_TEXTURE = {"print": (0.08, 0.14), "replay": (0.05, 0.10), "mask": (0.45, 0.65)}


def present_attack(image: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """A toy presentation attack: what the camera sees when `image` is shown as a print, a replay or a mask."""
    if kind not in ATTACK_KINDS:
        raise UserError(f"Unknown toy presentation attack {kind!r}: choose one of {', '.join(ATTACK_KINDS)}.")
    img = image.astype(np.float32) / 255.0
    h, w = img.shape[:2]
    xx, yy = _grid_for(img)
    scale = max(h, w) / 32.0
    gray = img.mean(axis=2, keepdims=True)
    if kind == "print":
        # Ink gamut: lower contrast and saturation, paper tint; halftone dots; optional paper edge.
        img = gray + rng.uniform(0.6, 0.85) * (img - gray)
        img = 0.5 + rng.uniform(0.72, 0.88) * (img - 0.5) + rng.uniform(-0.03, 0.05)
        img = img * np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 0.96)], dtype=np.float32)
        f = rng.uniform(0.28, 0.45) / scale
        th = rng.uniform(0, np.pi)
        ph = rng.uniform(0, 2 * np.pi, 2)
        a = 2 * np.pi * f * (np.cos(th) * xx + np.sin(th) * yy) + ph[0]
        b = 2 * np.pi * f * (-np.sin(th) * xx + np.cos(th) * yy) + ph[1]
        dots = 0.5 + 0.5 * np.cos(a) * np.cos(b)
        img = img * (1.0 - rng.uniform(*ATTACK_TEXTURE['print']) * dots)[..., None]
        img = _box_blur(img, float(rng.uniform(0.2, 0.5)))
        if rng.random() < 0.4:
            img = _border(img, rng, np.array([0.93, 0.92, 0.88]) * rng.uniform(0.8, 1.0), max(1, round(2 * scale)))
    elif kind == "replay":
        # Screen: gamma and blue cast, moire from pixel-grid beating, glare, optional bezel.
        img = np.clip(img, 0, 1) ** rng.uniform(0.75, 0.9)
        img = img * np.array([rng.uniform(0.92, 0.98), 1.0, rng.uniform(1.02, 1.1)], dtype=np.float32)
        f = rng.uniform(0.08, 0.35) / scale
        th = rng.uniform(0, np.pi)
        moire = np.sin(2 * np.pi * f * (np.cos(th) * xx + np.sin(th) * yy) + rng.uniform(0, 2 * np.pi))
        img = img + (rng.uniform(*ATTACK_TEXTURE['replay']) * moire)[..., None]
        if rng.random() < 0.6:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            sig = rng.uniform(0.15, 0.35) * w
            glare = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig**2))
            img = img + (rng.uniform(0.1, 0.3) * glare)[..., None]
        if rng.random() < 0.4:
            img = _border(img, rng, np.array([0.05, 0.05, 0.06]) * rng.uniform(0.5, 1.5), max(1, round(3 * scale)))
    else:
        # A rigid mask: flat, slightly off-colour skin with a hard edge, real eyes through the holes.
        u = (xx + 0.5) / w * 2 - 1
        v = (yy + 0.5) / h * 2 - 1
        radius = (u / rng.uniform(0.42, 0.52)) ** 2 + ((v - 0.08) / rng.uniform(0.55, 0.68)) ** 2
        inside = radius < 1.0
        eyes = ((np.abs(u) - 0.21) / 0.13) ** 2 + ((v + 0.07) / 0.09) ** 2 < 1.0
        flat = _box_blur(_box_blur(img, 1.0), 1.0)
        low, high = ATTACK_TEXTURE["mask"]  # how much of the face's contrast the mask keeps
        flat = 0.5 + rng.uniform(low, high) * (flat - 0.5) + rng.normal(0, 0.05, 3).astype(np.float32)
        region = (inside & ~eyes)[..., None]
        img = np.where(region, flat, img)
        img = img * np.where(inside & (radius > 0.8), 0.85, 1.0).astype(np.float32)[..., None]  # the rim's shadow
    img = img + rng.normal(0, 0.01, img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
