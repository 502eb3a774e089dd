"""Batches of uint8 pixels for the image encoder, fetched off the main thread where that pays.

open_clip's evaluation transform is split in two: its geometric part (resize, crop) runs per image
in DataLoader workers, on PIL images exactly as open_clip does; its `ToTensor` + `Normalize` part
runs on the whole batch on the device (`normalize_batch`), with the same float32 operations in the
same order, so the pixels the model sees are bit-identical to open_clip's per-sample transform.
Moving uint8 instead of float32 also cuts host-to-device traffic by four.

Three ways to fill a batch (`BatchKind`):
- `pixels`: per image, `reader.load` (PIL) then the geometric transform; the general path.
- `raw`: datasets held in memory as one uint8 array (CIFAR, MNIST, STL10, SVHN, FER2013) are
  sliced as a whole batch and resized on the device (GPU) with Pillow's exact arithmetic
  (`overspec.embed.pil_resize`): no per-image Python work at all, and the same pixels.
- `encoded`: JPEG files are read as bytes in workers and decoded on the GPU with nvjpeg
  (`torchvision.io.decode_jpeg`); other files in the batch are decoded with PIL in the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip.transform import image_transform
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import Compose, Normalize, ToTensor
from torchvision.transforms import functional as tv_functional

from overspec.data.readers import ArraySplit, FileListSplit, ImageFolderSplit, SplitReader, SubsetSplit, open_image_rgb
from overspec.embed.pil_resize import pil_resize
from overspec.errors import UserError

JPEG_MAGIC = b"\xff\xd8\xff"


def eval_transform(preprocessing: dict[str, Any]) -> Compose:
    """open_clip's own evaluation transform for the model's preprocessing settings."""
    return image_transform(
        tuple(preprocessing["size"]), is_train=False, mean=tuple(preprocessing["mean"]),
        std=tuple(preprocessing["std"]), resize_mode=preprocessing["resize_mode"],
        interpolation=preprocessing["interpolation"],
    )


@dataclass(frozen=True)
class Preprocess:
    """open_clip's evaluation transform, split into a per-image geometric part and a batched
    normalisation. `geometric` works on PIL images; `geometric_tensor` does the same on uint8
    tensors [..., 3, H, W] on any device, bit-identically (Pillow's resize reproduced), where the
    resize mode allows it (`on_tensors`; open_clip's 'longest' mode is PIL only)."""

    geometric: Compose
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_mode: str
    size: tuple[int, int]
    interpolation: str

    @classmethod
    def from_preprocessing(cls, preprocessing: dict[str, Any]) -> Preprocess:
        steps = eval_transform(preprocessing).transforms
        *geometric, _convert_mode, to_tensor, normalize = steps
        if not (isinstance(to_tensor, ToTensor) and isinstance(normalize, Normalize)):
            raise RuntimeError(f"open_clip's evaluation transform changed shape ({steps}); update overspec.embed.loader.")
        return cls(Compose(geometric), tuple(normalize.mean), tuple(normalize.std), preprocessing["resize_mode"],
                   tuple(preprocessing["size"]), preprocessing["interpolation"])

    @property
    def on_tensors(self) -> bool:
        square = self.size[0] == self.size[1]
        return self.interpolation in ("bicubic", "bilinear") and (
            self.resize_mode == "squash" or (self.resize_mode == "shortest" and square))

    def geometric_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """torchvision's Resize (+ CenterCrop) as open_clip configures them, with Pillow's arithmetic."""
        if self.resize_mode == "squash":
            return pil_resize(images, self.size, self.interpolation)
        height, width = images.shape[-2:]
        side = self.size[0]
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(side * long / short)  # torchvision's _compute_resized_output_size
        target = (new_long, side) if width <= height else (side, new_long)
        return tv_functional.center_crop(pil_resize(images, target, self.interpolation), list(self.size))


def normalize_batch(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                    memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """uint8 [B, 3, H, W] (any strides) -> float32 in `memory_format`, exactly torchvision's ToTensor
    then Normalize applied image by image (elementwise float32 operations do not depend on layout)."""
    images = pixels.to(torch.float32, memory_format=memory_format).div_(255)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    return images.sub_(mean_t).div_(std_t)


def pil_to_hwc(image: Image.Image) -> torch.Tensor:
    """uint8 [H, W, 3] of a PIL image converted to RGB (batches are stacked in this layout: a plain
    memory copy, and the float conversion on the device does the transpose)."""
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8, copy=True))


class TransformedSamples:
    """Image `index` of a reader after the geometric transform, as uint8 [H, W, 3]."""

    def __init__(self, reader: SplitReader, geometric: Callable) -> None:
        self.reader, self.geometric = reader, geometric

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> torch.Tensor:
        return pil_to_hwc(self.geometric(self.reader.load(index)))


def in_memory_array(reader: SplitReader) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(uint8 image array, index map into it or None) for splits held in memory; None otherwise."""
    if isinstance(reader, ArraySplit) and isinstance(reader.images, np.ndarray) and reader.images.dtype == np.uint8:
        return reader.images, None
    if isinstance(reader, SubsetSplit):
        inner = in_memory_array(reader.base)
        if inner is not None:
            images, mapping = inner
            indices = np.asarray(reader.indices, dtype=np.int64)
            return images, indices if mapping is None else mapping[indices]
    return None


def file_paths(reader: SplitReader) -> list[Path] | None:
    """The image file of every sample, for splits stored one file per image; None otherwise."""
    if isinstance(reader, (ImageFolderSplit, FileListSplit)):
        return [Path(reader.root) / sample_id for sample_id in reader.ids()]
    if isinstance(reader, SubsetSplit):
        inner = file_paths(reader.base)
        return None if inner is None else [inner[i] for i in reader.indices]
    return None


def as_rgb_batch(images: np.ndarray) -> np.ndarray:
    """[B, H, W] / [B, H, W, 1|3|4] uint8 -> [B, H, W, 3], as PIL's convert("RGB") does it."""
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        return np.repeat(images, 3, axis=-1)
    if images.shape[-1] == 4:
        return images[..., :3]  # RGBA -> RGB drops alpha, like PIL
    if images.shape[-1] != 3:
        raise UserError(f"In-memory images have {images.shape[-1]} channels; only 1, 3 or 4 can be embedded.")
    return images


@dataclass(frozen=True)
class BatchKey:
    """Images [start, stop) of split number `split` (a batch never spans two splits)."""

    split: int
    start: int
    stop: int


BatchKind = str  # "pixels" | "raw" | "encoded"


class SplitBatches(Dataset):
    """Dataset whose items are whole batches (`BatchKey` -> payload), so workers fill batches in
    parallel and in-memory splits are sliced in one go. Use with `DataLoader(batch_size=None)`."""

    def __init__(self, readers: Sequence[SplitReader], preprocess: Preprocess, resize_on_device: bool,
                 decode_on_device: bool, samples_class: type = TransformedSamples) -> None:
        self.samples = [samples_class(reader, preprocess.geometric) for reader in readers]
        self.arrays = [in_memory_array(reader) if resize_on_device else None for reader in readers]
        self.paths = [file_paths(reader) if decode_on_device else None for reader in readers]

    def kind(self, split: int) -> BatchKind:
        if self.arrays[split] is not None:
            return "raw"
        return "encoded" if self.paths[split] is not None else "pixels"

    def __len__(self) -> int:  # only the sampler's keys are ever asked for
        return sum(len(s) for s in self.samples)

    def __getitem__(self, key: BatchKey) -> dict[str, Any]:
        kind = self.kind(key.split)
        if kind == "raw":
            images, mapping = self.arrays[key.split]
            rows = images[key.start:key.stop] if mapping is None else images[mapping[key.start:key.stop]]
            data: Any = torch.from_numpy(np.ascontiguousarray(as_rgb_batch(rows)))
        elif kind == "encoded":
            data = [self._encoded_or_pixels(key.split, i) for i in range(key.start, key.stop)]
        else:
            samples = self.samples[key.split]
            data = torch.stack([samples[i] for i in range(key.start, key.stop)])
        return {"kind": kind, "split": key.split, "start": key.start, "stop": key.stop, "data": data}

    def _encoded_or_pixels(self, split: int, index: int) -> torch.Tensor:
        """JPEG bytes (1-D uint8) for the GPU decoder; anything else decoded here ([H, W, 3] uint8)."""
        path = self.paths[split][index]
        try:
            raw = path.read_bytes()
        except OSError:
            open_image_rgb(path)  # raises the reader's one-sentence error
            raise
        if raw.startswith(JPEG_MAGIC):
            return torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        return self.samples[split][index]


class FittedBatches(Dataset):
    """Batches of a reader's images after the geometric transform, for `fitted_batches`. A `UserError`
    (a file that cannot be decoded) comes back as its sentence: raised in a worker, the DataLoader
    would wrap it in the worker's traceback."""

    def __init__(self, samples: TransformedSamples) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: BatchKey) -> torch.Tensor | str:
        try:
            images = [self.samples[i] for i in range(key.start, key.stop)]
        except UserError as err:
            return str(err)
        if len({tuple(image.shape) for image in images}) > 1:
            return (f"Images {key.start}..{key.stop - 1} of the list differ in size after the geometric transform "
                    f"given: pass the model's preprocessing, which resizes each image.")
        return torch.stack(images)


