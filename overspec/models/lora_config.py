"""LoRA settings, free of torch so that config checks stay light; the adapters themselves are in
`overspec.models.lora`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from overspec.errors import UserError

PROJECTIONS = ("q", "k", "v", "o")


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA settings. `blocks=None` adapts every block of the image transformer."""

    r: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    rslora: bool = True  # scaling alpha/sqrt(r) (rank-stabilised) instead of alpha/r
    targets: tuple[str, ...] = ("q", "v")
    blocks: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if self.blocks is not None:
            object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if self.r < 1:
            raise UserError(f"LoRA rank r={self.r} must be at least 1.")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"LoRA dropout={self.dropout} must lie in [0, 1).")
        bad = [t for t in self.targets if t not in PROJECTIONS]
        if bad or not self.targets:
            raise UserError(f"LoRA targets {list(self.targets)} must be a non-empty subset of {list(PROJECTIONS)}.")

    @property
    def scaling(self) -> float:
        return lora_scaling(self.r, self.alpha, self.rslora)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["targets"] = list(self.targets)
        out["blocks"] = None if self.blocks is None else list(self.blocks)
        out["scaling"] = self.scaling
        return out


def lora_scaling(r: int, alpha: float, rslora: bool) -> float:
    """alpha/sqrt(r) for rank-stabilised LoRA (the published models), alpha/r for classic LoRA."""
    return alpha / math.sqrt(r) if rslora else alpha / r
