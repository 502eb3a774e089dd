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
from overspec.models.architectures import TRANSFORMERS_PREFIX, is_transformers_source


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
    """Names that must exist elsewhere: backbones, open_clip architectures, registry datasets, recipes
    (with a head for the model's task), a baseline to fine-tune from, training data, biometric files."""
    from overspec.data.registry import dataset_names
    from overspec.models.architectures import known_architectures

    backbones = config["backbones"]
    archs = set(known_architectures())
    for name, backbone in backbones.items():
        if "arch" not in backbone:
            if backbone["source"] != "open_clip" or not is_transformers_source(backbone.get("pretrained", "")):
                raise UserError(f"Config key 'backbones.{name}.arch' is missing: only a Hugging Face checkpoint (pretrained "
                                "transformers:<org>/<repo>, or a folder with config.json) can name its own architecture.")
            continue
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
    general = config.get("datasets", {}).get("general", [])
    for i, dataset in enumerate(config.get("datasets", {}).get("webdataset", [])):
        if dataset not in general:
            raise UserError(f"Config key 'datasets.webdataset[{i}]' is {dataset!r}, which is not in datasets.general: "
                            f"use one of {', '.join(general) or '(none listed)'}.")
    _check_biometrics(config.get("biometrics") or {})
    for name, model in config["models"].items():
        _check_adaptation(config, name, model)
    _check_wiseft(config)


# Heads a task's recipe may train: a margin head over identities for FR; for MAD/PAD the published
# binary head, or a margin head over their two classes (configs/ablation.yaml compares the two on the
# same data; such a model is scored by the probe, as it has no binary head).
TASK_HEADS = {"fr": ("cosface", "arcface"), "mad": ("binary", "cosface", "arcface"),
              "pad": ("binary", "cosface", "arcface")}
# What a fine-tuning job asks for when its recipe's `resources` leaves a key out (as the schema says).
RESOURCE_DEFAULTS = {"gpu": 1, "threads": 4, "mem_mb": 32000, "runtime": 1440}


def _check_biometrics(section: dict[str, Any]) -> None:
    source = section.get("source", "none")
    given = [task for task in ("fr", "mad", "pad") if task in section]
    if source == "toy" and given:
        raise UserError(f"Config key 'biometrics.{given[0]}' names real files, but biometrics.source is toy: "
                        "remove it or set source to files.")
    if source != "files":
        return
    for task in section.get("tasks", ["fr", "mad", "pad"]):
        if task not in section:
            raise UserError(f"Config key 'biometrics.{task}' is missing: source files evaluates task {task}, so name "
                            f"its files there (or drop {task} from biometrics.tasks).")
    fr = section.get("fr") or {}
    if "fr" in section.get("tasks", ["fr"]) and not (fr.get("pairs") or fr.get("ijb")):
        raise UserError("Config key 'biometrics.fr' names no benchmark: give pairs (.bin files) or ijb folders.")
    clash = sorted(set(fr.get("pairs") or {}) & set(fr.get("ijb") or {}))
    if clash:
        raise UserError(f"Config key 'biometrics.fr.ijb.{clash[0]}' reuses the name of a pair set; give every FR "
                        "benchmark its own name.")


