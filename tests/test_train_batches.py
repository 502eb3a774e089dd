"""The fine-tuning loop's batch sources: the real data path (workers, pinning) and on-device batches."""

import csv

import open_clip
import torch
from torchvision import transforms

from _finetune_fixtures import _one_torch_thread, make_base_model, make_identity_folders  # noqa: F401
from overspec.data.train_sets import open_train_set
from overspec.models.factory import preprocessing_of
from overspec.models.checkpoint import load_model
from overspec.train.batches import (BatchPlan, DeviceBatches, LoaderBatches, SeededView, build_transform, hash_seed,
                                    to_model_input)
from overspec.train.ddp import DistContext
from overspec.train.finetune import finetune
from overspec.train.launch import workers_per_process
from overspec.train.recipe import FinetuneConfig

RECIPE = {"task": "fr", "lora": {"r": 2, "alpha": 4, "dropout": 0.0}, "head": {"type": "cosface", "s": 16, "m": 0.2},
          "batch_size": 4, "epochs": None, "max_steps": 3, "augment": {"hflip": True, "rand_augment": True,
                                                                      "rand_augment_ops": 2, "rand_augment_magnitude": 9}}
CPU = DistContext(0, 1, 0, torch.device("cpu"), owns_group=False)


def _plan(tmp_path, steps=3):
    config = FinetuneConfig.from_dict(dict(RECIPE, max_steps=steps))
    base = make_base_model(tmp_path / "base.safetensors")
    train_set = open_train_set(make_identity_folders(tmp_path / "ids", identities=3, per_identity=4))
    transform = build_transform(preprocessing_of(load_model(base).model), config)
    return BatchPlan(train_set, transform, config, steps, len(train_set) // config.batch_size, CPU), base


def test_loader_batches_are_the_same_with_workers_and_device_batches_repeat_the_first(tmp_path):
    plan, _ = _plan(tmp_path)
    in_process = list(LoaderBatches(0)(plan))
    in_workers = list(LoaderBatches(2, prefetch_factor=1)(plan))
    assert len(in_process) == len(in_workers) == 3
    for (a, la), (b, lb) in zip(in_process, in_workers):
        assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(in_process[0][0], in_process[1][0])  # each step draws its own batch
    kept = list(DeviceBatches()(plan))
    assert len(kept) == 3 and all(images is kept[0][0] for images, _ in kept)
    assert torch.equal(kept[0][0], in_process[0][0]) and torch.equal(kept[0][1], in_process[0][1])


def test_finetune_takes_its_batches_from_the_given_source(tmp_path):
    plan, base = _plan(tmp_path)
    seen = []

    def recording(plan):
        seen.append(plan)
        return DeviceBatches()(plan)

    config = plan.config
    card = finetune(config, base, plan.train_set, tmp_path / "m.safetensors", tmp_path / "log.csv",
                    progress=False, batches=recording)
    assert len(seen) == 1 and seen[0].steps == 3 and seen[0].config == config and seen[0].ctx.rank == 0
    with open(tmp_path / "log.csv") as handle:
        assert len(list(csv.DictReader(handle))) == card["training"]["steps"] == 3
    # the default source is the real data path with the given worker count: the same model as asking for it
    finetune(config, base, plan.train_set, tmp_path / "a.safetensors", tmp_path / "a.csv", progress=False, num_workers=0)
    finetune(config, base, plan.train_set, tmp_path / "b.safetensors", tmp_path / "b.csv", progress=False,
             batches=LoaderBatches(0))
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    assert (tmp_path / "a.safetensors").read_bytes() != (tmp_path / "m.safetensors").read_bytes()


def test_workers_per_process_share_the_jobs_threads():
    assert workers_per_process(16, 4) == 3  # the paper recipes: 16 threads for 4 GPUs
    assert workers_per_process(16, 1) == 15
    assert workers_per_process(1, 1) == 0 and workers_per_process(2, 4) == 0


def test_uint8_batches_become_exactly_what_torchvision_feeds_the_model(tmp_path):
    """Workers stop at uint8 pixels; on the device they become bit for bit open_clip's ToTensor and
    Normalize output of the same augmented image (same seed per sample)."""
    plan, _ = _plan(tmp_path)
    preprocessing = {"size": [16, 16], "mean": [0.48, 0.46, 0.41], "std": [0.27, 0.26, 0.28],
                     "interpolation": "bicubic", "resize_mode": "shortest"}
    ours = SeededView(plan.train_set, build_transform(preprocessing, plan.config), seed=3)
    steps = open_clip.image_transform((16, 16), is_train=False, mean=tuple(preprocessing["mean"]),
                                      std=tuple(preprocessing["std"])).transforms
    augment = [transforms.RandAugment(2, 9), transforms.RandomHorizontalFlip(0.5)]  # RECIPE's augmentation
    reference = transforms.Compose(steps[:-2] + augment + steps[-2:])
    keys = [(0, i) for i in range(len(plan.train_set))] + [(1, 0), (1, 5)]
    pixels = torch.stack([ours[key][0] for key in keys])
    assert pixels.dtype == torch.uint8 and pixels.shape == (len(keys), 16, 16, 3)
    expected = []
    for epoch, index in keys:
        torch.manual_seed(hash_seed(3, epoch, index))
        expected.append(reference(plan.train_set[index][0]))
    assert torch.equal(to_model_input(pixels, preprocessing), torch.stack(expected))
