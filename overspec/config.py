"""Study configuration: validation with one-sentence errors, and the tables the rules use.

The JSON schema (`schemas/config.schema.yaml`) is the single source of truth for keys, types,
defaults and documentation; this module turns its errors into sentences and adds the checks a
schema cannot express (names that must exist in the dataset registry, in open_clip, or elsewhere in
the same config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from overspec.errors import UserError


def load_yaml(path: str | Path) -> Any:
    try:
        with open(path) as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise UserError(f"Config file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise UserError(f"Config file {path} is not valid YAML ({str(exc).splitlines()[0]}).") from None


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _sentence(error: jsonschema.ValidationError) -> str:
    where = _key(error.absolute_path)
    schema, value = error.schema, error.instance
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unexpected = sorted(set(value) - set(allowed))
        prefix = f"{where}." if error.absolute_path else ""
        return (f"Unknown config key '{prefix}{unexpected[0]}': allowed keys there are {', '.join(allowed)}."
                if allowed else f"Unknown config key '{prefix}{unexpected[0]}'.")
    if error.validator == "enum":
        return f"Config key '{where}' is {value!r}, which is not allowed: use one of {', '.join(map(str, schema['enum']))}."
    if error.validator == "type":
        return f"Config key '{where}' must be of type {schema['type']}, not {type(value).__name__} ({value!r})."
    if error.validator == "required":
        missing = [k for k in schema["required"] if k not in value]
        return f"Config key '{where}' is missing the required key '{missing[0]}'."
    return f"Config key '{where}' is invalid: {error.message}."


def validate_schema(config: dict[str, Any], schema_path: str | Path) -> None:
    """Stop at the first schema violation with one sentence naming the key and what is allowed."""
    schema = load_yaml(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(list(e.absolute_path))))
    if errors:
        raise UserError(_sentence(jsonschema.exceptions.best_match(errors)))


def check_references(config: dict[str, Any]) -> None:
    """Names that must exist elsewhere: backbones, open_clip architectures, registry datasets."""
    from overspec.data.registry import dataset_names
    from overspec.models.factory import known_architectures

    backbones = config["backbones"]
    archs = set(known_architectures())
    for name, backbone in backbones.items():
        if backbone["arch"] not in archs:
            raise UserError(f"Config key 'backbones.{name}.arch' is {backbone['arch']!r}, which is not an open_clip "
                            f"architecture: use one of {', '.join(sorted(a for a in archs if a.startswith(('ViT', 'toy'))))}.")
        if backbone["source"] == "open_clip" and not backbone.get("pretrained"):
            raise UserError(f"Config key 'backbones.{name}.pretrained' is missing: an open_clip backbone needs a "
                            f"pretrained tag (e.g. openai), an hf-hub id or a file.")
    for name, model in config["models"].items():
        if model["backbone"] not in backbones:
            raise UserError(f"Config key 'models.{name}.backbone' is {model['backbone']!r}, which is not a backbone: "
                            f"use one of {', '.join(sorted(backbones))}.")
    known = set(dataset_names())
    for i, dataset in enumerate(config.get("datasets", {}).get("general", [])):
        if dataset not in known:
            raise UserError(f"Config key 'datasets.general[{i}]' is {dataset!r}, which is not a known dataset: "
                            f"use one of {', '.join(sorted(known))}.")


def check_config(config: dict[str, Any], schema_path: str | Path) -> None:
    validate_schema(config, schema_path)
    check_references(config)


def missing_data(config: dict[str, Any]) -> list[str]:
    """One line per configured real dataset whose folder is missing under data_root."""
    from overspec.data.registry import get_dataset

    lines = []
    for name in config.get("datasets", {}).get("general", []):
        spec = get_dataset(name)
        if spec.is_toy:
            continue
        root = Path(config.get("data_root", "data")) / (spec.location or name)
        if not root.exists():
            lines.append(f"{name}: {root} is missing (expected {spec.layout or 'its standard layout'})")
    return lines


# ---------------------------------------------------------------------------------------------
# Tables for the rules


def model_table(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per model: backbone, arch, adaptation, how its weights are made, and its label for tables."""
    table = {}
    for name, model in config["models"].items():
        backbone = config["backbones"][model["backbone"]]
        table[name] = {
            "model": name,
            "backbone": model["backbone"],
            "backbone_label": backbone.get("label", model["backbone"]),
            "arch": backbone["arch"],
            "adaptation": model.get("adaptation", "none"),
            "source": backbone["source"],
        }
    return table
