"""Hugging Face `transformers` CLIPModel checkpoints as open_clip models.

A source is a folder written by `CLIPModel.save_pretrained` (`config.json` + `model.safetensors`,
sharded safetensors, or `pytorch_model.bin` read with `torch.load(weights_only=True)`), or
`transformers:<org>/<repo>`, a hub id resolved through the local Hugging Face cache (nothing is
downloaded when `HF_HUB_OFFLINE=1`).

The two layouts differ in a few places, all handled by `open_clip_target`, which names for each HF
tensor the open_clip tensor (and rows) it becomes:
- attention: HF has separate `q_proj`/`k_proj`/`v_proj`; open_clip packs them as rows [q; k; v] of
  `attn.in_proj_weight` / `in_proj_bias`;
- projections: HF's `visual_projection` / `text_projection` are Linear weights [embed, width];
  open_clip's `visual.proj` / `text_projection` are [width, embed] (transposed);
- names: `pre_layrnorm` -> `ln_pre`, `post_layernorm` -> `ln_post`, `final_layer_norm` ->
  `ln_final`, `fc1`/`fc2` -> `c_fc`/`c_proj`, patch embedding -> `conv1`.
Pooling needs no conversion: open_clip's vision tower takes the class token after `ln_post` (HF:
`post_layernorm` of the class token), and its text tower pools at the argmax token id, which for
open_clip's tokenizer is the first end-of-text token, where HF pools too.
The same mapping places PEFT LoRA deltas trained on HF module names (`overspec.models.peft_lora`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from overspec.errors import UserError
from overspec.models.architectures import TRANSFORMERS_PREFIX, known_architectures

HF_EXTRA = "pip install -e '.[hf]'"
CUSTOM_ARCH_PREFIX = "hf-clip-"  # + digest of the config: an architecture open_clip has no config file for
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_IGNORED = re.compile(r"(^|\.)position_ids$")  # a buffer older transformers saved
_LAYER = re.compile(r"^(?P<tower>vision|text)_model\.encoder\.layers\.(?P<i>\d+)\.(?P<rest>.+)$")
_BLOCK_PARTS = {
    "layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
}
_QKV = {"q_proj": 0, "k_proj": 1, "v_proj": 2}
_DIRECT = {
    "logit_scale": "logit_scale",
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}
_TRANSPOSED = {"visual_projection.weight": "visual.proj", "text_projection.weight": "text_projection"}


def require_transformers():
    """The transformers package, or one sentence naming the extra to install."""
    try:
        import transformers
    except ImportError:
        raise UserError(f"Hugging Face checkpoints and PEFT adapters need the hf extra: {HF_EXTRA}.") from None
    return transformers


# ---------------------------------------------------------------------------------------------
# Where each HF tensor goes


@dataclass(frozen=True)
class Target:
    """An open_clip tensor, optionally a block of its rows, and whether HF's tensor is transposed."""

    name: str
    part: int | None = None  # 0, 1, 2: the q, k or v rows of a packed in_proj tensor
    transpose: bool = False

    def add(self, state: dict[str, torch.Tensor], value: torch.Tensor, where: str) -> None:
        """Add `value` (in HF's orientation) to its place in `state`, checking the shape first."""
        if self.name not in state:
            raise UserError(f"{where} has no counterpart {self.name} in the base model; it was made for another base.")
        value = value.t() if self.transpose else value
        tensor = state[self.name]
        if self.part is not None:
            rows = value.shape[0]
            if tensor.shape[0] != 3 * rows:
                raise UserError(f"{where} has shape {tuple(value.shape)}, which does not fit a third of the base's "
                                f"{self.name} {tuple(tensor.shape)}; it was made for another base.")
            tensor = tensor[self.part * rows:(self.part + 1) * rows]
        if tensor.shape != value.shape:
            raise UserError(f"{where} has shape {tuple(value.shape)}, the base's {self.name} has "
                            f"{tuple(tensor.shape)}; it was made for another base.")
        tensor.add_(value.to(tensor.dtype))