def _check_adaptation(config: dict[str, Any], name: str, model: dict[str, Any]) -> None:
    """A fine-tuned model names an existing recipe for its task (or an import), and has a baseline and data."""
    adaptation = model.get("adaptation", "none")
    where = f"models.{name}"
    if adaptation == "none":
        extra = next((k for k in ("recipe", "import", "train_data") if k in model), None)
        if extra:
            raise UserError(f"Config key '{where}.{extra}' is set, but the model has adaptation none (a baseline is its "
                            "backbone's weights): set adaptation to fr, mad or pad, or remove the key.")
        return
    if ("recipe" in model) == ("import" in model):
        raise UserError(f"Config key '{where}' needs exactly one of recipe (fine-tune it) or import (a published "
                        f"checkpoint) for adaptation {adaptation}.")
    if "import" in model:
        if not ({"checkpoint", "adapter"} & set(model["import"])):
            raise UserError(f"Config key '{where}.import' names neither a checkpoint nor an adapter: give checkpoint (the "
                            "fine-tuned weights), adapter (a PEFT LoRA folder on the baseline), or both.")
        if "checkpoint" not in model["import"] and baseline_of(config, model["backbone"]) is None:
            raise UserError(f"Config key '{where}.import.adapter' is merged into the baseline of backbone "
                            f"{model['backbone']}, but there is none: add a model with that backbone and adaptation none.")
        head = (model["import"].get("head") or {}).get("type", "binary")
        if "head_checkpoint" in model["import"] and head not in TASK_HEADS[adaptation]:
            raise UserError(f"Config key '{where}.import.head.type' is {head!r}, which is not a {adaptation} head: use "
                            f"{' or '.join(TASK_HEADS[adaptation])}.")
        return
    recipes = config.get("recipes") or {}
    recipe_name = model["recipe"]
    if recipe_name not in recipes:
        raise UserError(f"Config key '{where}.recipe' is {recipe_name!r}, which is not a recipe: use one of "
                        f"{', '.join(sorted(recipes)) or '(none defined: add a recipes section)'}.")
    recipe = recipes[recipe_name] or {}
    if recipe.get("task", adaptation) != adaptation:
        raise UserError(f"Config key 'recipes.{recipe_name}.task' is {recipe['task']!r}, but model {name} has adaptation "
                        f"{adaptation}: use a recipe for {adaptation}.")
    head = (recipe.get("head") or {}).get("type", "cosface")
    if head not in TASK_HEADS[adaptation]:
        raise UserError(f"Config key 'recipes.{recipe_name}.head.type' is {head!r}, which cannot be trained for "
                        f"{adaptation}: use {' or '.join(TASK_HEADS[adaptation])}.")
    from overspec.train.recipe import FinetuneConfig

    arch = config["backbones"][model["backbone"]].get("arch")
    try:
        parsed = FinetuneConfig.from_dict(finetune_recipe(config, name), where=f"recipes.{recipe_name}")
        parsed.check_freeze_blocks(f"recipes.{recipe_name}", vision_depth(arch),
                                   f"the image encoder of {arch} (model {name})")
    except UserError as error:
        raise UserError(f"Config key 'recipes.{recipe_name}' is invalid: {error}") from None
    if baseline_of(config, model["backbone"]) is None:
        raise UserError(f"Config key '{where}' fine-tunes backbone {model['backbone']}, but no model is its baseline: "
                        f"add a model with backbone {model['backbone']} and adaptation none.")
    if train_data_of(config, model) is None:
        raise UserError(f"Config key '{where}.train_data' is missing: name the {adaptation} training data, or set "
                        f"biometrics.{adaptation}.train (or biometrics.source toy).")


def vision_depth(arch: str | None) -> int | None:
    """Transformer blocks of an architecture's image encoder, from its open_clip config (None when
    unknown here, e.g. read from a Hugging Face checkpoint: the fine-tune checks it on the model)."""
    from overspec.models.architectures import architecture_config

    try:
        layers = architecture_config(arch)["vision_cfg"]["layers"] if arch else None
    except (KeyError, ModuleNotFoundError):
        return None
    return layers if isinstance(layers, int) else None


def baseline_of(config: dict[str, Any], backbone: str) -> str | None:
    """The first model (config order) that is the untouched weights of `backbone`."""
    return next((m for m, spec in config["models"].items()
                 if spec["backbone"] == backbone and spec.get("adaptation", "none") == "none"), None)


def biometric_table(config: dict[str, Any]) -> dict[str, Any]:
    """The study's biometric benchmarks and training data (see `overspec.data.biometric.benchmarks`)."""
    from overspec.data.biometric.benchmarks import biometric_plan

    return biometric_plan(config.get("biometrics"), config.get("data_root", "data"))


def train_data_of(config: dict[str, Any], model: dict[str, Any]) -> str | None:
    """A fine-tune's training data: its own train_data (under data_root), else its task's default."""
    from overspec.data.biometric.benchmarks import under

    if "train_data" in model:
        return under(config.get("data_root", "data"), model["train_data"])
    return biometric_table(config)[model["adaptation"]]["train"]


def finetune_recipe(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The FinetuneConfig mapping of model `name`: its recipe without `resources`, task and seed filled in."""
    model = config["models"][name]
    recipe = {k: v for k, v in (config["recipes"][model["recipe"]] or {}).items() if k != "resources"}
    recipe["task"] = model["adaptation"]
    recipe.setdefault("seed", config.get("seed", 0))
    return recipe


def recipe_resources(config: dict[str, Any], name: str) -> dict[str, int]:
    """gpu, threads, mem_mb, runtime (minutes) of model `name`'s fine-tuning job."""
    recipe = config["recipes"][config["models"][name]["recipe"]] or {}
    return {**RESOURCE_DEFAULTS, **(recipe.get("resources") or {})}


IMPORT_FILES = ("checkpoint", "adapter", "head_checkpoint")  # import settings that name files under data_root


def import_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Model `name`'s import settings with paths resolved under data_root (a transformers:<id> stays
    as it is); an adapter without a checkpoint is merged into the backbone's baseline model file."""
    from overspec.data.biometric.benchmarks import under

    model = config["models"][name]
    settings = dict(model["import"])
    for key in IMPORT_FILES:
        if key in settings and not settings[key].startswith(TRANSFORMERS_PREFIX):
            settings[key] = under(config.get("data_root", "data"), settings[key])
    if "checkpoint" not in settings:
        settings["checkpoint"] = f"results/models/{baseline_of(config, model['backbone'])}/model.safetensors"
    return settings


