"""Early stopping: the validation split, the bookkeeping, the fine-tune keeping the best step, bad input."""

import copy

import numpy as np
import pytest
import torch

from _finetune_fixtures import _one_torch_thread, make_base_model, make_csv_list, make_identity_folders  # noqa: F401
from overspec.config import check_config
from overspec.data.train_sets import CSVList
from overspec.errors import UserError
from overspec.models.checkpoint import load_model
from overspec.train import finetune as finetune_module
from overspec.train.early_stopping import (EarlyStopping, EarlyStoppingConfig, carve_validation,
                                           check_validation_split, validation_metric, verification_scores)
from overspec.train.finetune import finetune
from overspec.train.recipe import FinetuneConfig
from test_config import SCHEMA, default_config

MAD_RECIPE = {"task": "mad", "lora": {"r": 2, "alpha": 4, "dropout": 0.0}, "head": {"type": "binary"},
              "batch_size": 8, "epochs": None, "max_steps": None, "lr_encoder": 1e-3, "lr_head": 1e-2,
              "schedule": {"kind": "constant"}, "augment": {"hflip": False}, "seed": 3}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("es_world")
    return {"base": make_base_model(root / "base.safetensors"),
            "csv": make_csv_list(root / "mad", per_class=50),
            "small_csv": make_csv_list(root / "small", per_class=8),
            "ids": make_identity_folders(root / "ids", identities=8, per_identity=6)}


def test_the_best_step_is_kept_and_patience_stops():
    stopper = EarlyStopping(EarlyStoppingConfig(metric="eer", max_steps=100, patience=2, every=10), last_step=100)
    assert [s for s in range(1, 101) if stopper.due(s)] == list(range(10, 101, 10))
    assert [stopper.update(s, v) for s, v in [(10, 0.4), (20, 0.2), (30, 0.25), (40, 0.2)]] == [True, True, False, False]
    assert stopper.should_stop and stopper.best_step == 20 and stopper.best_value == 0.2  # a tie is no improvement
    card = stopper.card({"samples": 5})
    assert card["curve"] == [{"step": 10, "value": 0.4}, {"step": 20, "value": 0.2}, {"step": 30, "value": 0.25},
                             {"step": 40, "value": 0.2}]
    assert card["best_step"] == 20 and card["stopped_early"] and not card["higher_is_better"]
    rising = EarlyStopping(EarlyStoppingConfig(metric="auc", max_steps=25, every=10), last_step=25)
    assert rising.due(25) and not rising.due(24)  # the last step is always scored
    rising.update(10, 0.7)
    rising.update(20, 0.9)
    rising.update(25, 0.8)
    assert rising.best_step == 20 and not rising.should_stop


def test_validation_split_keeps_groups_whole_stratified_and_seeded():
    labels = np.repeat([0, 1], [40, 60])
    groups = np.repeat(np.arange(25), 4)  # 10 attack videos, 15 bona fide videos of 4 frames
    fit, val = carve_validation(labels, groups, 0.2, seed=1, stratify=True)
    assert sorted(np.concatenate([fit, val]).tolist()) == list(range(100))
    assert not set(groups[fit]) & set(groups[val])
    assert (len(set(groups[val][labels[val] == 0])), len(set(groups[val][labels[val] == 1]))) == (2, 3)
    again = carve_validation(labels, groups, 0.2, seed=1, stratify=True)
    other = carve_validation(labels, groups, 0.2, seed=2, stratify=True)
    assert np.array_equal(again[1], val) and not np.array_equal(other[1], val)
    identities = np.repeat(np.arange(10), 3)
    fit, val = carve_validation(identities, identities, 0.3, seed=0, stratify=False)
    assert len(set(identities[val])) == 3 and not set(identities[fit]) & set(identities[val])


def test_pad_lists_group_by_video(tmp_path):
    lines = ["path,label,attack_type,video_id"]
    for v in range(4):
        for k in range(2):
            (tmp_path / f"v{v}_{k}.png").write_bytes(b"x")
            lines.append(f"v{v}_{k}.png,{'attack' if v % 2 else 'bonafide'},{'print' if v % 2 else ''},v{v}")
    (tmp_path / "pad.csv").write_text("\n".join(lines) + "\n")
    assert CSVList(tmp_path / "pad.csv").groups.tolist() == ["v0", "v0", "v1", "v1", "v2", "v2", "v3", "v3"]


def test_validation_metrics_match_hand_computed_values():
    genuine, impostor = np.array([0.9, 0.8, 0.3]), np.array([0.1, 0.4, 0.2])
    assert validation_metric("auc", genuine, impostor) == pytest.approx(8 / 9)
    assert validation_metric("eer", genuine, impostor) == pytest.approx(1 / 3)
    assert validation_metric("loss", genuine, impostor, loss=0.25) == 0.25
    embeddings = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    same, different = verification_scores(embeddings, np.array([7, 7, 8]))
    assert same.tolist() == [1.0] and different.tolist() == [0.0, 0.0]


def test_a_split_too_small_to_score_names_the_recipe_key():
    with pytest.raises(UserError, match=r"recipes\.toy-mad\.early_stopping: the validation split has 4 attack"):
        check_validation_split("mad", np.array([0] * 4 + [1] * 20), ["attack", "bonafide"], "recipes.toy-mad")
    with pytest.raises(UserError, match="genuine pairs"):
        check_validation_split("fr", np.arange(20), [], "recipes.toy-fr")  # 20 identities of one image each
    counts = check_validation_split("fr", np.repeat(np.arange(5), 3), [], "recipes.toy-fr")
    assert counts == {"genuine_pairs": 15, "impostor_pairs": 90, "identities": 5, "images": 15}


