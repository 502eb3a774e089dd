"""The image encoder's hot loop: normalised uint8 batches in, float32 features out.

- GPU: bf16 autocast (fp16 where bf16 is unsupported); features are returned as float32.
- channels_last for convolutional towers (ResNet, ConvNeXt); ViTs gain nothing from it.
- CPU: nn.MultiheadAttention's inference "fast path" computes attention with plain bmm + softmax;
  its regular path calls scaled_dot_product_attention, whose fused CPU kernel is faster (same
  result within float rounding), so the fast path is switched off around the forward pass.
- Fixed forward shape: the model always sees `forward_rows` images (a short last batch is
  padded). On CPU this makes the features' bytes independent of the configured batch size: a
  GEMM's rounding depends on its shape (MKL picks kernels by size) but not on a row's neighbours
  or position. It also gives torch.compile a single graph to build.
- Out of memory: the forward size is halved and the batch retried, and the smaller size is kept
  for the rest of the job; only a single image that does not fit is an error.
- Optional torch.compile (CPU: inductor with weight freezing).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from overspec.embed.loader import normalize_batch
from overspec.errors import UserError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
CPU_FORWARD_ROWS = 64  # images per forward pass on CPU, whatever the batch size (byte-determinism)


def forward_rows(device: torch.device, batch_size: int) -> int:
    """Images per forward pass: fixed on CPU, the batch size on GPU."""
    return CPU_FORWARD_ROWS if device.type == "cpu" else batch_size


def loader_batch_size(device: torch.device, batch_size: int) -> int:
    """On CPU, a multiple of the forward size, so only the last batch of a split needs padding."""
    rows = forward_rows(device, batch_size)
    return max(rows, batch_size // rows * rows)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision actually used: 'auto' is bf16 on GPUs that have it, else fp16 on GPU, fp32 on CPU."""
    if precision not in PRECISIONS:
        raise UserError(f"Embedding precision '{precision}' is not one of {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


_OOM_TYPES = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's out-of-memory error, or a CPU allocation failure."""
    if isinstance(exc, _OOM_TYPES):
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
    rows: int = CPU_FORWARD_ROWS  # images per forward pass (halved when memory runs out)
    channels_last: bool = field(init=False)
    pad: bool = field(init=False)

    def __post_init__(self) -> None:
        self.channels_last = uses_convolutions(self.model)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.pad = self.device.type == "cpu" or self.compile
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one input shape all job long: autotuning pays off
        self._forward = self.model.encode_image
        if self.compile:
            options = {"freezing": True} if self.device.type == "cpu" else {}
            self._forward = torch.compile(self.model.encode_image, dynamic=False, options=options)

    @contextlib.contextmanager
    def _attention_path(self):
        if self.device.type != "cpu":
            yield
            return
        previous = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            yield
        finally:
            torch.backends.mha.set_fastpath_enabled(previous)

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_AUTOCAST[self.precision])

    def _run(self, pixels: torch.Tensor) -> torch.Tensor:
        n = len(pixels)
        if self.pad and n < self.rows:
            pixels = torch.cat([pixels, pixels.new_zeros((self.rows - n, *pixels.shape[1:]))])
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        images = normalize_batch(pixels, self.mean, self.std, layout)
        with self._autocast(), self._attention_path():
            features = self._forward(images)
        return features[:n].float()

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """float32 features [B, D] of a uint8 batch, run `rows` images at a time."""
        outputs, start = [], 0
        while start < len(pixels):
            size = min(self.rows, len(pixels) - start)
            try:
                features = self._run(pixels[start:start + size])
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                features = None  # handled outside the except block, once its traceback has freed the batch
            if features is None:
                self._release_memory()
                if self.rows == 1:
                    raise UserError(f"A single image does not fit in {self.device} memory with this model: "
                                    f"free the device or embed on a larger one.")
                self.rows //= 2
                log.warning("out of memory at %d images per forward pass on %s: continuing with batches of %d",
                            self.rows * 2, self.device, self.rows)
                continue
            outputs.append(features)
            start += size
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
