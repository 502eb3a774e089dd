"""Toy general-vision datasets: labelled draws from the toy world with class names, prompt templates
and fixed, class-balanced train / val / test splits. They are written to disk as image folders
(`<root>/<split>/<class>/<index>.png`) and read back by the same reader as real image-folder data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from overspec.data.toy.world import (
    COLOURS,
    COUNT_WORDS,
    DIGIT_WORDS,
    SHAPES,
    TEXTURES,
    ObjectScene,
    digit_split,
    render_digit,
    render_objects,
    render_texture_field,
)

SPLITS = ("train", "val", "test")

Renderer = Callable[[int, int, str, np.random.Generator, int], np.ndarray]  # (label, index, split, rng, size)


@dataclass(frozen=True)
class ToyDataset:
    name: str
    classes: tuple[str, ...]
    templates: tuple[str, ...]
    per_class: dict[str, int]
    render: Renderer
    primary_metric: str = "top1"

    def split_sizes(self) -> dict[str, int]:
        return {split: n * len(self.classes) for split, n in self.per_class.items()}


def _colour_sample(label: int, index: int, split: str, rng: np.random.Generator, size: int) -> np.ndarray:
    scene = ObjectScene(shape=str(rng.choice(SHAPES)), colour=list(COLOURS)[label])
    return render_objects(scene, rng, size)


def _shape_sample(label: int, index: int, split: str, rng: np.random.Generator, size: int) -> np.ndarray:
    texture = str(rng.choice(TEXTURES)) if rng.random() < 0.3 else "plain"
    scene = ObjectScene(shape=SHAPES[label], colour=str(rng.choice(list(COLOURS))), texture=texture)
    return render_objects(scene, rng, size)


def _texture_sample(label: int, index: int, split: str, rng: np.random.Generator, size: int) -> np.ndarray:
    return render_texture_field(TEXTURES[label], rng, size)


def _count_sample(label: int, index: int, split: str, rng: np.random.Generator, size: int) -> np.ndarray:
    scene = ObjectScene(shape=str(rng.choice(SHAPES)), colour=str(rng.choice(list(COLOURS))), count=label + 1)
    return render_objects(scene, rng, size)


def _digit_sample(label: int, index: int, split: str, rng: np.random.Generator, size: int) -> np.ndarray:
    from overspec.data.toy.world import digit_bank

    _, labels = digit_bank()
    pool = digit_split()[split]
    glyphs = pool[labels[pool] == label]
    return render_digit(int(glyphs[index % len(glyphs)]), rng, size)


# Prompt ensembles in the style of the OpenAI sets: several phrasings per dataset, none of which is
# copied verbatim from the pretraining captions.
TOY_DATASETS: dict[str, ToyDataset] = {
    d.name: d
    for d in (
        ToyDataset(
            "toy_colours", tuple(COLOURS),
            ("a photo of a {c} object.", "a {c} thing.", "something coloured {c}.", "the colour {c}."),
            {"train": 50, "val": 15, "test": 40}, _colour_sample,
        ),
        ToyDataset(
            "toy_shapes", SHAPES,
            ("a photo of a {c}.", "a {c} shape.", "a drawing of a {c}.", "a picture of a single {c}."),
            {"train": 60, "val": 15, "test": 50}, _shape_sample,
        ),
        ToyDataset(
            "toy_textures", TEXTURES,
            ("a {c} pattern.", "a photo of a {c} texture.", "a {c} surface.", "a close-up of a {c} pattern."),
            {"train": 50, "val": 15, "test": 40}, _texture_sample,
        ),
        ToyDataset(
            "toy_counting", COUNT_WORDS,
            ("a photo of {c} objects.", "{c} shapes.", "a picture with {c} things in it.", "a group of {c} objects."),
            {"train": 60, "val": 15, "test": 50}, _count_sample,
        ),
        ToyDataset(
            "toy_digits", DIGIT_WORDS,
            ('a photo of the number: "{c}".', "a handwritten {c}.", "the digit {c}.", "a drawing of the number {c}."),
            {"train": 45, "val": 12, "test": 30}, _digit_sample, primary_metric="mean_per_class_recall",
        ),
    )
}

_SPLIT_IDS = {split: i for i, split in enumerate(SPLITS)}


def sample_rng(seed: int, dataset: str, split: str, label: int, index: int) -> np.random.Generator:
    """One independent stream per image, so any image can be regenerated on its own."""
    dataset_id = sorted(TOY_DATASETS).index(dataset)
    return np.random.default_rng([seed, 1000 + dataset_id, _SPLIT_IDS[split], label, index])


def write_toy_dataset(name: str, root: str | Path, seed: int, size: int = 32) -> dict[str, int]:
    """Write all splits of toy dataset `name` as an image folder under `root`; returns split sizes."""
    from PIL import Image

    spec = TOY_DATASETS[name]
    root = Path(root)
    for split, n in spec.per_class.items():
        for label, cls in enumerate(spec.classes):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(n):
                image = spec.render(label, index, split, sample_rng(seed, name, split, label, index), size)
                Image.fromarray(image).save(folder / f"{index:05d}.png")
    return spec.split_sizes()
