"""Config checks and tables for fine-tuned and imported models, recipes and biometric benchmarks."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from overspec.config import (
    RESOURCE_DEFAULTS,
    check_config,
    finetune_recipe,
    import_settings,
    missing_biometric_data,
    model_table,
    recipe_resources,
)
from overspec.errors import UserError
from overspec.train.recipe import AugmentConfig, FinetuneConfig
from overspec.models.heads import HeadConfig
from overspec.models.lora import LoRAConfig
from overspec.train.schedule import ScheduleConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "config.schema.yaml"


def load(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


def error_of(mutate, path: str = "config.yaml") -> str:
    config = copy.deepcopy(load(path))
    mutate(config)
    with pytest.raises(UserError) as info:
        check_config(config, SCHEMA)
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


@pytest.mark.parametrize("path", ["configs/published.yaml"])
def test_published_config_is_valid(path):
    check_config(load(path), SCHEMA)


def test_unknown_recipe_lists_the_recipes():
    message = error_of(lambda c: c["models"]["clip-toy-s-fr"].update(recipe="toy-frr"))
    assert "models.clip-toy-s-fr.recipe" in message and "'toy-frr'" in message and "toy-fr, toy-mad-m" in message


def test_recipe_for_another_task_is_refused():
    message = error_of(lambda c: c["models"]["clip-toy-s-fr"].update(recipe="toy-pad-s"))
    assert "recipes.toy-pad-s.head.type" in message and "cosface or arcface" in message
    message = error_of(lambda c: c["recipes"]["toy-fr"].update(task="mad"))
    assert "recipes.toy-fr.task" in message and "adaptation fr" in message


def test_invalid_recipe_value_names_the_recipe():
    message = error_of(lambda c: c["recipes"]["toy-fr"].update(epochs=None, max_steps=None))
    assert "recipes.toy-fr" in message and "epochs or max_steps" in message


def test_fine_tune_needs_a_baseline_of_its_backbone():
    message = error_of(lambda c: c["models"].pop("clip-toy-m"))
    assert "backbone toy-m" in message and "adaptation none" in message


def test_baseline_cannot_have_a_recipe_and_fine_tune_needs_recipe_or_import():
    message = error_of(lambda c: c["models"]["clip-toy-s"].update(recipe="toy-fr"))
    assert "models.clip-toy-s.recipe" in message and "adaptation none" in message
    message = error_of(lambda c: c["models"]["clip-toy-s-fr"].pop("recipe"))
    assert "exactly one of recipe" in message


def test_fine_tune_without_training_data_is_refused():
    message = error_of(lambda c: c.update(biometrics={"source": "none"}))
    assert "train_data" in message and "biometrics.fr.train" in message


def test_biometric_sections_follow_the_source():
    message = error_of(lambda c: c["biometrics"].update(fr={"pairs": {"lfw": "lfw.bin"}}))
    assert "biometrics.fr" in message and "source is toy" in message
    message = error_of(lambda c: c.update(biometrics={"source": "files", "tasks": ["mad"]}))
    assert "biometrics.mad" in message and "missing" in message
    message = error_of(lambda c: c.update(biometrics={"source": "files", "tasks": ["fr"],
                                                      "fr": {"pairs": {"x": "a.bin"}, "ijb": {"x": "IJB"}}}))
    assert "biometrics.fr.ijb.x" in message


def test_benchmark_names_must_be_usable_in_paths():
    message = error_of(lambda c: c.update(biometrics={"source": "files", "tasks": ["fr"], "fr": {"pairs": {"l fw": "a.bin"}}}))
    assert "biometrics.fr.pairs" in message


def test_model_table_says_how_each_model_is_made():
    config = load("config.yaml")
    check_config(config, SCHEMA)
    table = model_table(config)
    assert table["clip-toy-s"]["made_by"] == "pretrain_toy_clip" and table["clip-toy-s"]["base"] is None
    row = table["clip-toy-m-mad"]
    assert (row["made_by"], row["base"], row["recipe"], row["adaptation"]) == ("finetune_model", "clip-toy-m", "toy-mad-m", "mad")
    assert row["train_data"] == "results/data/toy_biometrics/mad/train.csv"
    assert table["clip-toy-s-fr"]["train_data"] == "results/data/toy_biometrics/fr_train"
    paper = model_table(load("configs/paper.yaml"))
    assert paper["clip-vit-b16"]["made_by"] == "import_model" and paper["clip-vit-l14-fr"]["base"] == "clip-vit-l14"
    assert paper["clip-vit-b16-mad"]["train_data"] == "data/SMDD/train.csv"
    published = model_table(load("configs/published.yaml"))
    assert published["madation-vit-b16"]["made_by"] == "import_published_model"


def test_recipe_gets_task_and_study_seed_and_resources_their_defaults():
    config = load("config.yaml")
    recipe = finetune_recipe(config, "clip-toy-s-pad")
    assert recipe["task"] == "pad" and recipe["seed"] == config["seed"] and "resources" not in recipe
    assert FinetuneConfig.from_dict(recipe).head.type == "binary"
    config["recipes"]["toy-pad-s"]["resources"] = {"gpu": 2}
    assert recipe_resources(config, "clip-toy-s-pad") == {**RESOURCE_DEFAULTS, "gpu": 2}
    paper = load("configs/paper.yaml")
    assert finetune_recipe(paper, "clip-vit-b16-mad")["seed"] == 777  # the published seed wins


def test_paper_recipes_are_the_published_ones():
    paper = load("configs/paper.yaml")
    fr = FinetuneConfig.from_dict(finetune_recipe(paper, "clip-vit-b16-fr"))
    assert (fr.lora.r, fr.lora.alpha, fr.lora.dropout, fr.lora.rslora, fr.lora.targets) == (16, 32, 0.25, True, ("q", "v"))
    assert (fr.head.type, fr.head.s, fr.head.m, fr.lr_encoder, fr.lr_head, fr.weight_decay) == ("cosface", 64, 0.3, 1e-4, 1e-4, 0.05)
    assert (fr.epochs, fr.batch_size, fr.schedule.warmup, fr.schedule.T_0, fr.schedule.T_mult) == (40, 512, 5, 5, 2)
    assert (fr.augment.rand_augment, fr.augment.rand_augment_ops, fr.augment.rand_augment_magnitude) == (True, 4, 16)
    mad_b = FinetuneConfig.from_dict(finetune_recipe(paper, "clip-vit-b16-mad"))
    mad_l = FinetuneConfig.from_dict(finetune_recipe(paper, "clip-vit-l14-mad"))
    assert (mad_b.lora.r, mad_b.lora.alpha, mad_b.lora.dropout, mad_l.lora.alpha, mad_l.lora.dropout) == (2, 4, 0.4, 8, 0.2)
    assert (mad_b.lr_encoder, mad_b.lr_head, mad_b.batch_size, mad_b.head.type) == (1e-5, 1e-4, 256, "binary")
    pad = FinetuneConfig.from_dict(finetune_recipe(paper, "clip-vit-l14-pad"))
    assert (pad.lora.r, pad.lora.alpha, pad.lora.dropout, pad.lr_encoder, pad.lr_head, pad.batch_size) == (8, 8, 0.4, 1e-6, 1e-3, 512)
    assert pad.balanced_sampling


def test_schema_defaults_are_the_code_defaults():
    """The schema documents (and Snakemake fills in) the defaults; they must be FinetuneConfig's."""
    recipe = yaml.safe_load(SCHEMA.read_text())["$defs"]["recipe"]["properties"]

    def defaults(cls):
        return {f.name: f.default if f.default is not dataclasses.MISSING else None for f in dataclasses.fields(cls)}

    def jsonable(value):
        return list(value) if isinstance(value, tuple) else value

    code = defaults(FinetuneConfig)
    for key, spec in recipe.items():
        if "default" in spec and key in code and not isinstance(spec["default"], dict):
            assert spec["default"] == jsonable(code[key]), key
    for key, cls in (("lora", LoRAConfig), ("head", HeadConfig), ("schedule", ScheduleConfig), ("augment", AugmentConfig)):
        nested = defaults(cls)
        for name, spec in recipe[key]["properties"].items():
            assert spec["default"] == jsonable(nested[name]), f"{key}.{name}"
    assert {k: v["default"] for k, v in recipe["resources"]["properties"].items()} == RESOURCE_DEFAULTS


def test_import_paths_resolve_under_data_root_and_missing_ones_are_listed():
    published = load("configs/published.yaml")
    settings = import_settings(published, "madation-vit-b16")
    assert settings["checkpoint"].startswith(published["data_root"] + "/") and settings["lora_alpha"] == 4
    lines = missing_biometric_data(published)
    assert any(line.startswith("madation-vit-b16:") and "checkpoint" in line for line in lines)
    assert any(line.startswith("mad/syn_mad22:") for line in lines)
