"""How much work each planned job does, in images through the model (None: a job whose time does not
grow with a size the config fixes; its rate is seconds per job). Toy sizes come from the config and the
registry's toy datasets; real ones from `overspec/data/rates/sizes.csv` (published split sizes)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from overspec.errors import UserError

SIZES_CSV = "data/rates/sizes.csv"


@dataclass(frozen=True)
class Work:
    images: int | None
    note: str  # where the size comes from


@lru_cache(maxsize=1)
def real_sizes() -> dict[tuple[str, str], tuple[int, str]]:
    with (resources.files("overspec") / SIZES_CSV).open() as handle:
        return {(row["kind"], row["name"]): (int(row["images"]), row["source"]) for row in csv.DictReader(handle)}


def _real(kind: str, name: str) -> Work:
    try:
        images, source = real_sizes()[(kind, name)]
    except KeyError:
        raise UserError(f"overspec/{SIZES_CSV} has no size for {kind} '{name}': add a row (kind,name,images,source) "
                        "so the estimate can size its jobs.") from None
    return Work(images, source)


def dataset_images(name: str) -> Work:
    """Images of every split of a general dataset (embed_images embeds them all)."""
    from overspec.data.toy.general import TOY_DATASETS

    if name in TOY_DATASETS:
        sizes = TOY_DATASETS[name].split_sizes()
        return Work(sum(sizes.values()), f"toy {name}: " + ", ".join(f"{s} {n}" for s, n in sizes.items()))
    return _real("dataset", name)


def probe_images(name: str) -> Work:
    """Images the linear probe fits on: train + val of a toy dataset; all images of a real one (an
    upper bound: sizes.csv holds totals)."""
    from overspec.data.toy.general import TOY_DATASETS

    if name in TOY_DATASETS:
        sizes = TOY_DATASETS[name].split_sizes()
        return Work(sizes["train"] + sizes["val"], f"toy {name}: train {sizes['train']} + val {sizes['val']}")
    work = _real("dataset", name)
    return Work(work.images, f"upper bound, all splits: {work.note}")


def training_images(config: dict[str, Any], model: str) -> Work:
    """Images a fine-tune passes through the model: steps x global batch, as the training loop plans them."""
    from overspec.config import finetune_recipe
    from overspec.train.recipe import FinetuneConfig, plan_steps

    recipe = FinetuneConfig.from_dict(finetune_recipe(config, model), where=f"model {model}'s recipe")
    task = recipe.task
    if config["biometrics"]["source"] == "toy":
        z = config["biometrics"]["toy_sizes"]
        samples = {"fr": z["fr_identities"] * z["fr_images_per_identity"], "mad": 2 * z["mad_train_pairs"],
                   "pad": 2 * z["pad_train_videos"] * z["pad_frames"]}[task]
        where = f"toy {task} training set, {samples} images"
    else:
        work = _real("train", task)
        samples, where = work.images, work.note
    steps, _ = plan_steps(samples, recipe)
    if recipe.lp_ft is not None:  # LP-FT's head-only steps still pass every image through the encoder
        probe = recipe.lp_ft.probe_steps
        return Work((steps + probe) * recipe.batch_size,
                    f"{steps:,} steps + {probe:,} LP-FT probe steps x batch {recipe.batch_size} over {where}")
    return Work(steps * recipe.batch_size, f"{steps:,} steps x batch {recipe.batch_size} over {where}")


def pretrain_images(config: dict[str, Any], model: str) -> Work:
    pretrain = config["backbones"][config["models"][model]["backbone"]]["pretrain"]
    return Work(pretrain["steps"] * pretrain["batch_size"], f"{pretrain['steps']} steps x batch {pretrain['batch_size']}")


def benchmark_images(config: dict[str, Any], rule: str, wildcards: dict[str, str]) -> Work:
    """A biometric evaluation's forward passes on real data; None for the toy world (seconds per job)."""
    if config["biometrics"]["source"] == "toy":
        return Work(None, "toy world: seconds per job")
    if rule == "eval_face_verification":
        sets = config["biometrics"]["fr"]["pairs"]
        works = [_real("pairs", name) for name in sorted(sets)]
        return Work(sum(w.images for w in works), "; ".join(w.note for w in works))
    kind = "ijb" if rule == "eval_ijb" else wildcards["task"]
    return _real(kind, wildcards["benchmark"])


def job_work(config: dict[str, Any], rule: str, wildcards: dict[str, str]) -> Work:
    """The work of one job of `rule` with these wildcards."""
    if rule == "embed_images":
        return dataset_images(wildcards["dataset"])
    if rule == "fit_linear_probe":
        return probe_images(wildcards["dataset"])
    if rule == "prepare_dataset":
        return dataset_images(wildcards["dataset"]) if wildcards["dataset"] != "toy_corpus" else Work(
            config["toy"]["corpus_size"], "toy corpus")
    if rule == "finetune_model":
        return training_images(config, wildcards["model"])
    if rule == "pretrain_toy_clip":
        return pretrain_images(config, wildcards["model"])
    if rule in ("eval_face_verification", "eval_ijb", "eval_attack_detection"):
        return benchmark_images(config, rule, wildcards)
    return Work(None, "seconds per job")
