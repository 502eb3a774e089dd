"""The image encoder's hot loop: normalised uint8 batches in, float32 features out.

- GPU: bf16 autocast (fp16 where bf16 is unsupported); features are returned as float32.
- channels_last for convolutional towers (ResNet, ConvNeXt); ViTs gain nothing from it.
- Out of memory: the batch is split in halves and retried, and the smaller size is kept for the
  rest of the job; only a single image that does not fit is an error.
- Optional torch.compile (CPU: inductor with weight freezing); batches are padded to one shape so
  the compiled graph is reused instead of recompiled for every short batch.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Sequence

import torch

from overspec.embed.loader import normalize_batch
from overspec.errors import UserError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision actually used: 'auto' is bf16 on GPUs that have it, else fp16 on GPU, fp32 on CPU."""
    if precision not in PRECISIONS:
        raise UserError(f"Embedding precision '{precision}' is not one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    message = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def uses_convolutions(model: torch.nn.Module) -> bool:
    """A vision tower with convolutions beyond the patch embedding (where channels_last pays)."""
    convs = [m for m in model.visual.modules() if isinstance(m, torch.nn.Conv2d)]
    return len(convs) > 1


@dataclass
class ImageEncoder:
    """Calls `model.encode_image` on uint8 batches [B, 3, H, W] already on `device`."""

    model: torch.nn.Module
    device: torch.device
    mean: Sequence[float]
    std: Sequence[float]
    precision: str = "fp32"
    compile: bool = False
    batch_size: int | None = None  # the loader's batch size: compiled graphs are built for it
    piece: int | None = None  # largest batch known to fit; None until memory has run out once
    channels_last: bool = field(init=False)

    def __post_init__(self) -> None:
        self.channels_last = uses_convolutions(self.model) and self.device.type in ("cuda", "cpu")
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._forward = self.model.encode_image
        if self.compile:
            options = {"freezing": True} if self.device.type == "cpu" else {}
            self._forward = torch.compile(self.model.encode_image, dynamic=False, options=options)

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_AUTOCAST[self.precision])

    def _run(self, pixels: torch.Tensor) -> torch.Tensor:
        n = len(pixels)
        target = self.piece or self.batch_size
        if self.compile and target and n < target:  # one shape: no recompilation for short batches
            pad = pixels.new_zeros((target - n, *pixels.shape[1:]))
            pixels = torch.cat([pixels, pad])
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        images = normalize_batch(pixels, self.mean, self.std, layout)
        with self._autocast():
            features = self._forward(images)
        return features[:n].float()

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """float32 features [B, D] of a uint8 batch, halving the batch while memory runs out."""
        outputs, start = [], 0
        while start < len(pixels):
            size = min(self.piece or len(pixels), len(pixels) - start)
            try:
                features = self._run(pixels[start:start + size])
            except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled here
                if not is_out_of_memory(exc):
                    raise
                features = None  # handled outside the except block, once its traceback has freed the batch
            if features is None:
                self._release_memory()
                if size == 1:
                    raise UserError(f"A single image does not fit in {self.device} memory with this model: "
                                    f"free the device or embed on a larger one.")
                self.piece = size // 2
                log.warning("out of memory at batch %d on %s: continuing with batches of %d", size, self.device,
                            self.piece)
                continue
            outputs.append(features)
            start += size
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
