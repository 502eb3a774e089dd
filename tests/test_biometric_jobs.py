"""The biometric evaluation jobs on a small toy world with a tiny model: the embedding function
follows the model card, results name model and benchmark, and MAD/PAD are scored by the model's own
head only when it was adapted for that task (the cross-task probe otherwise)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from threadpoolctl import threadpool_limits

from _finetune_fixtures import _one_torch_thread, make_base_model  # noqa: F401
from overspec.data.biometric.attack_lists import read_mad_list, read_pad_list
from overspec.data.biometric.benchmarks import toy_plan
from overspec.data.biometric.ijb import read_ijb_meta
from overspec.data.biometric.pair_bin import read_pair_set
from overspec.data.toy.biometric_world import ToyBiometricSizes, write_biometric_world
from overspec.embed.images import eval_transform
from overspec.errors import UserError
from overspec.evaluate.attack_detection import evaluate_mad, evaluate_pad, probe_score_lists
from overspec.evaluate.biometric_jobs import (
    eval_attack_detection,
    eval_ijb_set,
    eval_pair_sets,
    image_embedder,
    scoring_method,
)
from overspec.evaluate.face_verification import evaluate_pair_set
from overspec.evaluate.ijb import evaluate_ijb
from overspec.models.checkpoint import load_model, save_model
from overspec.models.heads import BinaryHead, HeadConfig, attack_scores

SMALL = ToyBiometricSizes(
    fr_identities=4, fr_images_per_identity=2, pairs_per_fold=4, identities_per_fold=3, ijb_identities=5,
    ijb_impostor_pairs=20, mad_train_pairs=8, mad_test_pairs=5, pad_train_videos=5, pad_dev_videos=3,
    pad_test_videos=3, pad_frames=2,
)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bio") / "toy_biometrics"
    write_biometric_world(root, seed=5, sizes=SMALL)
    return toy_plan(["fr", "mad", "pad"], root=str(root))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A baseline file, and the same weights with a binary head (as a MAD/PAD fine-tune writes it)."""
    folder = tmp_path_factory.mktemp("models")
    base = make_base_model(folder / "base.safetensors", seed=1)
    loaded = load_model(base)
    torch.manual_seed(0)
    head = BinaryHead(int(loaded.model.visual.output_dim))
    card = dict(loaded.card, head=HeadConfig(type="binary").to_card(head.linear.in_features, 2))
    with_head = folder / "with_head.safetensors"
    save_model(with_head, loaded.model, card, head={"weight": head.linear.weight, "bias": head.linear.bias})
    return {"base": base, "with_head": with_head}


def _reference_embed(path):
    """What image_embedder must compute: the card's transform, then encode_image."""
    loaded = load_model(path)
    transform = eval_transform(loaded.card["preprocessing"])

    def embed(batch):
        with torch.no_grad():
            x = torch.stack([transform(Image.fromarray(img)) for img in batch])
            return loaded.model.encode_image(x).numpy()

    return embed


def test_embedder_follows_the_card_and_swaps_channels_for_bgr_models(models):
    loaded = load_model(models["base"])
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)
    rgb = image_embedder(loaded.model, loaded.card["preprocessing"])(batch)
    np.testing.assert_allclose(rgb, _reference_embed(models["base"])(batch), rtol=1e-5, atol=1e-6)
    bgr = image_embedder(loaded.model, {**loaded.card["preprocessing"], "colour_order": "BGR"})(batch)
    np.testing.assert_allclose(bgr, _reference_embed(models["base"])(batch[..., ::-1].copy()), rtol=1e-5, atol=1e-6)
    assert not np.allclose(rgb, bgr)
    with pytest.raises(UserError, match="preprocessing resizes to"):
        image_embedder(loaded.model, {**loaded.card["preprocessing"], "size": [224, 224]})