def import_base(config: dict[str, Any], model: dict[str, Any]) -> str | None:
    """The baseline an imported adapter is merged into (when the import names no checkpoint)."""
    settings = model.get("import")
    return baseline_of(config, model["backbone"]) if settings and "checkpoint" not in settings else None


def missing_biometric_data(config: dict[str, Any]) -> list[str]:
    """One line per configured real biometric file (benchmark, training data, checkpoint) that is missing."""
    from overspec.data.biometric.benchmarks import missing_files

    lines = missing_files(biometric_table(config))
    for name, model in config["models"].items():
        if model.get("adaptation", "none") == "none":
            continue
        if "import" in model:
            settings = {k: v for k, v in import_settings(config, name).items() if k in model["import"]}
            for key in IMPORT_FILES:
                if settings.get(key) and not settings[key].startswith(TRANSFORMERS_PREFIX) and not Path(settings[key]).exists():
                    lines.append(f"{name}: {settings[key]} ({key}) is missing")
        elif biometric_table(config)["source"] != "toy" or "train_data" in model:
            path = train_data_of(config, model)
            if path and not Path(path).exists():
                lines.append(f"{name}: training data {path} is missing")
    return lines


def config_with_defaults(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """A checked copy of `config` with the schema's defaults filled in, as Snakemake's `validate`
    fills them for the workflow (for tools that read a config outside a run, e.g. `overspec estimate`)."""
    check_config(config, schema_path)
    return fill_defaults(config, schema_path)


def fill_defaults(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """A copy of `config` with the schema's defaults filled in, unchecked (`config_with_defaults` checks)."""
    import copy

    filled = copy.deepcopy(config)
    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    filling = jsonschema.validators.extend(base, {"properties": set_defaults})
    for _ in filling(load_yaml(schema_path)).iter_errors(filled):
        pass  # the caller checks (check_config)
    return filled


def check_config(config: dict[str, Any], schema_path: str | Path) -> None:
    validate_schema(config, schema_path)
    check_references(config)
    from overspec.analysis.remedies import check_mitigation

    check_mitigation(fill_defaults(config, schema_path))  # remedies read the schema's defaults, not a copy


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
    """Per model: backbone, arch, adaptation, how its weights are made (the rule, the base model, the
    recipe and training data of a fine-tune), and its label for tables."""
    table = {}
    for name, model in config["models"].items():
        backbone = config["backbones"][model["backbone"]]
        adaptation = model.get("adaptation", "none")
        table[name] = {
            "model": name,
            "backbone": model["backbone"],
            "backbone_label": backbone.get("label", model["backbone"]),
            "arch": backbone.get("arch"),  # None: read from the Hugging Face checkpoint at import
            "adaptation": adaptation,
            "source": backbone["source"],
            # which rule writes the model file, and from what
            "made_by": _made_by(backbone["source"], model),
            "base": baseline_of(config, model["backbone"]) if "recipe" in model else import_base(config, model),
            "finetune": None,  # set for WiSE-FT models (see wiseft_curves)
            "alpha": None,
            "recipe": model.get("recipe"),
            "train_data": train_data_of(config, model) if "recipe" in model else None,
        }
    for finetune, points in wiseft_curves(config).items():
        for point in points:
            if point["model"] in table:  # the fine-tune itself, or the baseline (FR at alpha 0)
                continue
            table[point["model"]] = {**table[finetune], "model": point["model"], "made_by": "interpolate_model",
                                     "base": baseline_of(config, table[finetune]["backbone"]), "finetune": finetune,
                                     "alpha": point["alpha"], "recipe": None, "train_data": None}
    return table


def model_lineage(table: dict[str, dict[str, Any]], name: str) -> list[str]:
    """Every model `name` is made from, nearest first, each once: a fine-tune's base; a WiSE-FT
    model's baseline and fine-tune (and what those are made from)."""
    lineage: list[str] = []
    queue = [name]
    while queue:
        row = table[queue.pop(0)]
        for parent in (row.get("base"), row.get("finetune")):
            if parent and parent not in lineage:
                lineage.append(parent)
                queue.append(parent)
    return lineage


def _made_by(source: str, model: dict[str, Any]) -> str:
    if "recipe" in model:
        return "finetune_model"
    if "import" in model:
        return "import_published_model"
    return "pretrain_toy_clip" if source == "toy_pretrain" else "import_model"


# ---------------------------------------------------------------------------------------------
# WiSE-FT: models interpolated in weight space between a baseline and its fine-tune

WISEFT_DEFAULTS = {"enabled": False, "alphas": [0.0, 0.25, 0.5, 0.75, 1.0], "min_gelo": 0.95}


def wiseft_settings(config: dict[str, Any]) -> dict[str, Any]:
    """analyses.wiseft with the schema's defaults (`models` None: every fine-tuned model)."""
    given = (config.get("analyses") or {}).get("wiseft") or {}
    return {**WISEFT_DEFAULTS, "models": None, **given}


def wiseft_name(finetune: str, alpha: float) -> str:
    """`clip-toy-s-fr` at 0.5 -> `clip-toy-s-fr-wise050`: a model name that is safe in paths and wildcards."""
    return f"{finetune}-wise{round(alpha * 100):03d}"


def wiseft_curves(config: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per interpolated fine-tune, the model that stands at each alpha (ascending), [] when disabled.

    At alpha 1 that is the fine-tune itself: the interpolation gives its weights and head bit for
    bit. At alpha 0 an FR fine-tune is represented by its baseline, because no FR evaluation uses the
    head and the encoder is then the baseline's; a MAD or PAD model at alpha 0 (baseline encoder,
    fine-tuned binary head) is a model of its own, since its attack scores come from that head.
    """
    settings = wiseft_settings(config)
    if not settings["enabled"]:
        return {}
    curves = {}
    for finetune in _wiseft_finetunes(config, settings):
        spec = config["models"][finetune]
        points = []
        for alpha in sorted(float(a) for a in settings["alphas"]):
            if alpha == 1.0:
                model = finetune
            elif alpha == 0.0 and spec["adaptation"] == "fr":
                model = baseline_of(config, spec["backbone"])
            else:
                model = wiseft_name(finetune, alpha)
            points.append({"alpha": alpha, "model": model})
        curves[finetune] = points
    return curves


def _wiseft_finetunes(config: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    tuned = [m for m, spec in config["models"].items() if spec.get("adaptation", "none") != "none"]
    return tuned if settings["models"] is None else list(settings["models"])


def _check_wiseft(config: dict[str, Any]) -> None:
    """Named models are fine-tunes with a baseline and an evaluated task; alphas give distinct names."""
    settings = wiseft_settings(config)
    where = "analyses.wiseft"
    for i, name in enumerate(settings["models"] or []):
        spec = config["models"].get(name)
        if spec is None or spec.get("adaptation", "none") == "none":
            tuned = sorted(m for m, s in config["models"].items() if s.get("adaptation", "none") != "none")
            raise UserError(f"Config key '{where}.models[{i}]' is {name!r}, which is not a fine-tuned model: use one "
                            f"of {', '.join(tuned) or '(none: the study fine-tunes no model)'}.")
    for i, alpha in enumerate(settings["alphas"]):
        if abs(alpha * 100 - round(alpha * 100)) > 1e-9:
            raise UserError(f"Config key '{where}.alphas[{i}]' is {alpha!r}: use multiples of 0.01 (each names a model).")
    if not settings["enabled"]:
        return
    biometrics = config.get("biometrics") or {}
    tasks = biometrics.get("tasks", ["fr", "mad", "pad"]) if biometrics.get("source", "none") != "none" else []
    for finetune in _wiseft_finetunes(config, settings):
        spec = config["models"][finetune]
        if baseline_of(config, spec["backbone"]) is None:
            raise UserError(f"Config key '{where}' interpolates {finetune}, but backbone {spec['backbone']} has no "
                            f"baseline: add a model with backbone {spec['backbone']} and adaptation none.")
        if spec["adaptation"] not in tasks:
            raise UserError(f"Config key '{where}' interpolates {finetune}, whose task {spec['adaptation']} is not "
                            f"evaluated: add it to biometrics.tasks (with a biometrics source) or leave the model out.")
    for finetune, points in wiseft_curves(config).items():
        for point in points:
            if point["model"] == wiseft_name(finetune, point["alpha"]) and point["model"] in config["models"]:
                raise UserError(f"Config key 'models.{point['model']}' clashes with the WiSE-FT model of {finetune} "
                                f"at alpha {point['alpha']}: rename the model.")
