"""The toy biometric world: deterministic files in the real formats, read back and evaluated end to end."""

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from overspec.data.biometric.attack_lists import check_same_bona_fide, read_mad_list, read_pad_list
from overspec.data.biometric.identity_folders import read_identity_folders
from overspec.data.biometric.ijb import read_ijb_meta
from overspec.data.biometric.pair_bin import read_pair_set
from overspec.data.toy import faces
from overspec.data.toy.biometric_world import ToyBiometricSizes, write_biometric_world
from overspec.evaluate.attack_detection import evaluate_mad, evaluate_pad, probe_score_lists
from overspec.evaluate.biometric_io import write_biometric_result
from overspec.evaluate.face_verification import evaluate_pair_set
from overspec.evaluate.ijb import evaluate_ijb

SMALL = ToyBiometricSizes(
    fr_identities=6, fr_images_per_identity=3, pairs_per_fold=6, identities_per_fold=3, ijb_identities=6,
    ijb_impostor_pairs=30, mad_train_pairs=10, mad_test_pairs=6, pad_train_videos=6, pad_dev_videos=4,
    pad_test_videos=4, pad_frames=2,
)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # On a shared 2-core machine a multi-threaded BLAS matmul of this size can be 100x slower.
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bio") / "world"
    return root, write_biometric_world(root, seed=3, sizes=SMALL)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(world, tmp_path):
    root, _ = world
    again = tmp_path / "again"
    write_biometric_world(again, seed=3, sizes=SMALL)
    first, second = _files(root), _files(again)
    assert first.keys() == second.keys() and all(first[k] == second[k] for k in first)
    write_biometric_world(again, seed=4, sizes=SMALL)  # rewriting replaces the old tree
    third = _files(again)
    assert "fr_train/0000000/000.png" in third and third["pairs/toy_pairs.bin"] != first["pairs/toy_pairs.bin"]
    assert not list(tmp_path.glob(".again.tmp-*"))


def test_every_part_reads_back_with_the_real_readers(world):
    root, summary = world
    assert json.loads((root / "world.json").read_text()) == summary
    fr = read_identity_folders(root / summary["fr_train"]["path"])
    assert len(fr.identities) == 6 and len(fr.paths) == 18 and fr.paths[0] == "0000000/000.png"

    pairs = read_pair_set(root / summary["pair_set"]["path"])
    assert pairs.name == "toy_pairs" and pairs.n_pairs == 60 and pairs.image(0).shape == (32, 32, 3)
    # 10 contiguous folds of 6 pairs: 3 genuine then 3 impostor (the LFW order)
    assert pairs.issame.tolist() == ([True] * 3 + [False] * 3) * 10

    ijb = read_ijb_meta(root / summary["ijb"]["path"])
    assert ijb.name == "toyijb" and ijb.image_names.size == summary["ijb"]["images"]
    assert int(ijb.pair_labels.sum()) == summary["ijb"]["genuine"] and ijb.pair_labels.size == summary["ijb"]["pairs"]
    assert np.unique(ijb.templates).size == summary["ijb"]["templates"]
    # landmarks sit on the rendered faces: the eye landmarks lie inside the loose crop, left eye first
    assert (ijb.landmarks[:, :2, 0] > 0).all() and (ijb.landmarks[:, 0, 0] < ijb.landmarks[:, 1, 0]).all()

    mad = root / summary["mad"]["path"]
    train = read_mad_list(mad / summary["mad"]["train"])
    assert train["label"].sum() == 10 and set(train.loc[train["label"] == 0, "method"]) == {"landmark"}
    tests = {m: read_mad_list(mad / f) for m, f in summary["mad"]["test"].items()}
    assert sorted(tests) == sorted(faces.MORPH_METHODS) and len(check_same_bona_fide(tests)) == 6

    pad = root / summary["pad"]["path"]
    for split in ("train", "dev", "test"):
        frame = read_pad_list(pad / summary["pad"][split]["list"])
        assert frame["video_id"].nunique() == summary["pad"][split]["videos"]
        assert (frame.groupby("video_id").size() == 2).all()
        assert set(frame.loc[frame["label"] == 0, "attack_type"]) <= set(faces.ATTACK_KINDS)


def _random_embedding(size=32, dim=48, seed=0):
    """A fixed random projection of centred pixels: a deterministic stand-in for a model."""
    weights = np.random.default_rng(seed).standard_normal((size * size * 3, dim)).astype(np.float32)

    def embed(batch):
        x = batch.reshape(len(batch), -1).astype(np.float32) / 255.0
        return (x - x.mean(axis=1, keepdims=True)) @ weights

    return embed


def test_round_trip_through_every_evaluation(world, tmp_path):
    root, summary = world
    embed = _random_embedding()
    outputs = {}
    result, scores = evaluate_pair_set(read_pair_set(root / summary["pair_set"]["path"]), embed, batch_size=32)
    outputs["pairs"] = (result, scores)
    assert 0.0 <= result["accuracy"] <= 1.0 and len(result["fold_accuracies"]) == 10 and len(scores) == 60

    ijb = read_ijb_meta(root / summary["ijb"]["path"])
    template = np.array(summary["ijb"]["template"])
    result, scores = evaluate_ijb(ijb, embed, batch_size=16, output_size=32, template=template)
    outputs["ijb"] = (result, scores)
    assert [p["far"] for p in result["tar_at_far"]] == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert all(p["achieved_far"] <= p["far"] for p in result["tar_at_far"]) and len(scores) == ijb.pair_labels.size

    mad = root / summary["mad"]["path"]
    tests = {m: read_mad_list(mad / f) for m, f in summary["mad"]["test"].items()}
    scored = probe_score_lists(read_mad_list(mad / "train.csv"), tests, embed, batch_size=16)
    result, scores = evaluate_mad(scored, "toy_mad")
    outputs["mad"] = (result, scores)
    assert sorted(result["subsets"]) == sorted(faces.MORPH_METHODS)
    assert all(s["n_bona_fide"] == 6 and s["n_attack"] == 6 for s in result["subsets"].values())

    pad = root / summary["pad"]["path"]
    lists = {split: read_pad_list(pad / f"{split}.csv") for split in ("train", "dev", "test")}
    scored = probe_score_lists(lists["train"], {"dev": lists["dev"], "test": lists["test"]}, embed, batch_size=16)
    result, scores = evaluate_pad(scored["test"], scored["dev"], "toy_pad")
    outputs["pad"] = (result, scores)
    assert result["n_videos"] == 8 and 0.0 <= result["hter"] <= 1.0 and len(scores) == 16

    for name, (result, scores) in outputs.items():
        record = write_biometric_result(tmp_path / f"{name}.json", result, scores)
        assert (tmp_path / f"{name}.scores.csv").is_file() and record["scores_file"]["rows"] == len(scores)
