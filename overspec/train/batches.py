"""Where the fine-tuning loop's batches come from: the seeded sampling plan and its batch sources.

The loop asks a *batch source* for an iterable of (images, labels) and copies each batch to its
device (a no-op for tensors already there). Two sources:
- `LoaderBatches`, the real data path: read, decode and augment in DataLoader workers, batches
  prefetched ahead of the step that needs them; on GPUs pinned host memory, and each batch copied
  to the device on a side stream during the step before (`copied_ahead`);
- `DeviceBatches`, the same first batch made once and kept on the device for every step: the loop
  without its data path (a benchmark's reference, never used for a model that is kept).
Batches hold uint8 [B, H, W, 3] pixels; the loop makes them model input on its device (`to_model_input`).

Sampling is deterministic whatever the number of ranks or workers:
- the global batch of each step is a fixed slice of a seeded permutation of the data, and rank k
  takes every world_size-th sample of it (DDP's gradient average equals the single-process one);
- augmentation draws from a generator seeded by (seed, epoch, sample index).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

import numpy as np
import open_clip
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision import transforms

from overspec.data.train_sets import TrainSet
from overspec.embed.loader import normalize_batch, pil_to_hwc
from overspec.train.augment import augmentations
from overspec.train.ddp import DistContext
from overspec.train.recipe import FinetuneConfig

Batch = tuple[torch.Tensor, torch.Tensor]


def build_transform(preprocessing: dict[str, Any], config: FinetuneConfig) -> transforms.Compose:
    """The per-image part of the model's preprocessing (resize as the card says) with the recipe's
    augmentation: a PIL image in, uint8 [H, W, 3] pixels out. `to_model_input` finishes on the
    device what ToTensor and Normalize did per image (bit-identical, a quarter of the bytes to copy,
    and no float work in the workers)."""
    size = preprocessing["size"]
    base = open_clip.image_transform(
        tuple(size), is_train=False, mean=tuple(preprocessing["mean"]), std=tuple(preprocessing["std"]),
        resize_mode=preprocessing.get("resize_mode", "shortest"),
        interpolation=preprocessing.get("interpolation", "bicubic"),
    ).transforms
    to_tensor = next(i for i, t in enumerate(base) if isinstance(t, transforms.ToTensor))
    if [type(t) for t in base[to_tensor + 1:]] != [transforms.Normalize]:
        raise RuntimeError(f"open_clip's preprocessing ends in {base[to_tensor:]}, not ToTensor then Normalize; "
                           "overspec.train.batches.to_model_input must follow it.")
    augment = augmentations(config.augment, tuple(size))
    return transforms.Compose(base[:to_tensor] + augment + [pil_to_hwc])


def to_model_input(pixels: torch.Tensor, preprocessing: dict[str, Any]) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> the model's float32 [B, 3, H, W]: ToTensor then Normalize, on the pixels' device."""
    return normalize_batch(pixels.permute(0, 3, 1, 2), preprocessing["mean"], preprocessing["std"])


def hash_seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") & ((1 << 63) - 1)


class SeededView(Dataset):
    """Items are (epoch, index) keys; each sample is transformed under its own seeded RNG."""

    def __init__(self, train_set: TrainSet, transform, seed: int) -> None:
        self.train_set, self.transform, self.seed = train_set, transform, seed

    def __len__(self) -> int:
        return len(self.train_set)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        """uint8 [H, W, 3] pixels of sample `index` as augmented in `epoch`, and its label."""
        epoch, index = key
        image, label = self.train_set[index]
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: torch.manual_seed would also queue a (slow, stack-capturing) CUDA seed
            torch.default_generator.manual_seed(hash_seed(self.seed, epoch, index))
            return self.transform(image), label


