"""One training step's loss and accuracy, as the fine-tuning loop (`overspec.train.finetune`) and
LP-FT's probe (`overspec.train.lp_ft`) both log them. A module of its own because finetune imports
lp_ft."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from overspec.errors import UserError
from overspec.models.heads import MarginHead
from overspec.train.ddp import DistContext, all_reduce_sum


def step_figures(ctx: DistContext, head: nn.Module, embeddings: torch.Tensor, logits: torch.Tensor,
                 labels: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
    """[mean loss, accuracy] of one step over every rank, left on the device (no host sync)."""
    with torch.no_grad():
        # a margin head's accuracy is that of its plain logits: the margin only shapes the loss
        plain = head(embeddings.detach().float()) if isinstance(head, MarginHead) else logits.detach()
        correct = (plain.argmax(dim=1) == labels).sum().to(loss.dtype)
        count = loss.detach().new_full((), float(len(labels)))  # made on the device: a host tensor copy would sync
    totals = all_reduce_sum(ctx, torch.stack([loss.detach() * len(labels), correct, count]))
    return totals[:2] / totals[2]


def read_figures(figures: torch.Tensor, diverged: Callable[[float], str]) -> list[float]:
    """`figures` (mean loss first) on the host, a sync; a NaN/inf loss raises UserError(diverged(loss)),
    so training stops before anything is saved."""
    values = figures.tolist()
    if not math.isfinite(values[0]):
        raise UserError(diverged(values[0]))
    return values
