"""CLIP_benchmark WebDataset shards (tar files) read with tarfile, without the webdataset package."""

import io
import tarfile

import numpy as np
import pytest

from _general_fixtures import decode_pattern, write_wds
from overspec.data.registry import get_dataset, open_dataset_split
from overspec.data.wds import split_key
from overspec.errors import UserError

CIFAR10 = get_dataset("cifar10")


def _write(tmp_path, **kwargs):
    labels = {"train": [i % 10 for i in range(60)], "test": [3, 1, 4, 1, 5]}
    return write_wds(tmp_path / "wds_cifar10", list(CIFAR10.classes), labels, **kwargs)


def test_split_key_follows_webdataset():
    assert split_key("s0000001.webp") == ("s0000001", "webp")
    assert split_key("dir/a.b.cls") == ("dir/a", "b.cls")
    assert split_key("X.JPG") == ("X", "jpg")


def test_wds_ids_labels_images_across_shards(tmp_path):
    _write(tmp_path)
    test = open_dataset_split(CIFAR10, tmp_path, "test", reader="wds")
    assert test.ids() == [f"test/s{i:07d}" for i in range(5)] and test.labels() == [3, 1, 4, 1, 5]
    assert [decode_pattern(test.load(i)) for i in range(5)] == [(3, 0), (1, 1), (4, 2), (1, 3), (5, 4)]  # shard 2: 4
    assert test.load(4).mode == "RGB"


def test_wds_val_is_carved_from_train_deterministically(tmp_path):
    _write(tmp_path)
    train, val = (open_dataset_split(CIFAR10, tmp_path, s, reader="wds") for s in ("train", "val"))
    assert len(train) == 60 - 10 and np.bincount(val.labels()).tolist() == [1] * 10  # 6 per class: round(0.6) = 1
    assert set(train.ids()).isdisjoint(val.ids())
    assert all(decode_pattern(val.load(i))[0] == label for i, label in enumerate(val.labels()))
    again = open_dataset_split(CIFAR10, tmp_path, "val", reader="wds")
    assert again.ids() == val.ids() and again.listing_digest() == val.listing_digest()


def test_wds_png_and_missing_nshards(tmp_path):
    root = _write(tmp_path, image_format="png")
    (root / "test" / "nshards.txt").unlink()  # then every *.tar is read, in numeric order
    assert open_dataset_split(CIFAR10, tmp_path, "test", reader="wds").labels() == [3, 1, 4, 1, 5]


def test_wds_errors_name_the_problem(tmp_path):
    root = _write(tmp_path)
    (root / "test" / "nshards.txt").write_text("3\n")
    with pytest.raises(UserError, match="announces 3 shards but 2.tar is missing"):
        open_dataset_split(CIFAR10, tmp_path, "test", reader="wds")
    (root / "classnames.txt").write_text("a\nb\n")
    with pytest.raises(UserError, match="lists 2 classes but the registry's dataset has 10"):
        open_dataset_split(CIFAR10, tmp_path, "train", reader="wds")
    with pytest.raises(UserError, match=r"wds_food101 does not exist.*<data_root>/wds_food101/<split>/"):
        open_dataset_split(get_dataset("food101"), tmp_path, "test", reader="wds")


def test_wds_image_without_label_is_refused(tmp_path):
    root = _write(tmp_path)
    with tarfile.open(root / "test" / "0.tar", "a") as tar:
        info = tarfile.TarInfo("extra.png")
        data = io.BytesIO()
        from PIL import Image
        Image.new("RGB", (4, 4)).save(data, "PNG")
        info.size = len(data.getvalue())
        tar.addfile(info, io.BytesIO(data.getvalue()))
    with pytest.raises(UserError, match="'extra' .* has an image but no .cls label"):
        open_dataset_split(CIFAR10, tmp_path, "test", reader="wds")
