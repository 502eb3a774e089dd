"""Bring an existing checkpoint in as an overspec model file instead of training one.

Sources (`source`):
- an open_clip pretrained tag of the declared architecture (`openai`, `laion2b_s34b_b88k`, ...;
  also written `open_clip:openai`) or `hf-hub:<org>/<repo>`: downloaded through open_clip's cache;
- a file: safetensors, or a torch file read with `torch.load(weights_only=True)` (never arbitrary
  unpickling). Inside it, either
  - a full open_clip / OpenAI-CLIP state dict (optionally under `state_dict`, optionally with a
    DDP `module.` prefix), or
  - a LoRA checkpoint in the layout of the published FRoundation / MADation / FoundPAD code: the
    backbone state dict saved with each wrapped attention block as `attn.{q,k,v}_proj.weight/bias`,
    `attn.proj.weight/bias` and LoRA factors `attn.<proj>.w_lora_A` [r, in] / `w_lora_B` [out, r].
    Their `loralib/layers.py` adds `(B @ A) * alpha / sqrt(r)` (rsLoRA, hard-coded) to the frozen
    weight; alpha is not stored in the file, so it must be given (`lora_alpha`).

- a Hugging Face transformers CLIPModel folder (`save_pretrained`) or `transformers:<org>/<repo>`
  from the local cache, converted by `overspec.models.hf_clip`; its architecture is derived from
  its config (an open_clip one when it matches, else a config of its own carried in the card).

A PEFT LoRA adapter (`adapter`) can be merged on top of any of these (`overspec.models.peft_lora`).
A head can come along (`head_source`): the published `*_header.pth` (`kernel` [D, C] for
CosFace/ArcFace, `linear.weight`/`linear.bias` for the binary header) or overspec's own
`weight`/`bias`. Shapes are checked against the declared architecture; the first mismatching
tensor is named in the error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import open_clip
import torch

from overspec.errors import UserError
from overspec.models.checkpoint import HEAD_PREFIX, read_card, save_model
from overspec.models.architectures import is_transformers_source
from overspec.models.factory import (
    architecture_config, architecture_of_card, create_model, preprocessing_of, register_architecture)
from overspec.models.heads import HeadConfig, build_head, head_tensors
from overspec.models.lora import lora_scaling
from overspec.provenance import sha256_file

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# What the published training code fed its models (src/data/transform.py, src/data/loaders.py).
PUBLISHED_PREPROCESSING: dict[str, dict[str, Any]] = {
    "froundation": {"size": [224, 224], "mean": CLIP_MEAN, "std": CLIP_STD, "interpolation": "bicubic",
                    "resize_mode": "shortest", "colour_order": "RGB"},
    # cv2.imread without BGR->RGB conversion, torchvision Resize([224, 224]) (bilinear), mean = std = 0.5
    "madation": {"size": [224, 224], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bilinear",
                 "resize_mode": "squash", "colour_order": "BGR"},
    # cv2 BGR->RGB, albumentations Resize(224, 224) (bilinear), ImageNet mean/std
    "foundpad": {"size": [224, 224], "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "interpolation": "bilinear",
                 "resize_mode": "squash", "colour_order": "RGB"},
}
LAYOUTS = ("auto", "open_clip", "published_lora")
_IGNORED_KEYS = {"input_resolution", "context_length", "vocab_size"}  # metadata in OpenAI JIT state dicts
_LORA_ATTN = re.compile(r"^(?P<prefix>.*\.attn)\.q_proj\.weight$")
_PUBLISHED_PROJ = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "proj"}


# ---------------------------------------------------------------------------------------------
# Reading files safely


def load_tensor_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor mapping from safetensors or a weights-only torch file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint {path} does not exist: check the path in the import settings.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise UserError(f"Checkpoint {path} is not a readable safetensors file ({exc}).") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and plain containers
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"Checkpoint {path} cannot be read as plain tensors with torch.load(weights_only=True) ({first}); "
            "convert it to safetensors or a plain state dict (overspec never unpickles arbitrary objects)."
        ) from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"Checkpoint {path} does not hold a state dict (a mapping of names to tensors).")
    return dict(obj)


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("module.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


# ---------------------------------------------------------------------------------------------
# Layouts


def detect_layout(state: Mapping[str, torch.Tensor]) -> str:
    return "published_lora" if any(_LORA_ATTN.match(k) for k in state) else "open_clip"


def merge_published_lora(state: Mapping[str, torch.Tensor], alpha: float, rslora: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Turn the FRoundation / MADation / FoundPAD block layout back into open_clip keys, merging LoRA.

    Returns the converted state dict and a summary (blocks, targets, rank) for the model card.
    """
    out = dict(state)
    blocks, targets, ranks = [], set(), set()
    for key in sorted(k for k in state if _LORA_ATTN.match(k)):
        prefix = _LORA_ATTN.match(key)["prefix"]
        weights, biases = {}, {}
        for t, name in _PUBLISHED_PROJ.items():
            w_key = f"{prefix}.{name}.weight"
            if w_key not in out:
                raise UserError(f"Published LoRA checkpoint lacks {w_key}; it is not in the FRoundation/MADation/FoundPAD layout.")
            weight = out.pop(w_key).float()
            a, b = out.pop(f"{prefix}.{name}.w_lora_A", None), out.pop(f"{prefix}.{name}.w_lora_B", None)
            if (a is None) != (b is None):
                raise UserError(f"Published LoRA checkpoint has only one of {prefix}.{name}.w_lora_A / w_lora_B.")
            if a is not None:
                r = a.shape[0]
                if b.shape != (weight.shape[0], r) or a.shape[1] != weight.shape[1]:
                    raise UserError(f"LoRA factors of {prefix}.{name} have shapes {tuple(a.shape)}/{tuple(b.shape)}, "
                                    f"which do not fit the weight {tuple(weight.shape)}.")
                weight = weight + (b.float() @ a.float()) * lora_scaling(r, alpha, rslora)
                targets.add(t)
                ranks.add(r)
            weights[t] = weight
            biases[t] = out.pop(f"{prefix}.{name}.bias", None)
        out[f"{prefix}.in_proj_weight"] = torch.cat([weights["q"], weights["k"], weights["v"]])
        if all(biases[t] is not None for t in "qkv"):
            out[f"{prefix}.in_proj_bias"] = torch.cat([biases["q"], biases["k"], biases["v"]]).float()
        out[f"{prefix}.out_proj.weight"] = weights["o"]
        if biases["o"] is not None:
            out[f"{prefix}.out_proj.bias"] = biases["o"]
        blocks.append(prefix)
    summary = {"layout": "published_lora", "blocks_merged": len(blocks), "targets": sorted(targets),
               "r": sorted(ranks), "alpha": alpha, "rslora": rslora,
               "scaling": [lora_scaling(r, alpha, rslora) for r in sorted(ranks)]}
    return out, summary


