"""The toy world: deterministic from the seed, class-balanced, disjoint digits, readable back."""

from collections import Counter

import numpy as np
import pytest

from overspec.data.readers import ImageFolderSplit
from overspec.data.toy.corpus import build_corpus
from overspec.data.toy.general import TOY_DATASETS, sample_rng, write_toy_dataset
from overspec.data.toy.world import (
    COLOURS,
    SHAPES,
    TEXTURES,
    ObjectScene,
    digit_bank,
    digit_split,
    render_digit,
    render_objects,
    render_texture_field,
)


def test_renderers_are_deterministic_for_a_seed():
    for render in (
        lambda rng: render_objects(ObjectScene("star", "red", "striped", 3), rng),
        lambda rng: render_texture_field("checkered", rng),
        lambda rng: render_digit(5, rng),
    ):
        a, b = render(np.random.default_rng(3)), render(np.random.default_rng(3))
        assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, render(np.random.default_rng(4)))


def test_concepts_change_the_pixels():
    rng = lambda: np.random.default_rng(0)  # noqa: E731 - same nuisance, different concept
    red = render_objects(ObjectScene("circle", "red"), rng()).astype(int)
    blue = render_objects(ObjectScene("circle", "blue"), rng()).astype(int)
    assert red[..., 0].mean() > blue[..., 0].mean() and blue[..., 2].mean() > red[..., 2].mean()
    square = render_objects(ObjectScene("square", "red"), rng()).astype(int)
    assert np.abs(square - red).mean() > 1.0
    fields = [render_texture_field(t, rng(), colours=("black", "white")).astype(int) for t in TEXTURES]
    assert len({f.tobytes() for f in fields}) == len(TEXTURES)


def test_digit_split_is_disjoint_and_class_balanced():
    parts = digit_split(0)
    _, labels = digit_bank()
    all_indices = np.concatenate(list(parts.values()))
    assert len(all_indices) == len(set(all_indices.tolist()))
    for name, indices in parts.items():
        counts = Counter(labels[indices].tolist())
        assert set(counts) == set(range(10)) and len(set(counts.values())) == 1, name


def test_toy_datasets_are_class_balanced_and_deterministic(tmp_path):
    spec = TOY_DATASETS["toy_shapes"]
    sizes = write_toy_dataset("toy_shapes", tmp_path / "a", seed=0)
    assert sizes == {s: n * len(SHAPES) for s, n in spec.per_class.items()}
    for split, n in spec.per_class.items():
        reader = ImageFolderSplit(tmp_path / "a", split, spec.classes)
        assert Counter(reader.labels()) == {i: n for i in range(len(SHAPES))}
    write_toy_dataset("toy_shapes", tmp_path / "b", seed=0)
    for path in sorted((tmp_path / "a").rglob("*.png")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_each_toy_dataset_renders_every_class(name):
    spec = TOY_DATASETS[name]
    assert len(spec.templates) >= 3 and all("{c}" in t for t in spec.templates)
    for label in range(len(spec.classes)):
        image = spec.render(label, 0, "test", sample_rng(0, name, "test", label, 0), 32)
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8


def test_splits_use_independent_streams():
    a = TOY_DATASETS["toy_colours"].render(0, 0, "train", sample_rng(0, "toy_colours", "train", 0, 0), 32)
    b = TOY_DATASETS["toy_colours"].render(0, 0, "test", sample_rng(0, "toy_colours", "test", 0, 0), 32)
    assert not np.array_equal(a, b)


def test_corpus_is_deterministic_and_covers_every_domain():
    images, captions = build_corpus(400, seed=1)
    images2, captions2 = build_corpus(400, seed=1)
    np.testing.assert_array_equal(images, images2)
    assert captions == captions2
    text = " ".join(captions)
    assert any(c in text for c in COLOURS) and any(s in text for s in SHAPES)
    assert "face" in text or "person" in text
    assert "handwritten" in text or "number" in text or "digit" in text
    assert len(set(captions)) > 100  # varied templates, not one caption per concept
    _, other = build_corpus(400, seed=2)
    assert other != captions
