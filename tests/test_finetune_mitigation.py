"""The recipe options against forgetting on tiny ViTs: L2-SP, LP-FT and freeze_blocks, alone and with
full fine-tuning, early stopping and DDP; each recorded in the model card; bad values in one sentence."""

from __future__ import annotations

import csv
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from _finetune_fixtures import _one_torch_thread, ddp_worker, world  # noqa: F401
from overspec.errors import UserError
from overspec.models.checkpoint import load_model
from overspec.train import lp_ft as lp_ft_module
from overspec.train.finetune import build_student, finetune
from overspec.train.recipe import FinetuneConfig

FR = {
    "task": "fr", "lora": {"r": 4, "alpha": 8, "dropout": 0.25}, "head": {"type": "cosface", "s": 16, "m": 0.2},
    "batch_size": 8, "epochs": None, "max_steps": 6, "lr_encoder": 1e-2, "lr_head": 1e-2,
    "schedule": {"kind": "constant"}, "augment": {"hflip": True}, "seed": 3,
}
FULL_MAD = {"task": "mad", "method": "full", "head": {"type": "binary"}, "batch_size": 4, "epochs": None,
            "max_steps": 5, "lr_encoder": 1e-3, "lr_head": 1e-2, "schedule": {"kind": "constant"}, "seed": 1}


def _run(world, tmp_path, recipe, data="ids", name="m"):
    card = finetune(FinetuneConfig.from_dict(recipe), world["base"], world[data], tmp_path / f"{name}.safetensors",
                    tmp_path / f"{name}.csv", progress=False)
    return card, load_model(tmp_path / f"{name}.safetensors").model.state_dict()


def _visual_change(base: dict, tuned: dict) -> float:
    return max(float((base[k] - tuned[k]).abs().max()) for k in base if k.startswith("visual."))