def open_clip_target(hf_name: str) -> Target | None:
    """The open_clip tensor an HF CLIPModel tensor becomes, or None when there is none."""
    if hf_name in _DIRECT:
        return Target(_DIRECT[hf_name])
    if hf_name in _TRANSPOSED:
        return Target(_TRANSPOSED[hf_name], transpose=True)
    match = _LAYER.match(hf_name)
    if not match:
        return None
    prefix = f"{'visual.' if match['tower'] == 'vision' else ''}transformer.resblocks.{match['i']}"
    module, _, leaf = match["rest"].rpartition(".")
    if module.startswith("self_attn.") and module.split(".", 1)[1] in _QKV:
        return Target(f"{prefix}.attn.in_proj_{leaf}", part=_QKV[module.split('.', 1)[1]])
    if module in _BLOCK_PARTS:
        return Target(f"{prefix}.{_BLOCK_PARTS[module]}.{leaf}")
    return None


def convert_state(hf_state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """An HF CLIPModel state dict as an open_clip CLIP state dict (float32 copies)."""
    out: dict[str, torch.Tensor] = {}
    packed: dict[str, dict[int, torch.Tensor]] = {}
    for name, tensor in hf_state.items():
        if _IGNORED.search(name):
            continue
        target = open_clip_target(name)
        if target is None:
            raise UserError(f"Checkpoint {where} has tensor {name}, which has no place in an open_clip CLIP model; "
                            "only plain CLIPModel checkpoints (ViT towers, both projections) can be imported.")
        value = tensor.float().t() if target.transpose else tensor.float()
        if target.part is None:
            out[target.name] = value.contiguous()
        else:
            packed.setdefault(target.name, {})[target.part] = value
    for name, parts in packed.items():
        if sorted(parts) != [0, 1, 2]:
            raise UserError(f"Checkpoint {where} lacks the {'qkv'[min(set(range(3)) - set(parts))]}_proj part of {name}.")
        out[name] = torch.cat([parts[0], parts[1], parts[2]]).contiguous()
    return out


# ---------------------------------------------------------------------------------------------
# Finding and reading a checkpoint


def resolve_folder(source: str | Path) -> Path:
    """The local folder of an HF checkpoint: the folder itself, or the cached snapshot of a hub id."""
    text = str(source)
    if not text.startswith(TRANSFORMERS_PREFIX):
        folder = Path(text)
        if not (folder / "config.json").is_file():
            raise UserError(f"{folder} is not a Hugging Face checkpoint folder (no config.json): give a folder written "
                            "by CLIPModel.save_pretrained, or transformers:<org>/<repo> for a model in the local cache.")
        return folder
    repo = text[len(TRANSFORMERS_PREFIX):]
    from huggingface_hub import constants, snapshot_download

    try:  # HF_HUB_OFFLINE=1 makes this a pure cache look-up
        return Path(snapshot_download(repo, allow_patterns=["*.json", "*.safetensors", "pytorch_model.bin", "*.txt"],
                                      local_files_only=bool(constants.HF_HUB_OFFLINE)))
    except Exception as exc:
        raise UserError(f"Hugging Face model {repo} is not in the local cache ({constants.HF_HUB_CACHE}) and could not "
                        f"be fetched ({type(exc).__name__}); download it first or give its folder.") from None


def read_clip_config(folder: Path):
    """The folder's CLIPConfig (transformers fills the defaults an older save left out)."""
    transformers = require_transformers()
    raw = json.loads((folder / "config.json").read_text())
    if raw.get("model_type") != "clip":
        raise UserError(f"{folder / 'config.json'} describes a {raw.get('model_type') or 'non-transformers'} model, "
                        "not a CLIPModel (model_type clip) with both towers; overspec imports CLIP checkpoints only.")
    return transformers.CLIPConfig.from_pretrained(str(folder), local_files_only=True)


def read_weights(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of the folder's weight files, and each file's sha256 (for the model card)."""
    from overspec.models.importing import load_tensor_file
    from overspec.provenance import sha256_file

    name = next((n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    if name is None:
        raise UserError(f"Checkpoint folder {folder} has none of {', '.join(WEIGHT_FILES)}: save the model with "
                        "save_pretrained.")
    files = [folder / name]
    if name.endswith(".index.json"):
        weight_map = json.loads(files[0].read_text()).get("weight_map") or {}
        files = [folder / shard for shard in sorted(set(weight_map.values()))]
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_tensor_file(path))
    return state, {path.name: sha256_file(path) for path in files}


# ---------------------------------------------------------------------------------------------
# Architecture


def open_clip_config(config) -> dict[str, Any]:
    """The open_clip model config (embed_dim, quick_gelu, vision_cfg, text_cfg) of an HF CLIPConfig."""
    vision, text = config.vision_config, config.text_config
    acts = {vision.hidden_act, text.hidden_act}
    if acts - {"gelu", "quick_gelu"} or len(acts) > 1:
        raise UserError(f"CLIP config uses activations vision {vision.hidden_act} / text {text.hidden_act}; open_clip "
                        "builds both towers with one of gelu or quick_gelu.")
    for tower in (vision, text):
        if abs(tower.layer_norm_eps - 1e-5) > 1e-12:
            raise UserError(f"CLIP config has layer_norm_eps {tower.layer_norm_eps}; open_clip's layer norms use 1e-5.")
        if tower.intermediate_size % tower.hidden_size or tower.hidden_size % tower.num_attention_heads:
            raise UserError(f"CLIP config's {tower.model_type} has intermediate_size {tower.intermediate_size} / heads "
                            f"{tower.num_attention_heads} that do not divide its width {tower.hidden_size} as open_clip needs.")
    return {
        "embed_dim": config.projection_dim,
        "quick_gelu": acts == {"quick_gelu"},
        "vision_cfg": {"image_size": vision.image_size, "patch_size": vision.patch_size, "width": vision.hidden_size,
                       "layers": vision.num_hidden_layers, "head_width": vision.hidden_size // vision.num_attention_heads,
                       "mlp_ratio": vision.intermediate_size // vision.hidden_size},
        "text_cfg": {"context_length": text.max_position_embeddings, "vocab_size": text.vocab_size,
                     "width": text.hidden_size, "heads": text.num_attention_heads, "layers": text.num_hidden_layers,
                     "mlp_ratio": text.intermediate_size // text.hidden_size},
    }


def normalised(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """An open_clip model config with every tower default filled in, so equal models compare equal."""
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    out = {k: v for k, v in model_cfg.items() if k not in ("vision_cfg", "text_cfg")}
    out.setdefault("quick_gelu", False)
    out["vision_cfg"] = json.loads(json.dumps({**asdict(CLIPVisionCfg()), **model_cfg["vision_cfg"]}))
    out["text_cfg"] = json.loads(json.dumps({**asdict(CLIPTextCfg()), **model_cfg["text_cfg"]}))
    return out


def architecture_name(model_cfg: Mapping[str, Any]) -> str:
    """The open_clip (or toy) architecture with exactly this config, else `hf-clip-<digest>`."""
    import open_clip

    wanted = normalised(model_cfg)
    for name in known_architectures():
        known = open_clip.get_model_config(name)
        if known and set(known) <= {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg"} and normalised(known) == wanted:
            return name
    digest = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:12]
    return f"{CUSTOM_ARCH_PREFIX}{digest}"


def preprocessing_overrides(folder: Path) -> dict[str, Any]:
    """mean, std and interpolation from the folder's preprocessor_config.json (CLIPImageProcessor)."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    out: dict[str, Any] = {}
    if "image_mean" in raw and "image_std" in raw:
        out.update(mean=[float(v) for v in raw["image_mean"]], std=[float(v) for v in raw["image_std"]])
    if raw.get("resample") in (2, 3):  # PIL codes: 2 bilinear, 3 bicubic
        out["interpolation"] = "bicubic" if raw["resample"] == 3 else "bilinear"
    return out


@dataclass
class HFCheckpoint:
    """An HF CLIP checkpoint converted: open_clip state, model config, and what the card records."""

    state: dict[str, torch.Tensor]
    model_config: dict[str, Any]
    arch: str
    preprocessing: dict[str, Any]
    card: dict[str, Any]


def read_hf_checkpoint(source: str | Path) -> HFCheckpoint:
    folder = resolve_folder(source)
    config = read_clip_config(folder)
    model_cfg = open_clip_config(config)
    state, digests = read_weights(folder)
    converted = convert_state(state, str(folder))
    # a hub id as given; a folder by its name only, so moving the study does not change the model file
    name = str(source) if str(source).startswith(TRANSFORMERS_PREFIX) else Path(source).name
    card = {"kind": "transformers", "id": name, "files": digests,
            "config_sha256": hashlib.sha256((folder / "config.json").read_bytes()).hexdigest(),
            "config": json.loads((folder / "config.json").read_text())}
    return HFCheckpoint(converted, model_cfg, architecture_name(model_cfg), preprocessing_overrides(folder), card)
