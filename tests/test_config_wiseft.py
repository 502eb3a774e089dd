"""analyses.wiseft: the generated models in the model table, their lineage, and the config checks;
the WiSE-FT overlay and the ablation config validate."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from snakemake.utils import update_config

from overspec.config import check_config, model_lineage, model_table, wiseft_curves, wiseft_name
from test_config import error_of

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "config.schema.yaml"


def study(**wiseft) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["analyses"] = {**(config.get("analyses") or {}), "wiseft": wiseft}
    return config


def with_wiseft(**wiseft):
    """A mutation of the default config for test_config.error_of: analyses.wiseft set to `wiseft`."""
    return lambda config: config.update(analyses={"wiseft": wiseft})


def test_names_are_file_and_wildcard_safe():
    assert wiseft_name("clip-toy-s-fr", 0.5) == "clip-toy-s-fr-wise050"
    assert wiseft_name("clip-toy-s-fr", 0.07) == "clip-toy-s-fr-wise007"  # 7.000000000000001 rounds
    assert wiseft_name("m", 0.0) == "m-wise000"


def test_model_table_gets_one_model_per_alpha_that_needs_one():
    config = study(enabled=True, models=["clip-toy-s-fr", "clip-toy-m-mad"])
    check_config(config, SCHEMA)
    table = model_table(config)
    new = sorted(set(table) - set(config["models"]))
    # FR: alpha 0 is the baseline, 1 the fine-tune; MAD keeps alpha 0 (baseline encoder, fine-tuned head)
    assert new == ["clip-toy-m-mad-wise000", "clip-toy-m-mad-wise025", "clip-toy-m-mad-wise050",
                   "clip-toy-m-mad-wise075", "clip-toy-s-fr-wise025", "clip-toy-s-fr-wise050", "clip-toy-s-fr-wise075"]
    row = table["clip-toy-s-fr-wise050"]
    assert (row["made_by"], row["base"], row["finetune"], row["alpha"]) == ("interpolate_model", "clip-toy-s",
                                                                           "clip-toy-s-fr", 0.5)
    assert (row["adaptation"], row["backbone"], row["arch"], row["recipe"]) == ("fr", "toy-s", "toy-clip-s", None)
    assert table["clip-toy-s-fr"]["finetune"] is None and table["clip-toy-s-fr"]["alpha"] is None
    curves = wiseft_curves(config)
    assert [(p["alpha"], p["model"]) for p in curves["clip-toy-s-fr"]] == [
        (0.0, "clip-toy-s"), (0.25, "clip-toy-s-fr-wise025"), (0.5, "clip-toy-s-fr-wise050"),
        (0.75, "clip-toy-s-fr-wise075"), (1.0, "clip-toy-s-fr")]
    assert curves["clip-toy-m-mad"][0] == {"alpha": 0.0, "model": "clip-toy-m-mad-wise000"}


def test_default_models_are_every_fine_tune_and_disabled_adds_nothing():
    table = model_table(study(enabled=True, alphas=[0.5]))
    tuned = [m for m, s in study()["models"].items() if s.get("adaptation", "none") != "none"]
    assert sorted(m for m in table if "-wise" in m) == sorted(f"{m}-wise050" for m in tuned)
    assert set(model_table(study(enabled=False, alphas=[0.5]))) == set(study()["models"])
    assert wiseft_curves(study(enabled=False)) == {}


def test_lineage_covers_both_parents():
    table = model_table(study(enabled=True, models=["clip-toy-s-pad"], alphas=[0.5]))
    assert model_lineage(table, "clip-toy-s-pad-wise050") == ["clip-toy-s", "clip-toy-s-pad"]
    assert model_lineage(table, "clip-toy-s-pad") == ["clip-toy-s"]
    assert model_lineage(table, "clip-toy-s") == []


def test_bad_wiseft_settings_are_one_sentence():
    message = error_of(with_wiseft(enabled=True, models=["clip-toy-s"]))
    assert "analyses.wiseft.models[0]" in message and "not a fine-tuned model" in message and "clip-toy-s-fr" in message
    message = error_of(with_wiseft(enabled=True, alphas=[0.5, 0.125]))
    assert "analyses.wiseft.alphas[1]" in message and "multiples of 0.01" in message
    assert "analyses.wiseft.alphas[0]" in error_of(with_wiseft(enabled=True, alphas=[1.5]))

    def clash(config):
        with_wiseft(enabled=True, models=["clip-toy-s-fr"], alphas=[0.5])(config)
        config["models"]["clip-toy-s-fr-wise050"] = {"backbone": "toy-s"}

    message = error_of(clash)
    assert "models.clip-toy-s-fr-wise050" in message and "clashes" in message

    def untested(config):
        with_wiseft(enabled=True, models=["clip-toy-s-pad"])(config)
        config["biometrics"]["tasks"] = ["fr", "mad"]

    assert "task pad is not evaluated" in error_of(untested)


def test_shipped_wiseft_overlay_and_ablation_are_valid():
    merged = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(merged, yaml.safe_load((ROOT / "configs" / "wiseft.yaml").read_text()))  # as --configfile a b
    check_config(merged, SCHEMA)
    assert len([m for m in model_table(merged) if "-wise" in m]) == 22
    ablation = yaml.safe_load((ROOT / "configs" / "ablation.yaml").read_text())
    check_config(copy.deepcopy(ablation), SCHEMA)
    recipes = ablation["recipes"]
    # each comparison changes exactly one thing
    assert {k for k in recipes["fr-r2"] if recipes["fr-r2"][k] != recipes["fr-r32"][k]} == {"lora"}
    default = yaml.safe_load((ROOT / "config.yaml").read_text())["recipes"]
    for backbone in ("s", "m"):
        binary, cosface = recipes[f"toy-mad-{backbone}"], recipes[f"toy-mad-{backbone}-cosface"]
        assert binary == default[f"toy-mad-{backbone}"]  # the default study's MAD recipe, verbatim
        assert {k for k in binary if binary[k] != cosface[k]} == {"head"}
