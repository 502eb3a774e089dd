"""Each reader's real on-disk layout, made small by the test, through the library path the workflow
runs: prepare_dataset (manifest) -> embed_dataset + embed_classnames -> zero-shot and linear probe.

Registry entries are used as they are, with data_root in tmp_path: CIFAR-10's python pickles
(torchvision), RESISC45's class folders (an image folder) and CIFAR-10's CLIP_benchmark WebDataset
shards. Every class is one flat colour, so even an untrained toy CLIP separates the classes: the
probe must be near perfect, which fails if images and labels part ways anywhere on the path.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from _finetune_fixtures import _one_torch_thread, make_base_model  # noqa: F401
from _general_fixtures import accept_torchvision_checksums, class_colour, write_cifar, write_class_tree, write_wds
from overspec.data.prepare import prepare_dataset
from overspec.data.registry import get_dataset, open_dataset_split
from overspec.embed.images import embed_dataset
from overspec.embed.store import read_embeddings
from overspec.embed.text import embed_classnames
from overspec.errors import UserError
from overspec.evaluate.general import run_linear_probe, run_zeroshot


def _cifar_pickles(data_root):
    # 6 batches of 20 (labels (b + i) % 10): train 100 = 10 per class -> val 1 per class; test 20
    write_cifar(data_root, list(get_dataset("cifar10").options["reader_classes"]), per_batch=20, draw=class_colour)
    return {"train": 90, "val": 10, "test": 20}


def _resisc_folders(data_root):
    # 5 jpgs per class, split 60/20/20 per class -> 3 / 1 / 1
    folders = list(get_dataset("resisc45").options["reader_classes"])
    write_class_tree(data_root / "resisc45" / "NWPU-RESISC45", {f: 5 for f in folders},
                     {f: i for i, f in enumerate(folders)}, draw=class_colour)
    return {"train": 135, "val": 45, "test": 45}


def _cifar_shards(data_root):
    # train 60 (6 per class) -> val 1 per class; test 20, across shards of 8
    write_wds(data_root / "wds_cifar10", list(get_dataset("cifar10").classes),
              {"train": [i % 10 for i in range(60)], "test": [(3 * i) % 10 for i in range(20)]},
              per_shard=8, draw=class_colour)
    return {"train": 50, "val": 10, "test": 20}


CASES = {  # id: (registry name, reader override, builder returning the expected split sizes)
    "torchvision-cifar10": ("cifar10", None, _cifar_pickles),
    "class-folders-resisc45": ("resisc45", None, _resisc_folders),
    "wds-cifar10": ("cifar10", "wds", _cifar_shards),
}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_base_model(tmp_path_factory.mktemp("model") / "model.safetensors", arch="toy-clip-s")


@pytest.mark.parametrize("case", list(CASES))
def test_reader_layout_round_trips_through_embed_zeroshot_probe(case, model_path, tmp_path, monkeypatch):
    accept_torchvision_checksums(monkeypatch)  # the pickles are fabricated, so not the published md5s
    name, reader, build = CASES[case]
    data_root = tmp_path / "data_root"
    expected = build(data_root)
    spec = get_dataset(name)

    manifest_path = tmp_path / "data" / name / "manifest.json"
    prepare_dataset(name, manifest_path, data_root=data_root, seed=0, image_size=32, reader=reader)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["reader"] == (reader or spec.reader)
    assert {s: v["n"] for s, v in manifest["splits"].items()} == expected

    sizes = embed_dataset(model_path, manifest_path, tmp_path / "emb.h5", batch_size=64)
    assert sizes == expected
    for split in expected:  # the embeddings carry the reader's ids and labels, in its order
        split_reader = open_dataset_split(spec, data_root, split, reader=reader)
        features, labels, ids = read_embeddings(tmp_path / "emb.h5", split)
        assert list(ids) == split_reader.ids() and labels.tolist() == split_reader.labels()
        assert np.bincount(labels, minlength=len(spec.classes)).tolist() == manifest["splits"][split]["class_counts"]
        assert features.shape == (expected[split], 96) and np.isfinite(features).all()
    embed_classnames(model_path, manifest_path, tmp_path / "text.h5")

    zs = run_zeroshot("m", tmp_path / "emb.h5", tmp_path / "text.h5", manifest_path, tmp_path / "zs.json",
                      bootstrap_resamples=20, seed=0, provenance={})
    test_x, test_y, test_ids = read_embeddings(tmp_path / "emb.h5", "test")
    with h5py.File(tmp_path / "text.h5") as f:
        classifier = f["classifier"][...]
    assert classifier.shape == (len(spec.classes), 96)
    by_hand = np.mean(np.argmax(test_x.astype(np.float64) @ classifier.T.astype(np.float64), axis=1) == test_y)
    assert zs["n"] == expected["test"] and zs["top1"] == pytest.approx(by_hand)
    assert zs["top1"] <= zs["top5"] <= 1 and zs["primary_metric"] == spec.primary_metric

    lp = run_linear_probe("m", tmp_path / "emb.h5", manifest_path, tmp_path / "lp.json", c_grid=[0.01, 1.0, 100.0],
                          bootstrap_resamples=20, seed=0, provenance={})
    assert (lp["n"], lp["n_train"], lp["n_val"], lp["n_test"]) == (expected["test"], expected["train"],
                                                                    expected["val"], expected["test"])
    assert lp["top1"] >= 0.95 and lp["mean_per_class_recall"] >= 0.95  # one colour per class: separable
    assert json.loads((tmp_path / "lp.json").read_text())["top1"] == lp["top1"]
    for result in (zs, lp):  # per-sample predictions name the reader's test ids and labels
        rows = (tmp_path / result["predictions_file"]["path"]).read_text().splitlines()[1:]
        assert [r.split(",")[0] for r in rows] == list(test_ids)
        assert [int(r.split(",")[1]) for r in rows] == test_y.tolist()


def test_missing_shards_name_their_folder_and_layout(tmp_path):
    with pytest.raises(UserError, match=r"cifar10 was not found in .*/wds_cifar10: expected .*nshards.txt"):
        prepare_dataset("cifar10", tmp_path / "m.json", data_root=tmp_path, seed=0, image_size=32, reader="wds")
    with pytest.raises(UserError, match="toy_colours is generated, not read: it has no 'wds' reader"):
        prepare_dataset("toy_colours", tmp_path / "t.json", data_root=tmp_path, seed=0, image_size=32, reader="wds")