def fitted_batches(reader: SplitReader, geometric: Callable, batch_size: int,
                   num_workers: int = 0) -> Iterator[np.ndarray]:
    """uint8 [B, H, W, 3] batches of every image of `reader`, each resized and cropped by `geometric`
    (the model's own transform, per image, in `num_workers` DataLoader workers, as the general path
    does) before batching: images of any size and aspect ratio batch together, and only a few batches
    are in memory at a time however long the list."""
    keys = plan_batches([len(reader)], [0], batch_size)
    loader = make_loader(FittedBatches(TransformedSamples(reader, geometric)), keys, num_workers, pin_memory=False)
    for batch in loader:
        if isinstance(batch, str):
            raise UserError(batch)
        yield batch.numpy()


def plan_batches(sizes: Sequence[int], done: Sequence[int], batch_size: int) -> list[BatchKey]:
    """Batches covering images [done[s], sizes[s]) of every split s, in order."""
    return [BatchKey(split, start, min(start + batch_size, size))
            for split, (size, first) in enumerate(zip(sizes, done))
            for start in range(first, size, batch_size)]


def make_loader(batches: SplitBatches, keys: list[BatchKey], num_workers: int, pin_memory: bool) -> DataLoader:
    """One loader over every split, so workers start once per job (persistent workers would buy
    nothing more: the loader is iterated exactly once)."""
    return DataLoader(batches, batch_size=None, sampler=keys, num_workers=num_workers, pin_memory=pin_memory,
                      prefetch_factor=4 if num_workers > 0 else None)