def test_pair_sets_give_the_protocols_numbers_and_name_model_and_benchmark(world, models, tmp_path):
    out = {name: tmp_path / f"{name}.json" for name in world["fr"]["pairs"]}
    written = eval_pair_sets("m", models["base"], world["fr"]["pairs"], out, batch_size=16,
                             provenance={"rule": "eval_face_verification"})
    (name, path), = world["fr"]["pairs"].items()
    expected, scores = evaluate_pair_set(read_pair_set(path, name=name), _reference_embed(models["base"]), batch_size=16)
    record = json.loads(out[name].read_text())
    assert record == json.loads(json.dumps(written[name]))
    assert record["model"] == "m" and record["benchmark"] == name and record["task"] == "face_verification"
    assert record["accuracy"] == pytest.approx(expected["accuracy"]) and record["n_pairs"] == SMALL.pair_folds * 4
    assert record["provenance"] == {"rule": "eval_face_verification"}
    table = pd.read_csv(tmp_path / f"{name}.scores.csv")
    np.testing.assert_allclose(table["cosine"], scores["cosine"], rtol=1e-5, atol=1e-6)


def test_ijb_uses_the_worlds_template_and_writes_gzipped_scores(world, models, tmp_path):
    (name, spec), = world["fr"]["ijb"].items()
    record = eval_ijb_set("m", models["base"], name, spec["root"], tmp_path / "ijb.json", template=spec["template"],
                          aligned_size=spec["aligned_size"], world_json=world["world"], batch_size=16)
    summary = json.loads(open(world["world"]).read())["ijb"]
    expected, _ = evaluate_ijb(read_ijb_meta(spec["root"]), _reference_embed(models["base"]), batch_size=16,
                               output_size=summary["template_size"], template=np.array(summary["template"]))
    assert [p["tar"] for p in record["tar_at_far"]] == pytest.approx([p["tar"] for p in expected["tar_at_far"]])
    assert record["benchmark"] == name and record["n_pairs"] == summary["pairs"]
    assert (tmp_path / "ijb.scores.csv.gz").is_file() and record["scores_file"]["path"] == "ijb.scores.csv.gz"


def test_scoring_method_uses_the_head_only_for_the_models_own_task(models):
    with_head, base = load_model(models["with_head"]), load_model(models["base"])
    assert scoring_method(with_head, "mad", "mad")["method"] == "head"
    other = scoring_method(with_head, "pad", "mad")
    assert other["method"] == "probe" and "adapted for mad" in other["reason"]
    missing = scoring_method(base, "mad", "mad")
    assert missing["method"] == "probe" and "no binary head" in missing["reason"]
    assert scoring_method(base, "pad", "none")["reason"].startswith("baseline")


def test_mad_with_the_models_own_head_scores_softmax_bona_fide(world, models, tmp_path):
    mad = world["mad"]
    record = eval_attack_detection("m", models["with_head"], "mad", "mad", mad["benchmark"], mad["train"], mad["tests"],
                                   tmp_path / "mad.json", batch_size=16)
    assert record["scoring"]["method"] == "head" and record["model"] == "m"
    loaded = load_model(models["with_head"])
    head = BinaryHead(loaded.head["weight"].shape[1])
    head.linear.load_state_dict({"weight": loaded.head["weight"], "bias": loaded.head["bias"]})
    embed = _reference_embed(models["with_head"])
    subsets = {}
    for subset, path in mad["tests"].items():
        frame = read_mad_list(path)
        with torch.no_grad():
            subsets[subset] = frame.assign(score=attack_scores(head, torch.from_numpy(embed(np.stack(
                [np.asarray(Image.open(p).convert("RGB")) for p in frame["path"]])))).double().numpy())
    expected, _ = evaluate_mad(subsets, mad["benchmark"])
    assert record["mean_over_subsets"]["d_eer"] == pytest.approx(expected["mean_over_subsets"]["d_eer"])
    assert sorted(record["subsets"]) == sorted(mad["tests"])
    scores = pd.read_csv(tmp_path / "mad.scores.csv")
    assert len(scores) == sum(len(read_mad_list(p)) for p in mad["tests"].values())


