"""Which model is which remedy against forgetting, read from the study config (torch-free: the
workflow calls it at parse).

`analyses.mitigation.references` names plain fine-tunes. Every other fine-tune (a model with a
recipe) of a reference's backbone, task and training data is a remedy of it, named by what its
recipe changes: the keys in which the two recipes differ once both are parsed with their defaults
(`l2sp`, `lp_ft`, `freeze_blocks` for the options that exist against forgetting; any other key by
its dotted path, e.g. `lr_encoder` or `lora.r`), and its strength by the new values. Each WiSE-FT
model of a reference is the remedy `wiseft` at its alpha. The reference itself is `none`.
"""

from __future__ import annotations

from typing import Any

from overspec.errors import UserError
from overspec.train.recipe import MITIGATION_KEYS, FinetuneConfig

PLAIN = "none"
WISEFT = "wiseft"


def mitigation_settings(config: dict[str, Any]) -> dict[str, Any]:
    """analyses.mitigation of a config with the schema's defaults filled in (by Snakemake's `validate`
    in the workflow, else by `overspec.config.fill_defaults`): the schema alone holds them."""
    return config["analyses"]["mitigation"]


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def recipe_difference(reference: dict[str, Any], other: dict[str, Any]) -> tuple[str, str]:
    """(remedy, strength) of recipe `other` against `reference` (FinetuneConfig mappings), e.g.
    ("l2sp", "weight=10"), ("freeze_blocks", "2"), ("lora.r+lr_encoder", "lora.r=2, lr_encoder=0.0005")."""
    ref = _flat(FinetuneConfig.from_dict(reference).to_dict())
    new = _flat(FinetuneConfig.from_dict(other).to_dict())
    changed = sorted(k for k in set(ref) | set(new) if ref.get(k) != new.get(k) and k != "seed")
    if not changed:
        return PLAIN, ""

    def kind(key: str) -> str:  # an option against forgetting by its name, anything else by its path
        top = key.split(".")[0]
        return top if top in MITIGATION_KEYS else key

    kinds = sorted({kind(k) for k in changed}, key=lambda k: (k not in MITIGATION_KEYS, k))
    parts = []
    for key in changed:
        if new.get(key) is None:
            continue  # an option switched off: its name in the remedy says so
        relative = key[len(kind(key)) + 1:] if len(kinds) == 1 and key != kind(key) else key
        parts.append(str(new[key]) if len(kinds) == 1 and key == kind(key) else f"{relative}={new[key]}")
    return "+".join(kinds), ", ".join(parts)


def remedy_table(config: dict[str, Any], table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model of a remedy group: its reference, remedy and strength ({} when the comparison is off).

    `table` is the study's model table (`overspec.config.model_table`), WiSE-FT models included.
    """
    from overspec.config import finetune_recipe

    settings = mitigation_settings(config)
    if not settings["enabled"]:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for reference in settings["references"]:
        ref = table[reference]
        group = {"reference": reference, "backbone": ref["backbone"], "task": ref["adaptation"]}
        out[reference] = {**group, "remedy": PLAIN, "strength": ""}
        for name, row in table.items():
            if name == reference or (row["backbone"], row["adaptation"]) != (ref["backbone"], ref["adaptation"]):
                continue
            if row["made_by"] == "interpolate_model" and row["finetune"] == reference:
                out[name] = {**group, "remedy": WISEFT, "strength": f"alpha={row['alpha']:g}"}
            elif row["made_by"] == "finetune_model" and row["train_data"] == ref["train_data"]:
                remedy, strength = recipe_difference(finetune_recipe(config, reference), finetune_recipe(config, name))
                out[name] = {**group, "remedy": remedy, "strength": strength}
    return out


def check_mitigation(config: dict[str, Any]) -> None:
    """References are fine-tunes with a recipe, one per backbone and task, whose task is evaluated."""
    settings = mitigation_settings(config)
    where = "analyses.mitigation.references"
    seen: dict[tuple[str, str], str] = {}
    for i, name in enumerate(settings["references"]):
        spec = config["models"].get(name)
        if spec is None or "recipe" not in spec:
            tuned = sorted(m for m, s in config["models"].items() if "recipe" in s)
            raise UserError(f"Config key '{where}[{i}]' is {name!r}, which is not a model fine-tuned with a recipe: "
                            f"use one of {', '.join(tuned) or '(none: the study fine-tunes no model)'}.")
        key = (spec["backbone"], spec["adaptation"])
        if key in seen:
            raise UserError(f"Config key '{where}[{i}]' is {name!r}, but {seen[key]} is already the reference for "
                            f"{spec['adaptation']} on backbone {spec['backbone']}: keep one per backbone and task.")
        seen[key] = name
    if settings["enabled"] and not settings["references"]:
        raise UserError(f"Config key '{where}' is empty, but analyses.mitigation is enabled: name the plain "
                        "fine-tunes the remedies are compared with.")
