"""Model files: one safetensors file with the merged weights, optional `head.*` tensors, and a model
card (JSON) in the metadata header. Saving the same weights twice gives identical bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from overspec.errors import UserError
from overspec.models.factory import architecture_of_card, create_model
from overspec.provenance import atomic_path

CARD_KEY = "overspec_card"
FORMAT = "overspec-model/1"
HEAD_PREFIX = "head."


@dataclass
class LoadedModel:
    model: torch.nn.Module
    card: dict[str, Any]
    head: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.card["architecture"]["open_clip_model"]


def save_model(path: str | Path, model: torch.nn.Module, card: dict[str, Any],
               head: dict[str, torch.Tensor] | None = None) -> None:
    """Write weights (+ head tensors) and the card atomically.

    The metadata holds a single key (sorted JSON) so the header bytes are deterministic.
    """
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()}
    for name, t in (head or {}).items():
        tensors[HEAD_PREFIX + name] = t.detach().to("cpu").contiguous().clone()
    card = dict(card, format=FORMAT)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={CARD_KEY: json.dumps(card, sort_keys=True)})


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card, read from the header only (no tensor data)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except FileNotFoundError:
        raise UserError(f"Model file {path} does not exist: run the rule that makes it first.") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise UserError(f"Model file {path} is not a readable safetensors file ({exc}); rebuild or re-import it.") from None
    if CARD_KEY not in meta:
        raise UserError(f"Model file {path} has no overspec model card: bring external checkpoints in through import_model.")
    return json.loads(meta[CARD_KEY])


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Rebuild the open_clip model named in the card and load its weights (strictly)."""
    card = read_card(path)
    tensors = load_file(str(path), device="cpu")
    head = {k[len(HEAD_PREFIX):]: v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)}
    weights = {k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIX)}
    arch = architecture_of_card(card)
    model = create_model(arch)
    expected = model.state_dict()
    problem = next((f"missing tensor {k}" for k in expected if k not in weights), None)
    problem = problem or next((f"unexpected tensor {k}" for k in weights if k not in expected), None)
    problem = problem or next((f"tensor {k} has shape {tuple(weights[k].shape)}, {arch} needs {tuple(v.shape)}"
                               for k, v in expected.items() if weights[k].shape != v.shape), None)
    if problem:
        raise UserError(f"Model file {path} does not match its architecture {arch} (first mismatch: {problem}); "
                        f"rebuild the model file.")
    model.load_state_dict(weights, strict=True)
    model.to(device).eval()
    return LoadedModel(model=model, card=card, head=head)
