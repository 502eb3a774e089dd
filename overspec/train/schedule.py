"""Learning-rate schedule of the published recipes: warm-up, then cosine annealing with warm restarts.

The published code chains `ConstantLR(factor)` for `num_warmup_epochs` and
`CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)` in a `SequentialLR`, stepped once per epoch.
`lr_at` is that schedule as a pure function of the step counter t (in whatever unit the recipe
chooses: epochs, as published, or optimiser steps for short runs), so every rank and every rerun
computes the same value without scheduler state. `warmup_mode="linear"` ramps from
`warmup_factor * lr` to lr instead of holding it constant.

`kind="constant"` is the effective schedule of MADation / FoundPAD, whose code sets
`eta_min` to the base learning rate, which makes the cosine flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from overspec.errors import UserError


@dataclass(frozen=True)
class ScheduleConfig:
    kind: str = "cosine_restarts"  # or "constant"
    unit: str = "epoch"  # what t counts: "epoch" (published) or "step"
    warmup: int = 5
    warmup_mode: str = "constant"  # published ConstantLR(factor=1); "linear" ramps up
    warmup_factor: float = 1.0
    T_0: int = 5
    T_mult: int = 2
    eta_min: float = 1e-6

    def __post_init__(self) -> None:
        if self.kind not in ("cosine_restarts", "constant"):
            raise UserError(f"Schedule kind '{self.kind}' is unknown: use cosine_restarts or constant.")
        if self.unit not in ("epoch", "step"):
            raise UserError(f"Schedule unit '{self.unit}' is unknown: use epoch or step.")
        if self.warmup_mode not in ("constant", "linear"):
            raise UserError(f"Warm-up mode '{self.warmup_mode}' is unknown: use constant or linear.")
        if self.T_0 < 1 or self.T_mult < 1 or self.warmup < 0:
            raise UserError(f"Schedule needs T_0 >= 1, T_mult >= 1 and warmup >= 0 (got {self.T_0}, {self.T_mult}, {self.warmup}).")


def lr_at(t: int, base_lr: float, cfg: ScheduleConfig) -> float:
    """The learning rate after `t` scheduler steps (t = 0 before the first step)."""
    if cfg.kind == "constant":
        return base_lr
    if t < cfg.warmup:
        if cfg.warmup_mode == "constant":
            return base_lr * cfg.warmup_factor
        return base_lr * (cfg.warmup_factor + (1.0 - cfg.warmup_factor) * t / cfg.warmup)
    t_cycle = t - cfg.warmup
    if cfg.T_mult == 1:
        t_cur, t_i = t_cycle % cfg.T_0, cfg.T_0
    else:
        n = int(math.log(t_cycle / cfg.T_0 * (cfg.T_mult - 1) + 1, cfg.T_mult))
        start = cfg.T_0 * (cfg.T_mult ** n - 1) // (cfg.T_mult - 1)
        if start > t_cycle:  # guard against log rounding just below an integer
            n -= 1
        elif start + cfg.T_0 * cfg.T_mult ** n <= t_cycle:
            n += 1
        start = cfg.T_0 * (cfg.T_mult ** n - 1) // (cfg.T_mult - 1)
        t_cur, t_i = t_cycle - start, cfg.T_0 * cfg.T_mult ** n
    return cfg.eta_min + (base_lr - cfg.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