def _log(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


# -- L2-SP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe,data", [(FR, "ids"), (FULL_MAD, "csv")], ids=["lora", "full"])
def test_l2sp_with_a_huge_weight_leaves_the_encoder_at_the_pretrained_weights(world, tmp_path, recipe, data):
    base = load_model(world["base"]).model.state_dict()
    _, plain = _run(world, tmp_path, recipe, data, "plain")
    card, held = _run(world, tmp_path, {**recipe, "l2sp": {"weight": 1e12}}, data, "held")
    _, loose = _run(world, tmp_path, {**recipe, "l2sp": {"weight": 0.0}}, data, "loose")
    assert _visual_change(base, plain) > 1e-4  # the plain fine-tune moves the encoder
    assert _visual_change(base, held) < 1e-6  # L2-SP at 1e12 keeps it where it was (float rounding only)
    assert card["training"]["l2sp"]["distance_sq"] < 1e-12
    assert all(torch.equal(plain[k], loose[k]) for k in plain)  # weight 0 is the plain fine-tune, bit for bit


def test_l2sp_shrinks_the_distance_by_the_proximal_factor_each_step(world, tmp_path):
    """One step at lr 1e-2, weight 50: the update B @ A is 1 / (1 + 0.5) of what AdamW alone made."""
    one = {**FR, "max_steps": 1, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}
    base = load_model(world["base"]).model.state_dict()
    _, plain = _run(world, tmp_path, one, "ids", "plain")
    card, pulled = _run(world, tmp_path, {**one, "l2sp": {"weight": 50.0}}, "ids", "pulled")
    key = "visual.transformer.resblocks.0.attn.in_proj_weight"
    assert torch.allclose(pulled[key] - base[key], (plain[key] - base[key]) / 1.5, atol=1e-7)
    plain_sq = sum(float((plain[k] - base[k]).double().pow(2).sum()) for k in base if k.startswith("visual."))
    assert card["training"]["l2sp"]["distance_sq"] == pytest.approx(plain_sq / 1.5**2, rel=1e-3)


# -- LP-FT ------------------------------------------------------------------------------------


def test_lp_ft_probe_phase_changes_no_encoder_weight_and_then_fine_tunes(world, tmp_path, monkeypatch):
    seen = {}
    real_probe = lp_ft_module.probe_head

    def probe_and_check(visual, head, *args, **kwargs):
        before = {k: v.detach().clone() for k, v in visual.state_dict().items()}
        head_before = {k: v.detach().clone() for k, v in head.state_dict().items()}
        rows = real_probe(visual, head, *args, **kwargs)
        seen["encoder_same"] = all(torch.equal(before[k], v) for k, v in visual.state_dict().items())
        seen["head_moved"] = any(not torch.equal(head_before[k], v) for k, v in head.state_dict().items())
        seen["training_after"] = visual.training
        return rows

    monkeypatch.setattr("overspec.train.finetune.probe_head", probe_and_check)
    card, tuned = _run(world, tmp_path, {**FR, "lp_ft": {"probe_steps": 5}})
    assert seen == {"encoder_same": True, "head_moved": True, "training_after": True}
    base = load_model(world["base"]).model.state_dict()
    assert _visual_change(base, tuned) > 1e-4  # phase 2 fine-tunes the encoder
    rows = _log(tmp_path / "m.csv")
    assert [(int(r["step"]), r["phase"]) for r in rows] == [(s, "probe") for s in range(-4, 1)] + [
        (s, "finetune") for s in range(1, 7)]
    assert all(float(r["lr_encoder"]) == 0 and float(r["grad_norm"]) == 0 for r in rows[:5])
    training = card["training"]
    assert training["steps"] == 6 and training["recipe"]["lp_ft"] == {"probe_steps": 5}
    assert training["lp_ft"]["probe_steps"] == 5 and training["lp_ft"]["probe_final_metrics"]["steps_averaged"] == 5


def test_lp_ft_probe_learns_the_head(world, tmp_path):
    recipe = {**FR, "max_steps": 1, "lr_head": 5e-2, "lp_ft": {"probe_steps": 30}, "augment": {"hflip": False}}
    _run(world, tmp_path, recipe)
    probe = [float(r["loss"]) for r in _log(tmp_path / "m.csv") if r["phase"] == "probe"]
    assert sum(probe[-5:]) / 5 < 0.7 * sum(probe[:5]) / 5


# -- freeze_blocks ----------------------------------------------------------------------------


@pytest.mark.parametrize("recipe,data", [(FR, "ids"), (FULL_MAD, "csv")], ids=["lora", "full"])
def test_frozen_blocks_are_bit_identical_after_training(world, tmp_path, recipe, data):
    base = load_model(world["base"]).model.state_dict()
    card, tuned = _run(world, tmp_path, {**recipe, "freeze_blocks": 1}, data)
    below = [k for k in base if k.startswith(("visual.transformer.resblocks.0.", "visual.conv1", "visual.ln_pre",
                                              "visual.class_embedding", "visual.positional_embedding"))]
    assert below and all(torch.equal(base[k], tuned[k]) for k in below)
    in_proj = "visual.transformer.resblocks.1.attn.in_proj_weight"
    assert not torch.equal(base[in_proj], tuned[in_proj])  # the last block adapted
    assert card["training"]["freeze_blocks"] == {"frozen": 1, "depth": 2, "adapted_blocks": [1]}
    assert card["training"]["recipe"]["freeze_blocks"] == 1
    if recipe is FR:
        assert card["lora"]["blocks"] is None  # the recipe's own LoRA settings are recorded as given


def test_freeze_blocks_out_of_range_stops_with_the_recipe_key(world, tmp_path):
    with pytest.raises(UserError, match=r"^recipes\.toy\.freeze_blocks is 2, but the image encoder has 2 blocks: "
                                        r"use 0 to 1 \(at least the last block must be adapted\)\.$"):
        finetune(FinetuneConfig.from_dict({**FR, "freeze_blocks": 2}), world["base"], world["ids"],
                 tmp_path / "m.safetensors", tmp_path / "m.csv", progress=False, where="recipes.toy")
    assert not (tmp_path / "m.safetensors").exists()


def test_build_student_trains_only_the_unfrozen_part(world):
    model = load_model(world["base"]).model
    _, params = build_student(model, FinetuneConfig.from_dict({**FULL_MAD, "freeze_blocks": 1}), 2,
                              torch.device("cpu"))
    trained = {n for n, p in model.visual.named_parameters() if p.requires_grad}
    assert trained == {n for n, _ in model.visual.named_parameters()
                       if n.startswith(("transformer.resblocks.1.", "ln_post", "proj"))}
    assert len(params) == len(trained)


# -- together ---------------------------------------------------------------------------------


def test_all_three_with_early_stopping_are_recorded_in_the_card(world, tmp_path):
    recipe = {**FR, "l2sp": {"weight": 5.0}, "lp_ft": {"probe_steps": 3}, "freeze_blocks": 1,
              "early_stopping": {"metric": "eer", "max_steps": 4, "every": 2, "patience": 1, "fraction": 0.5}}
    card, _ = _run(world, tmp_path, recipe)
    training = card["training"]
    assert training["recipe"]["l2sp"] == {"weight": 5.0} and training["recipe"]["lp_ft"] == {"probe_steps": 3}
    assert training["recipe"]["freeze_blocks"] == 1
    assert {"l2sp", "lp_ft", "freeze_blocks", "early_stopping"} <= set(training)
    assert training["l2sp"]["weight"] == 5.0 and training["l2sp"]["distance_sq"] > 0
    assert training["early_stopping"]["validation"]["training_samples"] == 12  # the probe trains on this fit split too


def test_plain_recipe_card_has_no_mitigation_entries(world, tmp_path):
    card, _ = _run(world, tmp_path, FR)
    assert not {"l2sp", "lp_ft", "freeze_blocks"} & set(card["training"])
    assert card["training"]["recipe"]["l2sp"] is None and card["training"]["recipe"]["freeze_blocks"] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_with_every_option_equals_single_process(world, tmp_path):
    recipe = {**FR, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "max_steps": 3, "l2sp": {"weight": 5.0},
              "lp_ft": {"probe_steps": 2}, "freeze_blocks": 1, "augment": {"hflip": False}}
    finetune(FinetuneConfig.from_dict(recipe), world["base"], world["ids"], tmp_path / "single.safetensors",
             tmp_path / "single.csv", progress=False)
    kwargs = {"recipe": recipe, "base_model_path": str(world["base"]), "train_data": str(world["ids"]),
              "out_path": str(tmp_path / "ddp.safetensors"), "log_csv": str(tmp_path / "ddp.csv")}
    mp.spawn(ddp_worker, args=(2, _free_port(), kwargs), nprocs=2, join=True)
    single, ddp = load_file(tmp_path / "single.safetensors"), load_file(tmp_path / "ddp.safetensors")
    for key in single:
        assert torch.allclose(single[key], ddp[key], atol=2e-6, rtol=0), key
    single_rows, ddp_rows = _log(tmp_path / "single.csv"), _log(tmp_path / "ddp.csv")
    assert [r["phase"] for r in ddp_rows] == ["probe"] * 2 + ["finetune"] * 3
    assert [float(r["loss"]) for r in ddp_rows] == pytest.approx([float(r["loss"]) for r in single_rows], rel=1e-5)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("change,message", [
    ({"l2sp": {"weight": -1}}, r"^recipes\.x\.l2sp\.weight is -1; it must be a number >= 0\.$"),
    ({"l2sp": {}}, r"^recipes\.x\.l2sp needs weight\.$"),
    ({"l2sp": {"weight": 1, "beta": 2}}, r"^recipes\.x\.l2sp: unknown setting\(s\) \['beta'\]"),
    ({"lp_ft": {"probe_steps": 0}}, r"^recipes\.x\.lp_ft\.probe_steps is 0; it must be an integer >= 1\.$"),
    ({"freeze_blocks": -1}, r"^recipes\.x\.freeze_blocks is -1; it must be an integer >= 0"),
    ({"freeze_blocks": 2, "lora": {"blocks": [1, 3]}},
     r"^recipes\.x\.freeze_blocks is 2, which freezes block\(s\) \[1\] that recipes\.x\.lora\.blocks adapts"),
])
def test_bad_options_stop_with_one_sentence_naming_the_key(change, message):
    with pytest.raises(UserError, match=message):
        FinetuneConfig.from_dict({**FR, **change}, where="recipes.x")


def test_options_round_trip_through_the_card_recipe():
    config = FinetuneConfig.from_dict({**FR, "l2sp": {"weight": 2.5}, "lp_ft": {"probe_steps": 7}, "freeze_blocks": 1})
    assert FinetuneConfig.from_dict(config.to_dict()) == config
