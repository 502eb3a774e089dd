"""Config validation: one sentence naming the key and what is allowed."""

import copy
from pathlib import Path

import pytest
import yaml

from overspec.config import check_config
from workflow_helpers import config_error

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "config.schema.yaml"


def default_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.mark.parametrize("path", ["config.yaml", "tests/configs/tiny.yaml", "configs/paper.yaml"])
def test_shipped_configs_are_valid(path):
    check_config(yaml.safe_load((ROOT / path).read_text()), SCHEMA)


def error_of(mutate) -> str:
    config = copy.deepcopy(default_config())
    mutate(config)
    return config_error(config, SCHEMA)


def test_unknown_top_level_key():
    message = error_of(lambda c: c.update(sedd=1))
    assert "'sedd'" in message and "seed" in message and "models" in message


def test_unknown_nested_key_names_the_path_and_allowed_keys():
    message = error_of(lambda c: c["models"]["clip-toy-s"].update(adaptaton="fr"))
    assert "models.clip-toy-s.adaptaton" in message and "adaptation" in message and "backbone" in message


def test_wrong_type():
    message = error_of(lambda c: c.update(seed="zero"))
    assert "'seed'" in message and "integer" in message


def test_enum_lists_allowed_values():
    message = error_of(lambda c: c["backbones"]["toy-s"].update(source="timm"))
    assert "backbones.toy-s.source" in message and "toy_pretrain" in message and "open_clip" in message


def test_webdataset_names_a_listed_general_dataset():
    message = error_of(lambda c: c["datasets"].update(webdataset=["cifar10"]))
    assert "datasets.webdataset[0]" in message and "toy_colours" in message


def test_unknown_dataset_lists_known_ones():
    message = error_of(lambda c: c["datasets"]["general"].append("toy_colors"))
    assert "datasets.general[5]" in message and "toy_colours" in message


def test_unknown_backbone_reference():
    message = error_of(lambda c: c["models"].update(x={"backbone": "vit-b"}))
    assert "models.x.backbone" in message and "toy-s" in message


def test_unknown_architecture():
    message = error_of(lambda c: c["backbones"]["toy-s"].update(arch="ViT-B-17"))
    assert "backbones.toy-s.arch" in message and "ViT-B-16" in message


def test_missing_required_key():
    message = error_of(lambda c: c.pop("models"))
    assert "models" in message and "missing" in message


def test_snakemake_stops_before_any_rule_with_the_sentence(tmp_path):
    """The workflow validates at parse time: a typo stops `snakemake -n` with the one sentence."""
    import subprocess
    import sys

    config = default_config()
    config["models"]["clip-toy-s"]["adaptaton"] = "fr"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
                             "--configfile", str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "Unknown config key 'models.clip-toy-s.adaptaton'" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_parsing_the_workflow_imports_neither_torch_nor_open_clip(tmp_path):
    """Every Snakemake start parses the workflow (controllers, dry runs, each SLURM job): it must not
    pay the seconds of importing torch and open_clip, which only the jobs that run models need."""
    import subprocess
    import sys

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(default_config()))
    probe = ("import runpy, sys\n"
             f"sys.argv = ['snakemake', '-n', '-q', '-s', {str(ROOT / 'Snakefile')!r}, '-d', {str(tmp_path)!r}, "
             f"'--configfile', {str(tmp_path / 'config.yaml')!r}]\n"
             "try:\n    runpy.run_module('snakemake', run_name='__main__')\nexcept SystemExit as done:\n"
             "    assert not done.code, done.code\n"
             "print('LOADED', [m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert "LOADED []" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_snakemake_lint_finds_nothing(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(ROOT / "Snakefile"), "-d",
                             str(tmp_path), "--configfile", str(ROOT / "config.yaml")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "Lints for" not in result.stdout + result.stderr, result.stdout[-3000:]
