"""WiSE-FT (Wortsman et al., 2022): a model between a baseline and its fine-tune in weight space.

theta(alpha) = theta_base + alpha * (theta_ft - theta_base) for every weight tensor, computed in
float64 and stored in the tensor's own dtype. A LoRA fine-tune's file already holds the merged
weights, so this scales its low-rank delta by alpha; tensors the fine-tune left alone (the text
tower) come out as the baseline's bytes. The fine-tune's head (`head.*`) is kept as it is. Alpha 0
and 1 copy the baseline's / fine-tune's tensors, so the end points are exact, bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from overspec.errors import UserError
from overspec.models.checkpoint import load_model, save_model
from overspec.provenance import sha256_file


def interpolate_state(base: Mapping[str, torch.Tensor], finetuned: Mapping[str, torch.Tensor],
                      alpha: float) -> dict[str, torch.Tensor]:
    """theta_base + alpha * (theta_ft - theta_base), tensor by tensor (same keys and shapes required)."""
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"WiSE-FT alpha {alpha} must lie in [0, 1].")
    if set(base) != set(finetuned):
        odd = sorted(set(base) ^ set(finetuned))[0]
        raise UserError(f"The baseline and the fine-tune have different tensors (first: {odd}); interpolate a "
                        "fine-tune only with the baseline it was made from.")
    out = {}
    for key, b in base.items():
        f = finetuned[key]
        if b.shape != f.shape:
            raise UserError(f"Tensor {key} has shape {tuple(b.shape)} in the baseline and {tuple(f.shape)} in the "
                            "fine-tune; interpolate a fine-tune only with the baseline it was made from.")
        if alpha == 1.0:
            out[key] = f.clone()
        elif alpha == 0.0 or torch.equal(b, f):
            out[key] = b.clone()
        elif not b.is_floating_point():
            raise UserError(f"Non-float tensor {key} differs between the baseline and the fine-tune, so it cannot "
                            "be interpolated; interpolate a fine-tune only with the baseline it was made from.")
        else:
            wide = b.double()
            out[key] = (wide + alpha * (f.double() - wide)).to(b.dtype)
    return out


def interpolate_model(base_path: str | Path, finetuned_path: str | Path, alpha: float, out_path: str | Path, *,
                      base_digest: str | None = None, finetuned_digest: str | None = None,
                      base_name: str | None = None, finetuned_name: str | None = None,
                      card_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the model at `alpha` between two model files; returns its card.

    The card is the fine-tune's (architecture, preprocessing, head) with `wiseft` recording alpha and
    both parents' names (`*_name`, else the names in their cards) and sha256 (`*_digest` when the
    caller already has them, else hashed here).
    """
    base, finetuned = load_model(base_path), load_model(finetuned_path)
    if base.arch != finetuned.arch:
        raise UserError(f"Model files {base_path} ({base.arch}) and {finetuned_path} ({finetuned.arch}) have different "
                        "architectures; interpolate a fine-tune only with its own baseline.")
    base_sha = base_digest or sha256_file(base_path)
    made_from = (finetuned.card.get("base_model") or {}).get("sha256")
    if made_from and made_from != base_sha:
        raise UserError(f"Model file {finetuned_path} was fine-tuned from a model with sha256 {made_from[:12]}..., not "
                        f"from {base_path} ({base_sha[:12]}...); rebuild the fine-tune from this baseline.")
    state = interpolate_state(base.model.state_dict(), finetuned.model.state_dict(), alpha)
    base.model.load_state_dict(state, strict=True)
    card = {key: finetuned.card[key] for key in ("architecture", "preprocessing", "head") if key in finetuned.card}
    card["method"] = "wiseft"
    card["wiseft"] = {
        "alpha": float(alpha),
        "base_model": {"name": base_name or base.card.get("name"), "sha256": base_sha},
        "finetuned_model": {"name": finetuned_name or finetuned.card.get("name"),
                            "sha256": finetuned_digest or sha256_file(finetuned_path)},
        "rule": "theta_base + alpha * (theta_ft - theta_base) on every weight; head.* from the fine-tune",
    }
    card.update(card_extra or {})
    save_model(out_path, base.model, card, head=finetuned.head)
    return card
