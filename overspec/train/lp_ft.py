"""LP-FT (Kumar et al., ICLR 2022): first train the head alone on the frozen encoder (the linear
probe), then fine-tune everything the recipe trains, starting from that head.

A randomly initialised head sends large, arbitrary gradients into the encoder during the first
steps of a fine-tune and so distorts the pretrained features; a probed head asks the encoder only
for what the features lack. Phase 1 (`probe_head`) runs `lp_ft.probe_steps` steps: the encoder
computes embeddings in eval mode without gradients (no encoder weight can change, LoRA or not), the
head trains with AdamW at the recipe's constant lr_head (no warm-up: it is the only thing moving),
its gradients averaged over DDP ranks by hand, as the DDP wrapper is bypassed. Its batches are
drawn with their own seed, so phase 2 still sees the recipe's own batches. Its log rows carry
phase "probe" and steps -probe_steps+1 .. 0, before the fine-tune's step 1.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ContextManager, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from overspec.train.batches import hash_seed, to_model_input
from overspec.train.ddp import DistContext, all_reduce_sum
from overspec.train.recipe import FinetuneConfig
from overspec.train.step_figures import read_figures, step_figures

PROBE_STREAM = 0x1F7  # mixed into the recipe's seed for the probe phase's batches


def probe_seed(seed: int) -> int:
    return hash_seed(seed, PROBE_STREAM) % (2**31)


def probe_head(visual: nn.Module, head: nn.Module, batches: Iterable, config: FinetuneConfig,
               preprocessing: dict[str, Any], ctx: DistContext, autocast: Callable[[], ContextManager],
               steps_per_epoch: int) -> list[dict[str, Any]]:
    """Train `head` alone on `visual`'s embeddings for the batches given; the log rows, one per step."""
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr_head, betas=config.betas,
                                  weight_decay=config.weight_decay)
    probe_steps = config.lp_ft.probe_steps
    was_training = visual.training
    visual.eval()
    rows = []
    for step, (images, labels) in enumerate(batches):
        images = to_model_input(images.to(ctx.device, non_blocking=True), preprocessing)
        labels = labels.to(ctx.device, non_blocking=True)
        with torch.no_grad(), autocast():
            embeddings = F.normalize(visual(images).float(), dim=-1)
        logits = head(embeddings, labels)
        loss = head.loss(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if ctx.distributed:
            for p in head.parameters():
                if p.grad is not None:
                    p.grad.copy_(all_reduce_sum(ctx, p.grad) / ctx.world_size)
        norm = torch.nn.utils.clip_grad_norm_(list(head.parameters()), config.grad_clip or math.inf)
        optimizer.step()
        # after the step: a margin head's accuracy is that of the updated head
        figures = step_figures(ctx, head, embeddings, logits, labels, loss)
        mean_loss, accuracy = read_figures(figures, lambda value: (
            f"The LP-FT probe diverged at probe step {step + 1} (loss {value}); nothing was saved: lower "
            f"lr_head ({config.lr_head})."))
        rows.append({"step": step + 1 - probe_steps, "epoch": step // steps_per_epoch, "loss": mean_loss,
                     "lr_encoder": 0.0, "lr_head": config.lr_head, "grad_norm": 0.0, "grad_norm_head": float(norm),
                     "accuracy": accuracy, "phase": "probe"})
    visual.train(was_training)
    return rows
