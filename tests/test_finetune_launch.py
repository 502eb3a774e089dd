"""The fine-tuning job launcher: one process calls finetune directly; several run under torchrun, and
a child's user error comes back as one sentence."""

from __future__ import annotations

import json

import pytest

from _finetune_fixtures import _one_torch_thread, make_base_model, make_identity_folders  # noqa: F401
from overspec.errors import UserError
from overspec.models.checkpoint import read_card
from overspec.train.launch import run_finetune, torchrun_command
from overspec.train.recipe import FinetuneConfig

RECIPE = {"task": "fr", "lora": {"r": 2, "alpha": 4}, "head": {"type": "cosface", "s": 16, "m": 0.1},
          "batch_size": 6, "epochs": None, "max_steps": 2, "augment": {"hflip": False}, "seed": 3}


def test_single_process_writes_the_model_and_card_extras(tmp_path):
    base = make_base_model(tmp_path / "base.safetensors")
    data = make_identity_folders(tmp_path / "ids", identities=3, per_identity=4)
    card = run_finetune(RECIPE, base, data, tmp_path / "m.safetensors", tmp_path / "log.csv",
                        card_extra={"name": "m", "provenance": {"rule": "finetune_model"}}, progress=False)
    assert read_card(tmp_path / "m.safetensors") == json.loads(json.dumps({**card, "format": "overspec-model/1"}))
    assert card["name"] == "m" and card["provenance"] == {"rule": "finetune_model"}
    assert card["training"]["steps"] == 2 and card["training"]["seed"] == 3 and card["lora_merged"]
    assert (tmp_path / "log.csv").read_text().count("\n") == 3  # header + one row per step


def test_torchrun_command_carries_the_whole_recipe(tmp_path):
    config = FinetuneConfig.from_dict(RECIPE)
    command = torchrun_command(config, "b.safetensors", "ids", "m.safetensors", "log.csv", 4, "cuda", 3, {"name": "m"})
    assert command[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m"]
    assert command[6] == "overspec.train.finetune"
    recipe = json.loads(command[command.index("--recipe") + 1])
    assert FinetuneConfig.from_dict(recipe) == config
    assert command[command.index("--device") + 1] == "cuda" and command[command.index("--workers") + 1] == "3"
    assert json.loads(command[command.index("--card-extra") + 1]) == {"name": "m"}


@pytest.mark.slow
def test_torchrun_runs_ddp_and_a_childs_user_error_comes_back_as_one_sentence(tmp_path):
    """Two gloo processes under torchrun on CPU (a packaged toy architecture: children must know it)."""
    data = make_identity_folders(tmp_path / "ids", identities=3, per_identity=4)
    base = make_base_model(tmp_path / "base.safetensors", arch="toy-clip-s")
    card = run_finetune(RECIPE, base, data, tmp_path / "m.safetensors", tmp_path / "log.csv", processes=2,
                        card_extra={"name": "m"}, progress=False)
    assert card["training"]["world_size"] == 2 and card["name"] == "m" and card["training"]["steps"] == 2
    with pytest.raises(UserError, match=r"batch_size=7 is not divisible by the 2 processes"):
        run_finetune({**RECIPE, "batch_size": 7}, base, data, tmp_path / "m7.safetensors",
                     tmp_path / "log7.csv", processes=2, progress=False)
    assert not (tmp_path / "m7.safetensors").exists()