def decode_on(data: list[torch.Tensor], geometric_tensor: Callable, device: torch.device,
              fallback: Callable[[int], torch.Tensor]) -> torch.Tensor:
    """Finish an `encoded` batch on `device`: decode the JPEGs there (nvjpeg on GPU), apply the
    geometric transform to each, and stack with the images the workers already decoded ([H, W, 3]
    items, and `fallback(i)` for JPEGs the device decoder refuses). Returns uint8 [B, 3, H, W]."""
    from torchvision.io import ImageReadMode, decode_jpeg

    jpeg_positions = [i for i, item in enumerate(data) if item.dim() == 1]
    out: list[torch.Tensor | None] = [None if item.dim() == 1 else item.to(device, non_blocking=True).permute(2, 0, 1)
                                      for item in data]
    if jpeg_positions:
        try:
            decoded = decode_jpeg([data[i] for i in jpeg_positions], mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # one undecodable file (CMYK, corrupt) fails the whole call: go one by one
            decoded = []
            for i in jpeg_positions:
                try:
                    decoded.append(decode_jpeg(data[i], mode=ImageReadMode.RGB, device=device))
                except RuntimeError:
                    decoded.append(None)
        for i, image in zip(jpeg_positions, decoded):
            out[i] = geometric_tensor(image) if image is not None else fallback(i).to(device).permute(2, 0, 1)
    return torch.stack(out)