def check_against_architecture(state: Mapping[str, torch.Tensor], model: torch.nn.Module, where: str) -> dict[str, torch.Tensor]:
    """Every tensor of the model must be present with its shape; stop at the first that is not."""
    expected = model.state_dict()
    checked: dict[str, torch.Tensor] = {}
    for name, tensor in expected.items():
        if name not in state:
            raise UserError(f"Checkpoint {where} has no tensor {name} that architecture needs; declare the architecture it was trained with.")
        found = state[name]
        if found.shape != tensor.shape and found.numel() == tensor.numel() and name in ("logit_scale", "logit_bias"):
            found = found.reshape(tensor.shape)  # scalar vs [1], as open_clip tolerates
        if found.shape != tensor.shape:
            raise UserError(f"Checkpoint {where} does not match the declared architecture: tensor {name} has shape "
                            f"{tuple(found.shape)}, the architecture expects {tuple(tensor.shape)}.")
        checked[name] = found.to(tensor.dtype)
    extra = sorted(set(state) - set(expected) - _IGNORED_KEYS)
    if extra:
        raise UserError(f"Checkpoint {where} has tensor {extra[0]} that the declared architecture lacks "
                        f"({len(extra)} unexpected in all); declare the architecture it was trained with.")
    return checked


# ---------------------------------------------------------------------------------------------
# Heads


def convert_published_head(state: Mapping[str, torch.Tensor], config: HeadConfig, where: str) -> dict[str, torch.Tensor]:
    """Published header tensors (or overspec's own) -> overspec `head.*` tensors."""
    state = _strip_prefixes(dict(state))
    if config.type == "binary":
        if "linear.weight" in state:
            return {"weight": state["linear.weight"].float(), "bias": state["linear.bias"].float()}
        if "weight" in state and "bias" in state:
            return {"weight": state["weight"].float(), "bias": state["bias"].float()}
    else:
        if "kernel" in state:  # published CosFace/ArcFace: kernel [D, C]
            return {"weight": state["kernel"].float().t().contiguous()}
        if "weight" in state:
            return {"weight": state["weight"].float()}
    raise UserError(f"Head checkpoint {where} has none of the tensors a {config.type} head needs "
                    f"(kernel or weight; linear.weight/linear.bias for binary); found {sorted(state)[:5]}.")


