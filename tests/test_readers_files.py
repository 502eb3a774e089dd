"""Class-folder, FER2013 csv, PCam HDF5 and plain image-folder datasets in their real layouts."""

import pickle

import numpy as np
import pytest

from _general_fixtures import (decode_pattern, near, save_image, write_class_tree, write_fer2013, write_pcam)
from overspec.data.readers import open_split
from overspec.data.registry import get_dataset, open_dataset_split
from overspec.errors import UserError


def _all_splits(name, data_root):
    spec = get_dataset(name)
    return spec, [open_dataset_split(spec, data_root, s) for s in spec.splits]


def _labels_match_pixels(reader):
    for i, label in enumerate(reader.labels()):
        assert near(decode_pattern(reader.load(i))[0], label), reader.ids()[i]


def test_caltech101_keeps_background_and_carves_30_per_class(tmp_path):
    spec = get_dataset("caltech101")
    folders = list(spec.options["reader_classes"])
    assert folders[0] == "BACKGROUND_Google" and spec.classes[:3] == ("background", "off-center face", "centered face")
    counts = {"BACKGROUND_Google": 40, "Faces_easy": 31, "yin_yang": 5}
    write_class_tree(tmp_path / "caltech101" / "101_ObjectCategories", counts,
                     {f: folders.index(f) for f in counts})
    (tmp_path / "caltech101" / "101_ObjectCategories" / "BACKGROUND_Google" / "tmp").write_text("not an image")
    spec, (train, val, test) = _all_splits("caltech101", tmp_path)
    per = lambda r: np.bincount(r.labels(), minlength=102)[[0, 2, 101]].tolist()
    assert per(train) == [27, 27, 5] and per(val) == [3, 3, 0] and per(test) == [10, 1, 0]
    assert not (set(train.ids()) | set(val.ids())) & set(test.ids())
    assert test.ids()[0].startswith("101_ObjectCategories/BACKGROUND_Google/image_")
    _labels_match_pixels(val)
    again = open_dataset_split(spec, tmp_path, "test")
    assert again.ids() == test.ids() and again.listing_digest() == test.listing_digest()


def test_caltech101_unknown_folder_is_refused(tmp_path):
    write_class_tree(tmp_path / "caltech101" / "101_ObjectCategories", {"Faces_2": 1}, {"Faces_2": 0})
    with pytest.raises(UserError, match="class folders this dataset does not have \\(Faces_2\\).*101_ObjectCategories"):
        open_dataset_split(get_dataset("caltech101"), tmp_path, "train")


def test_resisc45_vtab_60_20_20(tmp_path):
    spec = get_dataset("resisc45")
    folders = list(spec.options["reader_classes"])
    assert "baseball_diamond" in folders and "baseball diamond" in spec.classes
    write_class_tree(tmp_path / "resisc45" / "NWPU-RESISC45", {"airplane": 10, "wetland": 5},
                     {"airplane": 0, "wetland": 44}, prefix="x_")
    _, (train, val, test) = _all_splits("resisc45", tmp_path)
    assert [len(train), len(val), len(test)] == [6 + 3, 2 + 1, 2 + 1]
    _labels_match_pixels(train)


def test_imagenet_wnid_folders_need_all_classes(tmp_path):
    spec = get_dataset("imagenet1k")
    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        for k in range(1000):
            (root / split / f"n{k:08d}").mkdir(parents=True)
    for i in range(12):
        save_image(root / "train" / "n00000002" / f"n00000002_{i}.JPEG", 2, i)
    save_image(root / "val" / "n00000999" / "ILSVRC2012_val_00000001.JPEG", 231, 0)  # 999 % 256 in pixels
    train, val, test = (open_dataset_split(spec, tmp_path, s) for s in spec.splits)
    assert len(val) == 10 and len(train) == 2 and set(val.labels()) == {2}
    assert test.labels() == [999] and test.ids() == ["val/n00000999/ILSVRC2012_val_00000001.JPEG"]
    assert spec.classes[999] == "toilet paper" and spec.classes[0] == "tench"
    (root / "val" / "n00000500").rmdir()
    with pytest.raises(UserError, match="exactly 1000 class folders \\(it has 999\\)"):
        open_dataset_split(spec, tmp_path, "test")


def test_imagenetv2_numbered_folders_test_only(tmp_path):
    spec = get_dataset("imagenetv2")
    assert spec.splits == ("test",) and not spec.probe_splits and len(spec.templates) == 80
    folder = tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val"
    write_class_tree(folder, {"0": 2, "10": 1, "999": 1}, {"0": 0, "10": 10, "999": 999 % 256}, suffix=".jpeg")
    test = open_dataset_split(spec, tmp_path, "test")
    assert test.labels() == [0, 0, 10, 999]
    assert test.ids()[2] == "imagenetv2-matched-frequency-format-val/10/image_0001.jpeg"
    with pytest.raises(UserError, match="has no split 'train': use one of test"):
        open_dataset_split(spec, tmp_path, "train")


def test_fer2013_csv_usage_column_gives_three_splits(tmp_path):
    rows = [(3, "Training"), (0, "PublicTest"), (6, "PrivateTest"), (3, "Training"), (5, "PrivateTest")]
    write_fer2013(tmp_path, rows)
    spec, (train, val, test) = _all_splits("fer2013", tmp_path)
    assert train.ids() == ["Training/00000", "Training/00003"] and train.labels() == [3, 3]
    assert val.labels() == [0] and test.labels() == [6, 5] and spec.classes[6] == "neutral"
    assert decode_pattern(test.load(1))[0] == 5 and test.load(1).size == (48, 48)  # grey: R = G = B = label
    assert spec.class_synonyms[3] == ("happy", "smiling")
    assert "a photo of a smiling looking face." in spec.class_prompts()[3]


def test_pcam_h5_lazy_handle_survives_pickling(tmp_path):
    write_pcam(tmp_path, {"train": 4, "valid": 2, "test": 3})
    _, (train, val, test) = _all_splits("pcam", tmp_path)
    assert [len(train), len(val), len(test)] == [4, 2, 3] and test.labels() == [0, 1, 0]
    assert decode_pattern(test.load(2)) == (0, 2)
    clone = pickle.loads(pickle.dumps(test))  # what a DataLoader worker receives
    assert decode_pattern(clone.load(1)) == (1, 1)


def test_plain_image_folder_reader(tmp_path):
    classes = ("cat", "dog")
    for split, n in (("train", 2), ("test", 1)):
        write_class_tree(tmp_path / split, {"dog": n, "cat": n}, {"cat": 0, "dog": 1}, suffix=".png")
    test = open_split("imagefolder", tmp_path, "test", classes)
    assert test.ids() == ["test/cat/image_0001.png", "test/dog/image_0001.png"] and test.labels() == [0, 1]
    assert [decode_pattern(test.load(i))[0] for i in range(2)] == [0, 1]
