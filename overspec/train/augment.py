"""A recipe's training augmentation as torchvision transforms on PIL images of the model's size.

Published FoundPAD (its `TrainDataset`, albumentations) trains on: Resize(256) then RandomCrop(224),
HorizontalFlip, RandomGamma(gamma_limit=(80, 180)), RGBShift(20 per channel) and ColorJitter(0.1).
torchvision has the crop, flip and jitter; the gamma and the RGB shift are written here as per-channel
lookup tables. The three colour steps each apply to half the images, albumentations' default. Every random
draw comes from torch's default generator, which `batches.SeededView` seeds per (epoch, sample).
"""

from __future__ import annotations

import torch
from PIL import Image
from torchvision import transforms

from overspec.train.recipe import AugmentConfig

APPLY_PROBABILITY = 0.5  # albumentations' default p for RandomGamma, RGBShift and ColorJitter


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def _applies() -> bool:
    return torch.rand(()).item() < APPLY_PROBABILITY


class RandomGamma:
    """pixel -> 255 * (pixel / 255) ** gamma, gamma uniform in [low, high] / 100 (albumentations'
    gamma_limit: above 100 darkens the mid-tones, below brightens them)."""

    def __init__(self, limit: tuple[float, float]) -> None:
        self.low, self.high = (v / 100.0 for v in limit)

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _applies():
            return image
        gamma = _uniform(self.low, self.high)
        table = [round(255.0 * (i / 255.0) ** gamma) for i in range(256)]
        return image.point(table * len(image.getbands()))

    def __repr__(self) -> str:
        return f"RandomGamma(limit=({self.low * 100:g}, {self.high * 100:g}), p={APPLY_PROBABILITY})"


class RGBShift:
    """Each of R, G, B shifted by its own integer drawn uniformly from [-limit, limit], clipped to 0..255."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _applies():
            return image
        table: list[int] = []
        for _ in image.getbands():
            shift = round(_uniform(-self.limit, self.limit))
            table += [min(255, max(0, i + shift)) for i in range(256)]
        return image.point(table)

    def __repr__(self) -> str:
        return f"RGBShift(limit={self.limit}, p={APPLY_PROBABILITY})"


def augmentations(augment: AugmentConfig, size: tuple[int, int]) -> list:
    """The transforms for `augment`, in published FoundPAD's order, on images already `size` (h, w)."""
    steps: list = []
    if augment.random_crop is not None:  # published 224 of 256: resize up by 1/ratio, crop back to size
        steps += [transforms.Resize(tuple(round(side / augment.random_crop) for side in size)),
                  transforms.RandomCrop(size)]
    if augment.rand_augment:
        steps.append(transforms.RandAugment(augment.rand_augment_ops, augment.rand_augment_magnitude))
    if augment.hflip:
        steps.append(transforms.RandomHorizontalFlip(0.5))
    if augment.random_gamma is not None:
        steps.append(RandomGamma(augment.random_gamma))
    if augment.rgb_shift:
        steps.append(RGBShift(augment.rgb_shift))
    if augment.color_jitter:
        j = augment.color_jitter
        jitter = transforms.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(j, 0.5))
        steps.append(transforms.RandomApply([jitter], p=APPLY_PROBABILITY))
    return steps
