"""The fine-tuning loop: schedule, determinism, outputs, divergence, DDP equivalence, CLI."""

import csv
import json
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from _finetune_fixtures import (_one_torch_thread, ddp_worker, register_tiny_arch,  # noqa: F401
                                world)
from overspec.errors import UserError
from overspec.models.checkpoint import load_model
from overspec.models.heads import HeadConfig, attack_scores, head_from_card
from overspec.train import finetune as finetune_module
from overspec.train.finetune import finetune, main
from overspec.train.recipe import FinetuneConfig
from overspec.train.schedule import ScheduleConfig, lr_at

FR_RECIPE = {
    "task": "fr", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "head": {"type": "cosface", "s": 16, "m": 0.2},
    "batch_size": 8, "epochs": None, "max_steps": 4, "lr_encoder": 1e-3, "lr_head": 1e-2,
    "schedule": {"unit": "step", "warmup": 1, "T_0": 2, "T_mult": 2}, "augment": {"hflip": True}, "seed": 5,
}


def _read_log(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("factor", [1.0, 0.5])
def test_schedule_matches_the_published_torch_schedulers(factor):
    """Published: ConstantLR warm-up for 5 epochs, then CosineAnnealingWarmRestarts(5, 2, 1e-6), per epoch."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.ConstantLR(opt, factor=factor, total_iters=5),
        torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=5, T_mult=2, eta_min=1e-6)], milestones=[5])
    cfg = ScheduleConfig(warmup=5, warmup_factor=factor, T_0=5, T_mult=2, eta_min=1e-6)
    for epoch in range(40):
        assert lr_at(epoch, 1e-4, cfg) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15), epoch
        opt.step()
        sched.step()


def test_schedule_t_mult_one_and_constant():
    cfg = ScheduleConfig(warmup=0, T_0=4, T_mult=1, eta_min=0.0)
    assert [lr_at(t, 1.0, cfg) for t in range(5)] == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466, 1.0])
    assert lr_at(17, 3e-5, ScheduleConfig(kind="constant")) == 3e-5


def test_fr_run_outputs_are_complete_and_byte_identical_on_rerun(world, tmp_path):
    config = FinetuneConfig.from_dict(FR_RECIPE)
    runs = []
    for name in ("a", "b"):
        card = finetune(config, world["base"], world["ids"], tmp_path / name / "model.safetensors",
                        tmp_path / name / "log.csv", progress=False)
        runs.append(card)
    for file in ("model.safetensors", "log.csv"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file

    base = load_model(world["base"])
    tuned = load_model(tmp_path / "a" / "model.safetensors")  # strict load: keys are the base model's
    base_sd, tuned_sd = base.model.state_dict(), tuned.model.state_dict()
    assert base_sd.keys() == tuned_sd.keys()
    for key in base_sd:
        if key.startswith("visual."):
            continue
        assert torch.equal(base_sd[key], tuned_sd[key]), f"text tower changed: {key}"
    in_proj = "visual.transformer.resblocks.0.attn.in_proj_weight"
    assert not torch.equal(base_sd[in_proj], tuned_sd[in_proj])  # LoRA was merged
    e = base_sd[in_proj].shape[1]
    assert torch.equal(base_sd[in_proj][e:2 * e], tuned_sd[in_proj][e:2 * e])  # k untouched
    assert torch.equal(base_sd["visual.conv1.weight"], tuned_sd["visual.conv1.weight"])

    card = tuned.card
    assert card["architecture"] == {"open_clip_model": register_tiny_arch()}
    assert card["preprocessing"] == base.card["preprocessing"]
    assert card["lora"]["scaling"] == pytest.approx(8 / 2) and card["lora_merged"]
    assert card["head"]["type"] == "cosface" and card["head"]["num_classes"] == 4
    training = card["training"]
    assert training["data"]["num_samples"] == 24 and training["steps"] == 4 and training["seed"] == 5
    assert FinetuneConfig.from_dict(training["recipe"]) == config
    assert tuned.head["weight"].shape == (4, 24)

    rows = _read_log(tmp_path / "a" / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [int(r["epoch"]) for r in rows] == [0, 0, 0, 1]  # 24 samples / batch 8 = 3 steps per epoch
    assert [float(r["lr_encoder"]) for r in rows] == pytest.approx([lr_at(t, 1e-3, config.schedule) for t in range(4)])
    assert training["final_metrics"]["loss"] == pytest.approx(sum(float(r["loss"]) for r in rows[1:]) / 3)


def test_training_lowers_the_loss(world, tmp_path):
    recipe = dict(FR_RECIPE, max_steps=18, lr_encoder=3e-3, lr_head=5e-2,
                  schedule={"kind": "constant"}, augment={"hflip": False})
    finetune(FinetuneConfig.from_dict(recipe), world["base"], world["ids"], tmp_path / "m.safetensors",
             tmp_path / "log.csv", progress=False)
    losses = [float(r["loss"]) for r in _read_log(tmp_path / "log.csv")]
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3


def test_mad_binary_run_with_full_finetuning(world, tmp_path):
    recipe = {"task": "mad", "method": "full", "head": {"type": "binary"}, "batch_size": 4, "epochs": 1,
              "lr_encoder": 1e-4, "lr_head": 1e-2, "balanced_sampling": True, "schedule": {"kind": "constant"}}
    card = finetune(FinetuneConfig.from_dict(recipe), world["base"], world["csv"], tmp_path / "m.safetensors",
                    tmp_path / "log.csv", progress=False, card_extra={"name": "toy-mad"})
    assert card["lora"] is None and card["method"] == "full" and card["name"] == "toy-mad"
    assert card["training"]["steps"] == 4 and card["head"]["labels"] == {"0": "attack", "1": "bonafide"}
    loaded = load_model(tmp_path / "m.safetensors")
    head = head_from_card(loaded.card["head"], loaded.head)
    scores = attack_scores(head, loaded.model.encode_image(torch.randn(3, 3, 16, 16)))
    assert scores.shape == (3,) and ((scores > 0) & (scores < 1)).all()
    base = load_model(world["base"]).model.state_dict()
    assert not torch.equal(base["visual.conv1.weight"], loaded.model.state_dict()["visual.conv1.weight"])
    assert torch.equal(base["token_embedding.weight"], loaded.model.state_dict()["token_embedding.weight"])


def test_nan_loss_stops_and_saves_no_model(world, tmp_path, monkeypatch):
    real_build = finetune_module.build_head

    def exploding_head(*args, **kwargs):
        head = real_build(*args, **kwargs)
        original, calls = head.loss, []

        def loss(logits, labels):
            calls.append(1)
            value = original(logits, labels)
            return value * float("nan") if len(calls) == 2 else value
        head.loss = loss
        return head

    monkeypatch.setattr(finetune_module, "build_head", exploding_head)
    out = tmp_path / "model.safetensors"
    with pytest.raises(UserError, match="diverged at step 2"):
        finetune(FinetuneConfig.from_dict(FR_RECIPE), world["base"], world["ids"], out, tmp_path / "log.csv",
                 progress=False)
    assert not out.exists() and not list(tmp_path.glob(".model.safetensors*"))
    assert len(_read_log(tmp_path / "log.csv")) == 1  # the steps before the divergence, for diagnosis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_ddp_equals_single_process(world, tmp_path):
    recipe = dict(FR_RECIPE, max_steps=3)  # dropout 0: LoRA dropout masks would differ per rank
    single = tmp_path / "single.safetensors"
    finetune(FinetuneConfig.from_dict(recipe), world["base"], world["ids"], single, tmp_path / "single.csv",
             progress=False)
    kwargs = {"recipe": recipe, "base_model_path": str(world["base"]), "train_data": str(world["ids"]),
              "out_path": str(tmp_path / "ddp.safetensors"), "log_csv": str(tmp_path / "ddp.csv")}
    mp.spawn(ddp_worker, args=(2, _free_port(), kwargs), nprocs=2, join=True)
    a, b = load_file(str(single)), load_file(str(tmp_path / "ddp.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=2e-6, rtol=0), key
    changed = "visual.transformer.resblocks.1.attn.in_proj_weight"
    assert not torch.equal(a[changed], load_file(str(world["base"]))[changed])
    single_rows, ddp_rows = _read_log(tmp_path / "single.csv"), _read_log(tmp_path / "ddp.csv")
    assert [float(r["loss"]) for r in ddp_rows] == pytest.approx([float(r["loss"]) for r in single_rows], rel=1e-5)
    assert json.loads(json.dumps(load_model(tmp_path / "ddp.safetensors").card["training"]["world_size"])) == 2


def test_cli_runs_and_reports_user_errors(world, tmp_path, capsys):
    recipe = json.dumps(dict(FR_RECIPE, max_steps=1))
    args = ["--recipe", recipe, "--base", str(world["base"]), "--data", str(world["ids"]),
            "--out", str(tmp_path / "m.safetensors"), "--log", str(tmp_path / "log.csv"), "--no-progress"]
    assert main(args) == 0 and (tmp_path / "m.safetensors").exists()
    assert main(["--recipe", json.dumps({"lr": 1}), *args[2:]]) == 1
    assert "unknown setting(s) ['lr']" in capsys.readouterr().err


def test_recipe_validation():
    with pytest.raises(UserError, match=r"recipe.lora: unknown setting\(s\) \['rank'\]"):
        FinetuneConfig.from_dict({"lora": {"rank": 4}})
    with pytest.raises(UserError, match="epochs or max_steps"):
        FinetuneConfig(epochs=None, max_steps=None)
    assert FinetuneConfig.from_dict({"head": {"type": "arcface", "m": 0.5}}).head == HeadConfig("arcface", m=0.5)
