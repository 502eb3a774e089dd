"""Task-head settings (type and hyperparameters), free of torch so that config checks stay light;
the heads themselves are in `overspec.models.heads`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from overspec.errors import UserError

HEAD_TYPES = ("cosface", "arcface", "binary")
BINARY_LOSSES = ("bce_onehot", "ce")
BINARY_LABELS = {0: "attack", 1: "bonafide"}


@dataclass(frozen=True)
class HeadConfig:
    type: str = "cosface"
    s: float = 64.0
    m: float = 0.35
    binary_loss: str = "bce_onehot"

    def __post_init__(self) -> None:
        if self.type not in HEAD_TYPES:
            raise UserError(f"Head type '{self.type}' is unknown: use one of {list(HEAD_TYPES)}.")
        if self.binary_loss not in BINARY_LOSSES:
            raise UserError(f"Binary head loss '{self.binary_loss}' is unknown: use one of {list(BINARY_LOSSES)}.")
        if self.type != "binary" and (self.s <= 0 or self.m < 0):
            raise UserError(f"Margin head needs s > 0 and m >= 0 (got s={self.s}, m={self.m}).")

    def to_card(self, embed_dim: int, num_classes: int) -> dict[str, Any]:
        card: dict[str, Any] = {"type": self.type, "embed_dim": embed_dim, "num_classes": num_classes,
                                "input": "l2-normalised encode_image"}
        if self.type == "binary":
            card.update(loss=self.binary_loss, labels={str(k): v for k, v in BINARY_LABELS.items()},
                        score="softmax(logits)[:, 1] (bona fide)")
        else:
            card.update(s=self.s, m=self.m)
        return card
