"""The open_clip architecture names a config may use, listed without importing open_clip or torch.

The workflow validates model names when Snakemake parses the Snakefile: in every controller, every
dry run and, on SLURM, every job. Importing open_clip there costs seconds each time (it pulls in
torch, torchvision and timm), so the names are read the way open_clip's own registry reads them:
every `model_configs/*.json` of the installed open_clip package holding `embed_dim`, `vision_cfg`
and `text_cfg`, plus overspec's toy architectures (tests/test_registry.py checks that this equals
`open_clip.list_models()`).
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "data" / "model_configs"
_REQUIRED_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
TRANSFORMERS_PREFIX = "transformers:"  # a Hugging Face hub id of a transformers CLIPModel (local cache)


def is_transformers_source(source: str) -> bool:
    """Whether `source` names a Hugging Face transformers checkpoint: transformers:<id>, or a folder with config.json."""
    return str(source).startswith(TRANSFORMERS_PREFIX) or (Path(source) / "config.json").is_file()


def open_clip_config_dir() -> Path:
    """open_clip's bundled `model_configs` folder, found without importing the package."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("open_clip is not installed: pip install open_clip_torch")
    return Path(next(iter(spec.submodule_search_locations))) / "model_configs"


@lru_cache(maxsize=1)
def known_architectures() -> tuple[str, ...]:
    """Names of every architecture open_clip can build here (its configs and overspec's), sorted."""
    names = set()
    for folder in (open_clip_config_dir(), MODEL_CONFIG_DIR):
        for path in folder.glob("*.json"):
            config = json.loads(path.read_text())
            if all(key in config for key in _REQUIRED_KEYS):
                names.add(path.stem)
    return tuple(sorted(names))


@lru_cache(maxsize=None)
def architecture_config(name: str) -> dict:
    """open_clip's config of architecture `name` (its JSON, read without importing open_clip)."""
    for folder in (MODEL_CONFIG_DIR, open_clip_config_dir()):
        path = folder / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
    raise KeyError(name)
