"""The toy pretraining corpus: image-caption pairs drawn from the whole toy world (shapes, colours,
textures, counts, handwritten digits, faces), with varied caption templates that mention a random
subset of each image's attributes, so that contrastive training learns every concept separately."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from overspec.data.toy import faces
from overspec.data.toy.world import (
    COLOURS,
    COUNT_WORDS,
    DIGIT_WORDS,
    SHAPE_PLURALS,
    SHAPES,
    TEXTURES,
    ObjectScene,
    digit_bank,
    digit_split,
    render_digit,
    render_objects,
    render_texture_field,
)

DOMAIN_WEIGHTS = {"objects": 0.45, "texture": 0.15, "digit": 0.3, "face": 0.1}
PREFIXES = ("a photo of", "an image of", "a picture of", "", "a rendering of", "there is")
TEXTURE_ADJECTIVES = {t: t for t in TEXTURES}


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _objects_caption(scene: ObjectScene, rng: np.random.Generator) -> str:
    words = []
    if scene.count > 1:
        words.append(COUNT_WORDS[scene.count - 1])
    else:  # a single object is "one" often enough for the counting prompts to mean something
        words.append("one" if rng.random() < 0.4 else "a")
    if scene.texture != "plain" and rng.random() < 0.8:
        words.append(scene.texture)
    if rng.random() < 0.75:
        words.append(scene.colour)
    noun = SHAPE_PLURALS[scene.shape] if scene.count > 1 else scene.shape
    if rng.random() < 0.15 and len(words) > 1:  # attribute-only captions: "something red", "three things"
        noun = "things" if scene.count > 1 else "thing"
    words.append(noun)
    phrase = " ".join(w for w in words if w)
    prefix = _pick(rng, PREFIXES)
    if scene.count > 1 and rng.random() < 0.3:
        return f"{COUNT_WORDS[scene.count - 1]} objects: {phrase}"
    return f"{prefix} {phrase}".strip()


def _texture_caption(texture: str, colours: tuple[str, str], rng: np.random.Generator) -> str:
    forms = (
        f"a {texture} pattern",
        f"a {texture} texture in {colours[0]} and {colours[1]}",
        f"{colours[0]} and {colours[1]} {texture} background",
        f"a close up of a {texture} surface",
        f"a {texture} {colours[0]} fabric",
    )
    if texture == "plain":
        forms = (f"a plain {colours[0]} surface", f"plain {colours[0]} background",
                 f"a plain pattern, all {colours[0]}", "a plain texture")
    return _pick(rng, forms)


def _digit_caption(digit: int, rng: np.random.Generator) -> str:
    # Mostly number words, as in the evaluation prompts; sometimes the numeral, so both are learnt.
    name = DIGIT_WORDS[digit] if rng.random() < 0.85 else str(digit)
    forms = (
        f"a handwritten {name}",
        f"the number {name}",
        f'the digit "{name}"',
        f"a photo of the number {name}",
        f"a handwritten digit {name}",
        f"{name}, written by hand",
    )
    return _pick(rng, forms)


FACE_PHRASES = {
    "skin_tone": "{} skin", "hair_colour": "{} hair", "hair_style": "{} hair", "eye_colour": "{} eyes",
    "facial_hair": "a {}", "glasses": "{}", "face_shape": "a {} face", "expression": "a {} expression",
}


def _face_caption(identity: faces.FaceIdentity, rng: np.random.Generator) -> str:
    attrs = faces.face_attributes(identity)
    phrases = [FACE_PHRASES[k].format(v) for k, v in attrs.items()
               if k in FACE_PHRASES and v not in ("none", "no glasses") and not (k == "hair_style" and v == "bald")]
    if attrs.get("hair_style") == "bald":
        phrases.append("a bald head")
    subject = _pick(rng, ("a photo of a face", "a portrait of a person", "a close up of a human face", "a face"))
    if not phrases or rng.random() < 0.25:
        return subject
    return f"{subject} with {_pick(rng, phrases)}"


def build_corpus(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, list[str]]:
    """`n` images [n, size, size, 3] uint8 and their captions; deterministic for (n, seed, size)."""
    rng = np.random.default_rng([seed, 7])
    domains = list(DOMAIN_WEIGHTS)
    choice = rng.choice(len(domains), size=n, p=list(DOMAIN_WEIGHTS.values()))
    corpus_digits = digit_split(seed)["corpus"]
    _, digit_labels = digit_bank()
    identities = faces.sample_identities(400, np.random.default_rng([seed, 8]))
    images = np.empty((n, size, size, 3), np.uint8)
    captions: list[str] = []
    colour_names = list(COLOURS)
    for i in range(n):
        domain = domains[choice[i]]
        if domain == "objects":
            scene = ObjectScene(
                shape=_pick(rng, SHAPES), colour=_pick(rng, colour_names),
                texture=_pick(rng, TEXTURES) if rng.random() < 0.4 else "plain",
                count=1 if rng.random() < 0.5 else int(rng.integers(2, 6)),
            )
            images[i] = render_objects(scene, rng, size)
            captions.append(_objects_caption(scene, rng))
        elif domain == "texture":
            texture = _pick(rng, TEXTURES)
            pair = tuple(colour_names[j] for j in rng.choice(len(colour_names), size=2, replace=False))
            images[i] = render_texture_field(texture, rng, size, colours=pair)
            captions.append(_texture_caption(texture, pair, rng))
        elif domain == "digit":
            index = int(corpus_digits[rng.integers(len(corpus_digits))])
            images[i] = render_digit(index, rng, size)
            captions.append(_digit_caption(int(digit_labels[index]), rng))
        else:
            identity = identities[int(rng.integers(len(identities)))]
            images[i] = faces.render_face(identity, rng, size)
            captions.append(_face_caption(identity, rng))
    return images, captions


def write_corpus(path: str | Path, n: int, seed: int, size: int = 32, provenance: dict | None = None) -> None:
    """Store the corpus as one HDF5 file (`images` uint8, `captions` UTF-8), written atomically."""
    import h5py

    from overspec.provenance import atomic_path

    images, captions = build_corpus(n, seed, size)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.create_dataset("images", data=images, chunks=(min(n, 1024), size, size, 3))
            f.create_dataset("captions", data=np.array(captions, dtype=object), dtype=h5py.string_dtype())
            f.attrs["seed"] = seed
            f.attrs["size"] = size
            f.attrs["provenance"] = json.dumps(provenance or {}, sort_keys=True)


def read_corpus(path: str | Path) -> tuple[np.ndarray, list[str]]:
    import h5py

    with h5py.File(path, "r") as f:
        return f["images"][...], [c.decode() if isinstance(c, bytes) else c for c in f["captions"][...]]
