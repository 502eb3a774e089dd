"""Config of imported models: your own checkpoint, a Hugging Face source, a PEFT adapter on the baseline;
the template study validates and plans."""

import copy
import subprocess
import sys
from pathlib import Path

import yaml

from overspec.config import check_config, import_settings, missing_biometric_data, model_lineage, model_table
from workflow_helpers import config_error

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "config.schema.yaml"
TEMPLATE = ROOT / "configs" / "your_model.yaml"


def template():
    return yaml.safe_load(TEMPLATE.read_text())


def sentence(config) -> str:
    return config_error(config, SCHEMA)


def test_template_validates_and_lists_the_missing_checkpoint():
    config = template()
    check_config(config, SCHEMA)
    assert len(config["datasets"]["general"]) == 14
    assert missing_biometric_data(config) == ["my-model: data/my_finetune (checkpoint) is missing"]


def test_template_plans_with_snakemake(tmp_path):
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "-s", str(ROOT / "Snakefile"),
                             "-d", str(tmp_path), "--configfile", str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    assert "Missing biometric data for my-model: data/my_finetune (checkpoint) is missing" in text
    assert "Missing data for food101" in text
    assert "import_published_model        1" in text and "import_model                  1" in text


def test_adapter_without_checkpoint_is_merged_into_the_baseline():
    config = template()
    config["models"]["my-model"]["import"] = {"adapter": "my_lora"}
    check_config(config, SCHEMA)
    table = model_table(config)
    assert table["my-model"]["base"] == "clip-base" and model_lineage(table, "my-model") == ["clip-base"]
    settings = import_settings(config, "my-model")
    assert settings == {"adapter": "data/my_lora", "checkpoint": "results/models/clip-base/model.safetensors"}
    assert missing_biometric_data(config) == ["my-model: data/my_lora (adapter) is missing"]


def test_hub_id_is_not_a_path_under_data_root():
    config = template()
    config["models"]["my-model"]["import"] = {"checkpoint": "transformers:me/my-clip", "adapter": "/abs/lora"}
    check_config(config, SCHEMA)
    settings = import_settings(config, "my-model")
    assert settings["checkpoint"] == "transformers:me/my-clip" and settings["adapter"] == "/abs/lora"
    assert model_table(config)["my-model"]["base"] is None
    assert missing_biometric_data(config) == ["my-model: /abs/lora (adapter) is missing"]


def test_import_needs_a_checkpoint_or_an_adapter():
    config = template()
    config["models"]["my-model"]["import"] = {"preprocessing": "froundation"}
    assert "names neither a checkpoint nor an adapter" in sentence(config)
    config = template()
    config["models"]["my-model"]["import"] = {"adapter": "my_lora"}
    del config["models"]["clip-base"]
    config["models"]["other"] = {"backbone": "base", "adaptation": "fr", "import": {"checkpoint": "x.pt"}}
    assert "merged into the baseline of backbone base, but there is none" in sentence(config)


def test_arch_may_be_left_out_only_for_a_hugging_face_checkpoint(tmp_path):
    config = template()
    del config["backbones"]["base"]["arch"]
    assert "Config key 'backbones.base.arch' is missing" in sentence(config)
    config["backbones"]["base"]["pretrained"] = "transformers:openai/clip-vit-base-patch16"
    check_config(copy.deepcopy(config), SCHEMA)
    assert model_table(config)["clip-base"]["arch"] is None
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    config["backbones"]["base"]["pretrained"] = str(tmp_path / "hf")
    check_config(config, SCHEMA)
