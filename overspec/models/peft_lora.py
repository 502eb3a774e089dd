"""PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`) merged into a base.

PEFT's merge adds `B @ A * scaling` to each target Linear weight (and `lora_B.bias * scaling` to its
bias with `lora_bias`), scaling = alpha / r, or alpha / sqrt(r) with `use_rslora`; `rank_pattern` /
`alpha_pattern` override r and alpha per module. Here the base is always an open_clip state dict: a
module of an adapter trained on an open_clip model is found under its own name, one trained on a
transformers CLIPModel through `hf_clip.open_clip_target` (a q/k/v delta lands in its rows of the
packed `in_proj_weight`, a projection's delta transposed). A factor overspec cannot place (a conv or
embedding LoRA, DoRA magnitudes, a module with no counterpart) stops the import with its name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from overspec.errors import UserError
from overspec.models.hf_clip import Target, open_clip_target
from overspec.models.lora_config import lora_scaling
from overspec.provenance import sha256_file

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
_PREFIX = "base_model.model."
_FACTOR = re.compile(r"^(?P<module>.+)\.lora_(?P<which>A|B)(?:\.[^.]+)?\.(?P<leaf>weight|bias)$")


def read_adapter(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path]:
    """The adapter's config, tensors (weights-only) and weight file."""
    from overspec.models.importing import load_tensor_file

    folder = Path(folder)
    if not (folder / ADAPTER_CONFIG).is_file():
        raise UserError(f"{folder} is not a PEFT adapter folder (no {ADAPTER_CONFIG}): give the folder written by "
                        "PeftModel.save_pretrained.")
    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    if config.get("peft_type") != "LORA":
        raise UserError(f"Adapter {folder / ADAPTER_CONFIG} is a {config.get('peft_type')} adapter; overspec merges "
                        "LoRA adapters only.")
    for key in ("use_dora", "use_qalora"):
        if config.get(key):
            raise UserError(f"Adapter {folder / ADAPTER_CONFIG} sets {key}, which overspec cannot merge; merge it with "
                            "PEFT's merge_and_unload() and import the merged checkpoint.")
    path = next((folder / n for n in ADAPTER_FILES if (folder / n).is_file()), None)
    if path is None:
        raise UserError(f"Adapter folder {folder} has neither {' nor '.join(ADAPTER_FILES)}.")
    return config, load_tensor_file(path), path


def _pattern_value(patterns: Mapping[str, Any], module: str, default):
    """PEFT's per-module override: the first pattern that matches the end of the module's name."""
    for pattern, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return default


def _sorted_if_list(value):
    """PEFT writes target_modules in set order; the card lists them sorted so equal adapters give equal cards."""
    return sorted(value) if isinstance(value, list) else value


def _place(module: str, leaf: str, state: Mapping[str, torch.Tensor], where: str) -> Target:
    """The base tensor a module's LoRA delta adds to: its own open_clip name, or its HF name mapped."""
    if f"{module}.{leaf}" in state:
        return Target(f"{module}.{leaf}")
    target = open_clip_target(f"{module}.{leaf}")
    if target is None:
        raise UserError(f"Adapter {where} targets module {module}, which overspec cannot map to the open_clip model "
                        "(neither an open_clip module nor a transformers CLIPModel Linear layer).")
    return target


def merge_adapter(state: Mapping[str, torch.Tensor], folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """`state` (open_clip keys) with the adapter merged in, and the adapter's summary for the model card."""
    config, tensors, path = read_adapter(folder)
    where = str(path)
    factors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        name = key[len(_PREFIX):] if key.startswith(_PREFIX) else key
        match = _FACTOR.match(name)
        if not match:
            raise UserError(f"Adapter {where} holds tensor {key}, which is not a LoRA factor overspec can merge "
                            "(lora_A / lora_B of a Linear layer).")
        factors.setdefault(match["module"], {})[f"{match['which']}.{match['leaf']}"] = tensor.float()
    merged = {k: v.detach().clone().float() if v.is_floating_point() else v.clone() for k, v in state.items()}
    ranks, alphas = set(), set()
    for module in sorted(factors):
        parts = factors[module]
        a, b = parts.get("A.weight"), parts.get("B.weight")
        if a is None or b is None or a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise UserError(f"Adapter {where}: module {module} has no pair of Linear LoRA factors (lora_A [r, in], "
                            "lora_B [out, r]); conv and embedding LoRA cannot be merged into open_clip.")
        r = int(_pattern_value(config.get("rank_pattern"), module, config["r"]))
        if r != a.shape[0]:
            raise UserError(f"Adapter {where}: module {module} has rank {a.shape[0]}, its config says {r}.")
        alpha = float(_pattern_value(config.get("alpha_pattern"), module, config["lora_alpha"]))
        scaling = lora_scaling(r, alpha, bool(config.get("use_rslora", False)))
        delta = (b @ a) * scaling
        if config.get("fan_in_fan_out"):
            delta = delta.t()
        _place(module, "weight", merged, where).add(merged, delta, f"Adapter {where}: module {module}")
        if "B.bias" in parts:
            _place(module, "bias", merged, where).add(merged, parts["B.bias"] * scaling,
                                                      f"Adapter {where}: module {module} (bias)")
        ranks.add(r)
        alphas.add(alpha)
    summary = {
        "kind": "peft_lora", "name": Path(folder).name, "sha256": sha256_file(path),
        "config_sha256": sha256_file(Path(folder) / ADAPTER_CONFIG),
        "base_model_name_or_path": config.get("base_model_name_or_path"),
        "r": sorted(ranks), "alpha": sorted(alphas), "use_rslora": bool(config.get("use_rslora", False)),
        "target_modules": _sorted_if_list(config.get("target_modules")), "modules_merged": len(factors),
    }
    return merged, summary
