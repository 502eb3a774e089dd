"""L2-SP (Li et al., ICML 2018): keep the adapted image encoder near its pretrained weights theta_0.

Li et al. add (weight / 2) * ||theta - theta_0||^2 to the loss and train with SGD. overspec's recipes
train with AdamW, which divides each gradient by its running magnitude: a penalty gradient in the
loss then moves weights by about the learning rate whatever the weight, so even a huge weight leaves
the encoder oscillating around theta_0 instead of at it. So the penalty is applied as its own step,
decoupled from the Adam statistics as AdamW decouples weight decay: after each optimiser step,

    theta <- theta_0 + (theta - theta_0) / (1 + lr_encoder * weight),

the exact (proximal) minimiser of the penalty plus the distance to the Adam update. `weight` is in
weight_decay's units; weight 0 changes nothing, a huge weight keeps the encoder at theta_0.

What is penalised is the adapted encoder weight minus the pretrained one. With LoRA the adapted
weight is W_0 + scale * B @ A, so the distance is that of the LoRA update: scaling B by the factor
scales the update by it exactly (A keeps its scale, so the update's directions are kept). Any other
trainable encoder parameter (full fine-tuning) is pulled towards its value at the start of training.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from overspec.models.lora import lora_modules


class L2SP:
    """The pull of one fine-tune's trainable encoder parameters towards their pretrained values."""

    def __init__(self, model: nn.Module, encoder_params: Iterable[nn.Parameter], weight: float) -> None:
        self.weight = float(weight)
        self.lora = lora_modules(model)
        in_lora = {id(p) for m in self.lora for d in (m.lora_A, m.lora_B) for p in d.values()}
        # the copy of theta_0: only for parameters that are themselves encoder weights (not LoRA factors)
        self.anchored = [(p, p.detach().clone()) for p in encoder_params if id(p) not in in_lora]

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """Shrink every adapted weight's distance to theta_0 by 1 / (1 + lr * weight)."""
        if self.weight == 0 or lr == 0:
            return
        factor = 1.0 / (1.0 + lr * self.weight)
        for module in self.lora:
            for b in module.lora_B.values():
                b.mul_(factor)
        for p, p0 in self.anchored:
            p.sub_(p0).mul_(factor).add_(p0)

    @torch.no_grad()
    def distance(self) -> float:
        """||theta - theta_0||^2 over the adapted encoder weights (LoRA: the squared norm of each update)."""
        total = torch.zeros((), dtype=torch.float64)
        for module in self.lora:
            for target in module.lora_B:
                total += module.delta(target).double().pow(2).sum().cpu()
        for p, p0 in self.anchored:
            total += (p.double() - p0.double()).pow(2).sum().cpu()
        return float(total)