def test_pad_of_another_model_is_scored_by_the_probe_with_the_dev_threshold(world, models, tmp_path):
    pad = world["pad"]
    (name, test), = pad["tests"].items()
    record = eval_attack_detection("m", models["with_head"], "pad", "fr", name, pad["train"], pad["tests"],
                                   tmp_path / "pad.json", dev_list=pad["dev"], batch_size=16, probe_c=0.5)
    assert record["scoring"]["method"] == "probe" and record["scoring"]["c"] == 0.5
    assert record["scoring"]["n_train"] == 2 * SMALL.pad_train_videos * SMALL.pad_frames
    lists = {"test": read_pad_list(test), "dev": read_pad_list(pad["dev"])}
    scored = probe_score_lists(read_pad_list(pad["train"]), lists, _reference_embed(models["with_head"]), c=0.5)
    expected, _ = evaluate_pad(scored["test"], scored["dev"], name)
    assert record["hter"] == pytest.approx(expected["hter"]) and record["auc"] == pytest.approx(expected["auc"])
    assert record["n_videos"] == 2 * SMALL.pad_test_videos and record["benchmark"] == name


VARIED_SIZES = [(40, 30), (23, 57), (64, 64), (90, 41), (17, 17)]  # (width, height): several aspect ratios


def _relist(plan: dict, folder, convert) -> dict:
    """The task's lists copied into `folder` (same rows, so the same ids) with each image passed through
    `convert(image, k)` (k counts images) and saved losslessly under the same relative path."""
    import shutil
    from pathlib import Path

    sources = [plan["train"], *plan["tests"].values()] + ([plan["dev"]] if "dev" in plan else [])
    count = 0
    for source in sources:
        source = Path(source)
        target = folder / source.name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        for rel in pd.read_csv(source, dtype=str)["path"]:
            image_target = folder / rel
            if not image_target.exists():
                image_target.parent.mkdir(parents=True, exist_ok=True)
                convert(Image.open(source.parent / rel).convert("RGB"), count).save(image_target)
                count += 1

    def moved(path):
        return str(folder / Path(path).name)

    return {**plan, "train": moved(plan["train"]), "tests": {k: moved(v) for k, v in plan["tests"].items()},
            **({"dev": moved(plan["dev"])} if "dev" in plan else {})}


@pytest.mark.parametrize("task, model", [("mad", "with_head"), ("pad", "base")])
def test_attack_images_of_any_size_score_as_if_pre_resized_by_the_models_preprocessing(world, models, tmp_path,
                                                                                         task, model):
    """MAD (own head) and PAD (probe) lists whose images have several sizes and aspect ratios give the scores
    of the same images resized beforehand by the model card's own preprocessing."""
    from overspec.embed.loader import Preprocess

    fit = Preprocess.from_preprocessing(load_model(models[model]).card["preprocessing"]).geometric
    varied = _relist(world[task], tmp_path / "varied",
                     lambda image, k: image.resize(VARIED_SIZES[k % len(VARIED_SIZES)], Image.BICUBIC))
    fitted = _relist(varied, tmp_path / "fitted", lambda image, k: fit(image))
    sizes = {Image.open(p).size for p in (tmp_path / "varied").rglob("*.png")}
    assert len(sizes) == len(VARIED_SIZES) and {Image.open(p).size for p in (tmp_path / "fitted").rglob("*.png")} \
        == {tuple(load_model(models[model]).card["preprocessing"]["size"])}
    results = {}
    for name, lists in (("varied", varied), ("fitted", fitted)):
        (benchmark, _), = lists["tests"].items() if task == "pad" else ((lists["benchmark"], None),)
        results[name] = eval_attack_detection("m", models[model], task, task, benchmark, lists["train"],
                                              lists["tests"], tmp_path / f"{name}.json", dev_list=lists.get("dev"),
                                              batch_size=3, num_workers=1 if name == "varied" else 0)
        assert results[name]["scoring"]["method"] == ("head" if model == "with_head" else "probe")
    varied_scores, fitted_scores = (pd.read_csv(tmp_path / f"{n}.scores.csv") for n in ("varied", "fitted"))
    pd.testing.assert_frame_equal(varied_scores, fitted_scores, check_exact=True)
    assert varied_scores["score"].nunique() > 1
