"""Published FoundPAD's augmentation: random crop, gamma, RGB shift, colour jitter (overspec.train.augment)."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from overspec.errors import UserError
from overspec.train.augment import RandomGamma, RGBShift, augmentations
from overspec.train.recipe import FinetuneConfig

PUBLISHED = {"hflip": True, "random_crop": 0.875, "random_gamma": [80, 180], "rgb_shift": 20, "color_jitter": 0.1}


def _image(seed=0, size=8):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _applied(transform, image, attempts=50):
    """The first output that differs from the input (each colour step applies to half the images)."""
    for seed in range(attempts):
        torch.manual_seed(seed)
        out = transform(image)
        if np.asarray(out).tobytes() != np.asarray(image).tobytes():
            return np.asarray(out).astype(int)
    raise AssertionError(f"{transform} never changed the image in {attempts} draws")


def test_gamma_maps_each_level_by_one_power_within_the_limit():
    image = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2))
    levels = np.arange(256).reshape(16, 16)
    out = _applied(RandomGamma((80, 180)), image)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()
    # recover gamma from a mid level and check every level against 255 * (x / 255) ** gamma
    gamma = np.log(out[..., 0].flat[128] / 255) / np.log(128 / 255)
    assert 0.8 - 0.02 <= gamma <= 1.8 + 0.02
    expected = np.round(255 * (levels / 255) ** gamma)
    assert np.abs(out[..., 0] - expected).max() <= 1
    assert out[..., 0].flat[0] == 0 and out[..., 0].flat[255] == 255  # black and white stay


def test_rgb_shift_moves_each_channel_by_its_own_integer_and_clips():
    image = Image.fromarray(np.full((4, 4, 3), [0, 128, 255], dtype=np.uint8))
    seen = set()
    for seed in range(200):
        torch.manual_seed(seed)
        out = np.asarray(RGBShift(20)(image)).astype(int)
        assert (out == out[0, 0]).all()  # one shift per channel, the same for every pixel
        r, g, b = out[0, 0]
        assert 0 <= r <= 20 and 108 <= g <= 148 and 235 <= b <= 255
        seen.add(g - 128)
    assert 0 in seen and len(seen) > 20  # half the images untouched, the rest spread over [-20, 20]
    assert min(seen) >= -20 and max(seen) <= 20


def test_colour_steps_apply_to_about_half_the_images():
    image = _image()
    for step in (RandomGamma((150, 180)), RGBShift(20)):
        changed = 0
        for seed in range(400):
            torch.manual_seed(seed)
            changed += np.asarray(step(image)).tobytes() != np.asarray(image).tobytes()
        assert 160 <= changed <= 240, (step, changed)


def test_published_recipe_builds_foundpads_steps_in_order_and_is_seeded():
    config = FinetuneConfig.from_dict({"task": "pad", "max_steps": 1, "augment": PUBLISHED})
    steps = augmentations(config.augment, (32, 32))
    assert [type(s).__name__ for s in steps] == ["Resize", "RandomCrop", "RandomHorizontalFlip", "RandomGamma",
                                                  "RGBShift", "RandomApply"]
    assert steps[0].size == (37, 37) and steps[1].size == (32, 32)  # 32 / 0.875 = 36.6: crop 32 of 37
    assert isinstance(steps[-1].transforms[0], transforms.ColorJitter) and steps[-1].p == 0.5
    compose, image = transforms.Compose(steps), _image(size=32)
    torch.manual_seed(7)
    first = np.asarray(compose(image))
    torch.manual_seed(7)
    assert np.array_equal(first, np.asarray(compose(image))) and first.shape == (32, 32, 3)
    assert FinetuneConfig.from_dict(config.to_dict()) == config


def test_defaults_add_no_step():
    config = FinetuneConfig.from_dict({"task": "pad", "max_steps": 1, "augment": {"hflip": False}})
    assert augmentations(config.augment, (32, 32)) == []


@pytest.mark.parametrize("bad, key", [({"random_crop": 0}, "random_crop"), ({"random_crop": 1.5}, "random_crop"),
                                      ({"random_gamma": [180, 80]}, "random_gamma"),
                                      ({"random_gamma": [80]}, "random_gamma"),
                                      ({"rgb_shift": -1}, "rgb_shift"), ({"rgb_shift": 2.5}, "rgb_shift")])
def test_bad_augmentation_names_the_recipe_key(bad, key):
    with pytest.raises(UserError, match=rf"^recipes\.toy-pad\.augment\.{key} is .*; it must be"):
        FinetuneConfig.from_dict({"task": "pad", "max_steps": 1, "augment": bad}, where="recipes.toy-pad")