def test_a_metric_the_task_does_not_have_stops_config_validation():
    def with_recipe(config, early_stopping):
        config["recipes"]["toy-fr"]["early_stopping"] = early_stopping
        return config

    config = with_recipe(copy.deepcopy(default_config()), {"metric": "loss", "max_steps": 50})
    with pytest.raises(UserError) as info:
        check_config(config, SCHEMA)
    message = str(info.value)
    assert "recipes.toy-fr.early_stopping.metric" in message and "eer, auc" in message and "\n" not in message
    config = with_recipe(copy.deepcopy(default_config()), {"metric": "accuracy", "max_steps": 50})
    with pytest.raises(UserError, match="early_stopping.metric"):
        check_config(config, SCHEMA)
    check_config(with_recipe(copy.deepcopy(default_config()), {"metric": "eer", "max_steps": 50}), SCHEMA)


def _scripted(values):
    """A stand-in for `_validate` returning `values` in order (the steps they land on are checked)."""
    it = iter(values)
    return lambda *args, **kwargs: next(it)


def test_finetune_keeps_the_best_steps_weights_and_records_the_curve(world, tmp_path, monkeypatch):
    early = {"metric": "eer", "max_steps": 40, "every": 2, "patience": 2, "fraction": 0.2}
    monkeypatch.setattr(finetune_module, "_validate", _scripted([0.5, 0.2, 0.3, 0.4, 0.1]))
    card = finetune(FinetuneConfig.from_dict(dict(MAD_RECIPE, early_stopping=early)), world["base"], world["csv"],
                    tmp_path / "a.safetensors", tmp_path / "a.csv", progress=False)
    record = card["training"]["early_stopping"]
    assert [p["step"] for p in record["curve"]] == [2, 4, 6, 8]  # stopped after 2 scores without improvement
    assert record["best_step"] == 4 and record["best_value"] == 0.2 and record["stopped_early"]
    assert card["training"]["steps"] == 8 and card["training"]["stopped_by"] == "early_stopping"
    assert record["validation"]["counts"] == {"attack": 10, "bonafide": 10}
    assert record["validation"]["training_samples"] == 80 and card["training"]["data"]["num_samples"] == 100

    # the same run stopped by its budget at step 4 has exactly the weights the first one kept
    monkeypatch.setattr(finetune_module, "_validate", _scripted([0.5, 0.2]))
    finetune(FinetuneConfig.from_dict(dict(MAD_RECIPE, early_stopping=dict(early, max_steps=4))), world["base"],
             world["csv"], tmp_path / "b.safetensors", tmp_path / "b.csv", progress=False)
    kept, at_four = load_model(tmp_path / "a.safetensors"), load_model(tmp_path / "b.safetensors")
    for key, tensor in at_four.model.state_dict().items():
        assert torch.equal(kept.model.state_dict()[key], tensor), key
    assert all(torch.equal(kept.head[k], at_four.head[k]) for k in at_four.head)


def test_real_validation_scores_mad_and_fr_runs(world, tmp_path):
    early = {"metric": "auc", "max_steps": 6, "every": 3, "patience": 5}
    card = finetune(FinetuneConfig.from_dict(dict(MAD_RECIPE, early_stopping=early)), world["base"], world["csv"],
                    tmp_path / "mad.safetensors", tmp_path / "mad.csv", progress=False)
    record = card["training"]["early_stopping"]
    values = [p["value"] for p in record["curve"]]
    assert [p["step"] for p in record["curve"]] == [3, 6] and all(0.0 <= v <= 1.0 for v in values)
    assert record["best_value"] == max(values)
    fr = {"task": "fr", "lora": {"r": 2, "alpha": 4}, "head": {"type": "cosface", "s": 16, "m": 0.2}, "batch_size": 8,
          "epochs": None, "lr_encoder": 1e-3, "lr_head": 1e-2, "schedule": {"kind": "constant"},
          "early_stopping": {"metric": "eer", "max_steps": 4, "every": 2, "fraction": 0.25}}
    card = finetune(FinetuneConfig.from_dict(fr), world["base"], world["ids"], tmp_path / "fr.safetensors",
                    tmp_path / "fr.csv", progress=False)
    record = card["training"]["early_stopping"]
    assert record["validation"]["grouped_by"] == "identity" and record["validation"]["counts"]["identities"] == 2
    assert len(record["curve"]) == 2 and record["best_value"] == min(p["value"] for p in record["curve"])


def test_a_split_too_small_stops_the_fine_tune_naming_the_recipe(world, tmp_path):
    recipe = dict(MAD_RECIPE, early_stopping={"metric": "eer", "max_steps": 4})
    with pytest.raises(UserError, match=r"recipes\.toy-mad-s\.early_stopping: the validation split has 2 attack"):
        finetune(FinetuneConfig.from_dict(recipe), world["base"], world["small_csv"], tmp_path / "m.safetensors",
                 tmp_path / "log.csv", progress=False, where="recipes.toy-mad-s")
    assert not (tmp_path / "m.safetensors").exists()
