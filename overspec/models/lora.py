"""LoRA on the image encoder of an open_clip ViT, adapting slices of the fused q/k/v projection.

open_clip's attention blocks use `nn.MultiheadAttention`, whose q, k and v projections are the
three row blocks of one `in_proj_weight` [3E, E]. `LoRAAttention` wraps such a module and adds a
low-rank update `scaling * B @ A` to the chosen blocks only (q and v by default, as in the
published FRoundation / MADation / FoundPAD models), plus optionally to `out_proj` ("o").

Two forward paths, both exact:
- dropout inactive (eval, or dropout 0): the attention module's own forward runs with the
  updated weights (`W + scaling * B @ A`), so a zero B gives bit-identical outputs;
- dropout active (training with dropout > 0): the low-rank branch sees `dropout(x)` while the
  frozen projection sees `x`, as in loralib, so the projections are computed explicitly.

`merge_lora` folds the updates into the weights and restores the plain modules, so the state dict
has exactly the base model's keys.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from overspec.errors import UserError
from overspec.models.lora_config import PROJECTIONS, LoRAConfig, lora_scaling  # noqa: F401


class LoRAAttention(nn.Module):
    """An `nn.MultiheadAttention` (self-attention, fused in-projection) with LoRA on some projections."""

    def __init__(self, base: nn.MultiheadAttention, config: LoRAConfig) -> None:
        super().__init__()
        if not base._qkv_same_embed_dim or base.bias_k is not None or base.add_zero_attn:
            raise UserError("LoRA supports only plain self-attention blocks (fused in_proj, no bias_k/add_zero_attn).")
        self.base = base
        self.config = config
        self.scaling = config.scaling
        self.embed_dim = base.embed_dim
        e, r = base.embed_dim, config.r
        ref = base.in_proj_weight
        # A [r, in] and B [out, r]: the loralib / published layout (delta = B @ A).
        self.lora_A = nn.ParameterDict({t: nn.Parameter(ref.new_empty(r, e)) for t in config.targets})
        self.lora_B = nn.ParameterDict({t: nn.Parameter(ref.new_zeros(e, r)) for t in config.targets})
        for a in self.lora_A.values():
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # as nn.Linear / loralib; B stays zero
        self.lora_dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def delta(self, target: str) -> torch.Tensor:
        return (self.lora_B[target] @ self.lora_A[target]) * self.scaling

    def merged_weights(self) -> dict[str, torch.Tensor]:
        """The base parameters with every LoRA update added (differentiable in A and B)."""
        e = self.embed_dim
        out: dict[str, torch.Tensor] = {}
        qkv = [t for t in ("q", "k", "v") if t in self.lora_A]
        if qkv:
            w = self.base.in_proj_weight
            rows = [w[i * e:(i + 1) * e] + self.delta(t) if t in self.lora_A else w[i * e:(i + 1) * e]
                    for i, t in enumerate(("q", "k", "v"))]
            out["in_proj_weight"] = torch.cat(rows, dim=0)
        if "o" in self.lora_A:
            out["out_proj.weight"] = self.base.out_proj.weight + self.delta("o")
        return out

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **kwargs: Any):
        dropout_active = self.training and isinstance(self.lora_dropout, nn.Dropout)
        if not dropout_active:
            return functional_call(self.base, self.merged_weights(), (query, key, value), kwargs)
        if not (query is key and key is value):
            raise UserError("LoRA dropout is only supported for self-attention (query is key is value).")
        return self._forward_explicit(query, **kwargs)

    def _lora_branch(self, x_dropped: torch.Tensor, target: str) -> torch.Tensor:
        return F.linear(F.linear(x_dropped, self.lora_A[target]), self.lora_B[target]) * self.scaling

    def _forward_explicit(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                          need_weights: bool = False, attn_mask: torch.Tensor | None = None,
                          average_attn_weights: bool = True, is_causal: bool = False):
        """Self-attention with the LoRA branch fed `dropout(x)`; mirrors nn.MultiheadAttention's maths."""
        if key_padding_mask is not None or need_weights:
            raise UserError("LoRA with dropout does not support key_padding_mask or need_weights.")
        base, e = self.base, self.embed_dim
        h = base.num_heads
        if not base.batch_first:
            x = x.transpose(0, 1)
        n, length, _ = x.shape
        x_dropped = self.lora_dropout(x)
        w, b = base.in_proj_weight, base.in_proj_bias
        projected = []
        for i, t in enumerate(("q", "k", "v")):
            y = F.linear(x, w[i * e:(i + 1) * e], None if b is None else b[i * e:(i + 1) * e])
            if t in self.lora_A:
                y = y + self._lora_branch(x_dropped, t)
            projected.append(y.view(n, length, h, e // h).transpose(1, 2))
        q, k, v = projected
        mask = None
        if attn_mask is not None:
            mask = attn_mask
            if mask.dtype == torch.bool:  # nn.MultiheadAttention: True = not allowed
                mask = torch.zeros_like(mask, dtype=q.dtype).masked_fill(mask, float("-inf"))
            if mask.dim() == 3:
                mask = mask.view(n, h, length, length)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal and mask is None,
                                              dropout_p=base.dropout if self.training else 0.0)
        attn = attn.transpose(1, 2).reshape(n, length, e)
        out = F.linear(attn, base.out_proj.weight, base.out_proj.bias)
        if "o" in self.lora_A:
            out = out + self._lora_branch(self.lora_dropout(attn), "o")
        if not base.batch_first:
            out = out.transpose(0, 1)
        return out, None


def _visual_blocks(model: nn.Module) -> list[nn.Module]:
    visual = getattr(model, "visual", None)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None:
        raise UserError("LoRA needs an open_clip ViT (model.visual.transformer.resblocks); this model has none.")
    return list(blocks)


def apply_lora(model: nn.Module, config: LoRAConfig) -> list[LoRAAttention]:
    """Wrap the attention of the chosen image-encoder blocks in place; freeze everything but LoRA.

    Returns the wrappers. The text encoder and all base weights are frozen (requires_grad False).
    """
    blocks = _visual_blocks(model)
    chosen = range(len(blocks)) if config.blocks is None else config.blocks
    for index in chosen:
        if not 0 <= index < len(blocks):
            raise UserError(f"LoRA block index {index} is outside the image encoder's {len(blocks)} blocks.")
    for p in model.parameters():
        p.requires_grad_(False)
    wrappers = []
    for index in chosen:
        block = blocks[index]
        attn = getattr(block, "attn", None)
        if isinstance(attn, LoRAAttention):
            raise UserError(f"Image-encoder block {index} already has LoRA; merge it before adding more.")
        if not isinstance(attn, nn.MultiheadAttention):
            raise UserError(f"Image-encoder block {index} has no nn.MultiheadAttention 'attn' (found {type(attn).__name__}).")
        wrapper = LoRAAttention(attn, config)
        block.attn = wrapper
        wrappers.append(wrapper)
    return wrappers


def lora_modules(model: nn.Module) -> list[LoRAAttention]:
    return [m for m in model.modules() if isinstance(m, LoRAAttention)]


def lora_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    for module in lora_modules(model):
        yield from module.lora_A.values()
        yield from module.lora_B.values()


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weights and put the plain modules back (in place).

    The returned model's state dict has exactly the base model's keys and shapes.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRAAttention):
                merged = child.merged_weights()
                base = child.base
                if "in_proj_weight" in merged:
                    base.in_proj_weight.copy_(merged["in_proj_weight"])
                if "out_proj.weight" in merged:
                    base.out_proj.weight.copy_(merged["out_proj.weight"])
                setattr(parent, name, base)
    return model