def global_batches(labels: np.ndarray, config: FinetuneConfig, steps: int, steps_per_epoch: int) -> Iterator[tuple[int, list[int]]]:
    """(epoch, global batch indices) for each step: a seeded permutation per epoch, last partial batch dropped."""
    n = len(labels)
    counts = np.bincount(labels)
    weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.float64)
    for step in range(steps):
        epoch, within = divmod(step, steps_per_epoch)
        if within == 0:
            gen = torch.Generator().manual_seed(hash_seed(config.seed, epoch, 0xDA7A))
            order = (torch.multinomial(weights, n, replacement=True, generator=gen) if config.balanced_sampling
                     else torch.randperm(n, generator=gen))
        yield epoch, order[within * config.batch_size:(within + 1) * config.batch_size].tolist()


class LocalBatches:
    """This rank's share of every global batch, as (epoch, index) keys for `SeededView` (made lazily)."""

    def __init__(self, labels: np.ndarray, config: FinetuneConfig, steps: int, steps_per_epoch: int,
                 ctx: DistContext) -> None:
        self.args, self.steps, self.ctx = (labels, config, steps, steps_per_epoch), steps, ctx

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for epoch, indices in global_batches(*self.args):
            yield [(epoch, i) for i in indices[self.ctx.rank::self.ctx.world_size]]


@dataclass(frozen=True)
class BatchPlan:
    """What a batch source needs: the data, its transform, the recipe's sampling, the budget and the rank."""

    train_set: TrainSet
    transform: Any
    config: FinetuneConfig
    steps: int
    steps_per_epoch: int
    ctx: DistContext

    def dataset(self) -> SeededView:
        return SeededView(self.train_set, self.transform, self.config.seed)

    def keys(self) -> LocalBatches:
        return LocalBatches(self.train_set.labels, self.config, self.steps, self.steps_per_epoch, self.ctx)


class BatchSource(Protocol):
    def __call__(self, plan: BatchPlan) -> Iterable[Batch]: ...


@dataclass(frozen=True)
class LoaderBatches:
    """The real data path. Workers decode and augment, each keeping `prefetch_factor` batches ready
    (the loader makes one pass over every step of the budget, so its workers live as long as
    training). On a GPU, batches land in pinned memory and are copied to the device one step ahead."""

    num_workers: int = 0
    prefetch_factor: int = 4

    def __call__(self, plan: BatchPlan) -> Iterable[Batch]:
        on_gpu = plan.ctx.device.type == "cuda"
        loader = DataLoader(plan.dataset(), batch_sampler=plan.keys(), num_workers=self.num_workers,
                            pin_memory=on_gpu, prefetch_factor=self.prefetch_factor if self.num_workers else None)
        return copied_ahead(loader, plan.ctx.device) if on_gpu else loader


def copied_ahead(batches: Iterable[Batch], device: torch.device) -> Iterator[Batch]:
    """Batches on a CUDA device, each copied on a side stream while the step before it computes (a
    copy on the compute stream would add its time to every step)."""
    side = torch.cuda.Stream(device)
    compute = torch.cuda.current_stream(device)

    def start_copy(batch: Batch) -> Batch:
        with torch.cuda.stream(side):
            return tuple(t.to(device, non_blocking=True) for t in batch)

    source = iter(batches)
    ahead = next(source, None)
    ahead = None if ahead is None else start_copy(ahead)
    while ahead is not None:
        compute.wait_stream(side)
        for tensor in ahead:
            tensor.record_stream(compute)  # made on the side stream, used (and freed) on the compute one
        current = ahead
        following = next(source, None)
        ahead = None if following is None else start_copy(following)
        yield current


@dataclass(frozen=True)
class DeviceBatches:
    """The plan's first batch, made once and kept on the device, for every step: the loop minus its data path."""

    def __call__(self, plan: BatchPlan) -> Iterator[Batch]:
        keys = next(iter(plan.keys()))
        dataset = plan.dataset()
        images, labels = default_collate([dataset[key] for key in keys])
        images, labels = images.to(plan.ctx.device), labels.to(plan.ctx.device)
        return iter([(images, labels)] * plan.steps)