# ---------------------------------------------------------------------------------------------
# Sources


def model_file_card(path: str) -> dict[str, Any] | None:
    """The model card of an overspec model file, None for any other file."""
    if not path.endswith(".safetensors") or not Path(path).is_file():
        return None
    try:
        return read_card(path)
    except UserError:
        return None


def _resolve_pretrained(source: str, arch: str) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Download an open_clip tag or hf-hub checkpoint; returns (state, source card, pretrained cfg)."""
    from open_clip import pretrained as oc_pretrained

    if source.startswith("hf-hub:"):
        repo = source[len("hf-hub:"):]
        path = None
        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            try:
                path = oc_pretrained.download_pretrained_from_hf(repo, filename=filename)
                break
            except Exception:
                continue
        if path is None:
            raise UserError(f"Could not download {source} (no open_clip_model.safetensors / open_clip_pytorch_model.bin); check the id and the network.")
        return load_tensor_file(path), {"kind": "hf-hub", "id": repo, "sha256": sha256_file(path)}, {}
    tag = source.split(":", 1)[1] if source.startswith("open_clip:") else source
    cfg = open_clip.get_pretrained_cfg(arch, tag) or open_clip.get_pretrained_cfg(arch.replace("-quickgelu", ""), tag)
    if not cfg:
        raise UserError(f"'{source}' is neither a file nor an open_clip pretrained tag of {arch} "
                        f"(tags: {open_clip.list_pretrained_tags_by_model(arch)}).")
    if cfg.get("quick_gelu", False) != bool(architecture_config(arch).get("quick_gelu", False)):
        raise UserError(f"Pretrained tag '{tag}' was trained with quick_gelu={cfg.get('quick_gelu', False)}; declare "
                        f"architecture {arch + '-quickgelu' if cfg.get('quick_gelu') else arch.replace('-quickgelu', '')} instead of {arch}.")
    try:
        path = oc_pretrained.download_pretrained(cfg)
    except Exception as exc:
        raise UserError(f"Could not download open_clip weights {arch}/{tag} ({exc}); check the network or import a file.") from None
    return load_tensor_file(path), {"kind": "open_clip_tag", "tag": tag, "sha256": sha256_file(path)}, cfg


def import_model(
    source: str | Path,
    arch: str | None,
    out_path: str | Path,
    *,
    adapter: str | Path | None = None,
    layout: str = "auto",
    lora_alpha: float | None = None,
    lora_rslora: bool = True,
    head_source: str | Path | None = None,
    head: HeadConfig | Mapping[str, Any] | None = None,
    preprocessing: str | Mapping[str, Any] | None = None,
    card_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Convert `source` into `out_path` (overspec model file); returns the card written.

    `arch` None takes the architecture a Hugging Face checkpoint's config describes. `adapter` is a
    PEFT LoRA folder merged into the source's weights. `preprocessing` is a dict, the name of a
    published recipe (froundation / madation / foundpad), or None for the pretrained tag's (or HF
    preprocessor config's) settings, else the architecture's defaults.
    """
    if layout not in LAYOUTS:
        raise UserError(f"Import layout '{layout}' is unknown: use one of {list(LAYOUTS)}.")
    source_str = str(source)
    hf = is_transformers_source(source_str)
    own_card = model_file_card(source_str)  # an overspec model file (the baseline an adapter goes into)
    tag_cfg: dict[str, Any] = {}
    arch_card: dict[str, Any] = {}
    if own_card is not None:
        tag_cfg = own_card.get("preprocessing") or {}
        if arch is None:
            arch = architecture_of_card(own_card)
            arch_card = {k: v for k, v in own_card["architecture"].items() if k != "open_clip_model"}
    if arch is not None:
        architecture_config(arch)  # unknown names stop here, before any download
    elif not hf:
        raise UserError(f"Checkpoint {source_str} is not a Hugging Face CLIP checkpoint, so its architecture cannot be "
                        "read from it: declare the backbone's arch.")
    if hf:
        from overspec.models.hf_clip import CUSTOM_ARCH_PREFIX, normalised, read_hf_checkpoint

        converted = read_hf_checkpoint(source_str)
        if arch is not None and normalised(architecture_config(arch)) != normalised(converted.model_config):
            raise UserError(f"Checkpoint {source_str} is a {converted.arch} CLIP ({converted.model_config}), not the "
                            f"declared architecture {arch}: declare {converted.arch} or import the right checkpoint.")
        arch = arch or converted.arch
        if arch.startswith(CUSTOM_ARCH_PREFIX):  # open_clip has no config file for it: the card carries it
            register_architecture(arch, converted.model_config)
            arch_card["model_config"] = converted.model_config
        state, source_card, tag_cfg = converted.state, converted.card, converted.preprocessing
    elif Path(source_str).is_file():
        state = load_tensor_file(source_str)
        if own_card is not None:
            state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
        source_card = {"kind": "overspec_model" if own_card else "file", "name": Path(source_str).name,
                       "sha256": sha256_file(source_str)}
    elif source_str.startswith(("hf-hub:", "open_clip:")) or not Path(source_str).suffix:
        state, source_card, tag_cfg = _resolve_pretrained(source_str, arch)
    else:
        raise UserError(f"Checkpoint {source_str} does not exist: check the path in the import settings.")
    state = _strip_prefixes(state)
    found_layout = "transformers" if hf else (detect_layout(state) if layout == "auto" else layout)
    lora_card = None
    if found_layout == "published_lora":
        if lora_alpha is None:
            raise UserError(f"Checkpoint {source_str} is a FRoundation/MADation/FoundPAD LoRA checkpoint, whose alpha is not "
                            "stored in the file: set lora_alpha (FRoundation CLIP ViT-B/16 release: 32; MADation: 4 (B) / "
                            "8 (L); FoundPAD: 8).")
        state, lora_card = merge_published_lora(state, lora_alpha, lora_rslora)
    adapter_card = None
    if adapter is not None:
        from overspec.models.peft_lora import merge_adapter

        state, adapter_card = merge_adapter(state, adapter)
    model = create_model(arch)
    checked = check_against_architecture(state, model, source_str)
    model.load_state_dict(checked, strict=True)

    head_card, head_state = None, None
    if head_source is not None:
        head_config = head if isinstance(head, HeadConfig) else HeadConfig(**(head or {}))
        head_state = convert_published_head(load_tensor_file(head_source), head_config, str(head_source))
        embed_dim = int(model.visual.output_dim)
        weight = head_state["weight"]
        probe = build_head(head_config, embed_dim, weight.shape[0])
        expected = head_tensors(probe)
        for name, tensor in expected.items():
            if head_state.get(name) is None or head_state[name].shape != tensor.shape:
                got = None if head_state.get(name) is None else tuple(head_state[name].shape)
                raise UserError(f"Head checkpoint {head_source}: tensor {name} has shape {got}, "
                                f"a {head_config.type} head on {embed_dim}-d embeddings needs {tuple(tensor.shape)}.")
        head_card = head_config.to_card(embed_dim, weight.shape[0])
        source_card["head"] = {"name": Path(head_source).name, "sha256": sha256_file(head_source)}

    card = {
        "architecture": {"open_clip_model": arch, **arch_card},
        "preprocessing": _preprocessing(preprocessing, model, tag_cfg),
        "source": source_card,
        "import_layout": found_layout,
        "lora": lora_card,
        "lora_merged": lora_card is not None or adapter_card is not None,
        "adapter": adapter_card,
        "head": head_card,
    }
    card.update(card_extra or {})
    save_model(out_path, model, card, head=head_state)
    return card


def _preprocessing(spec: str | Mapping[str, Any] | None, model: torch.nn.Module, tag_cfg: Mapping[str, Any]) -> dict[str, Any]:
    base = preprocessing_of(model)
    if spec is None:
        for key in ("mean", "std", "interpolation", "resize_mode"):
            if key in tag_cfg:
                base[key] = list(tag_cfg[key]) if isinstance(tag_cfg[key], tuple) else tag_cfg[key]
        return base
    if isinstance(spec, str):
        if spec not in PUBLISHED_PREPROCESSING:
            raise UserError(f"Preprocessing '{spec}' is unknown: use one of {sorted(PUBLISHED_PREPROCESSING)} or give the values.")
        spec = PUBLISHED_PREPROCESSING[spec]
    unknown = sorted(set(spec) - set(base))
    if unknown:
        raise UserError(f"Preprocessing setting(s) {unknown} are unknown: use {sorted(base)}.")
    return {**base, **{k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()}}
