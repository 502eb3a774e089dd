"""Task heads on the L2-normalised image embedding: CosFace / ArcFace over identities, a 2-way
linear head for attack detection (MAD, PAD).

Conventions (as in the published FRoundation / MADation / FoundPAD code):
- every head is fed `F.normalize(model.encode_image(x))`;
- margin heads hold class centres `weight` [C, D] (stored row-wise like nn.Linear; the published
  `kernel` is [D, C]), normalised at every call; logits = s * cos with the margin on the target;
- the binary head is `Linear(D, 2)`; class 1 = bona fide, 0 = attack, and the detection score is
  softmax(logits)[:, 1]. Its loss is, by default, the published `BCEWithLogits` on one-hot targets
  (`loss="bce_onehot"`); `loss="ce"` (softmax cross-entropy) is the textbook alternative.

State goes into `head.*` tensors of the model file (`weight`, plus `bias` for the binary head);
`HeadConfig.to_card` holds the type and hyperparameters for the model card.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from overspec.errors import UserError
from overspec.models.head_config import (  # noqa: F401
    BINARY_LABELS,
    BINARY_LOSSES,
    HEAD_TYPES,
    HeadConfig,
)


class MarginHead(nn.Module):
    """Normalised class centres; `cosine(emb)` is the [N, C] cosine matrix, clamped to [-1, 1]."""

    def __init__(self, embed_dim: int, num_classes: int, s: float, m: float) -> None:
        super().__init__()
        self.s, self.m = float(s), float(m)
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.normal_(self.weight, std=0.01)  # as the published CosFace/ArcFace `kernel`

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1)).clamp(-1.0, 1.0)

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled logits; with labels, the target class gets its margin (training logits)."""
        cos = self.cosine(embeddings)
        if labels is None:
            return cos * self.s
        target = cos.gather(1, labels.view(-1, 1))
        cos = cos.scatter(1, labels.view(-1, 1), self.target_logit(target))
        return cos * self.s

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)


class CosFaceHead(MarginHead):
    """CosFace (LMCL): target logit s * (cos theta - m)."""

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        return cos_target - self.m


class ArcFaceHead(MarginHead):
    """ArcFace: target logit s * cos(theta + m).

    Where theta + m would pass pi, cos(theta + m) stops decreasing in theta; there the usual
    fallback cos theta - m sin(m) keeps the target logit monotone (insightface's `th`/`mm`).
    """

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        sin = torch.sqrt((1.0 - cos_target * cos_target).clamp_min(1e-12))
        phi = cos_target * math.cos(self.m) - sin * math.sin(self.m)
        threshold = math.cos(math.pi - self.m)
        return torch.where(cos_target > threshold, phi, cos_target - math.sin(math.pi - self.m) * self.m)


class BinaryHead(nn.Module):
    """Linear(D, 2) on the normalised embedding; class 1 = bona fide."""

    def __init__(self, embed_dim: int, loss: str = "bce_onehot") -> None:
        super().__init__()
        self.loss_kind = loss
        self.linear = nn.Linear(embed_dim, 2)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(F.normalize(embeddings, dim=1))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "bce_onehot":
            return F.binary_cross_entropy_with_logits(logits, F.one_hot(labels, 2).to(logits.dtype))
        return F.cross_entropy(logits, labels)

    def state_for_file(self) -> dict[str, torch.Tensor]:
        return {"weight": self.linear.weight, "bias": self.linear.bias}


def build_head(config: HeadConfig, embed_dim: int, num_classes: int) -> nn.Module:
    if config.type == "binary":
        if num_classes != 2:
            raise UserError(f"A binary head needs training data with exactly 2 classes (found {num_classes}).")
        return BinaryHead(embed_dim, config.binary_loss)
    if num_classes < 2:
        raise UserError(f"A {config.type} head needs at least 2 identities in the training data (found {num_classes}).")
    cls = CosFaceHead if config.type == "cosface" else ArcFaceHead
    return cls(embed_dim, num_classes, config.s, config.m)


def head_tensors(head: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors that go to `head.*` in the model file."""
    if isinstance(head, BinaryHead):
        return {k: v.detach() for k, v in head.state_for_file().items()}
    return {"weight": head.weight.detach()}


def head_from_card(card_head: dict[str, Any], tensors: dict[str, torch.Tensor]) -> nn.Module:
    """Rebuild a head from the model card's `head` entry and the file's `head.*` tensors."""
    config = HeadConfig(type=card_head["type"], s=card_head.get("s", 64.0), m=card_head.get("m", 0.0),
                        binary_loss=card_head.get("loss", "bce_onehot"))
    weight = tensors.get("weight")
    if weight is None:
        raise UserError("The model file has a head in its card but no head.weight tensor; rebuild or re-import it.")
    head = build_head(config, embed_dim=weight.shape[1], num_classes=weight.shape[0])
    if isinstance(head, BinaryHead):
        head.linear.load_state_dict({"weight": weight, "bias": tensors["bias"]})
    else:
        head.weight.data.copy_(weight)
    return head.eval()


def attack_scores(head: BinaryHead, embeddings: torch.Tensor) -> torch.Tensor:
    """Bona-fide probability per sample (the published MAD/PAD score)."""
    return head(embeddings).softmax(dim=1)[:, 1]
