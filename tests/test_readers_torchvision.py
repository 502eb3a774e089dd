"""torchvision-layout roots written in each dataset's real format, read back through the registry.

CIFAR-10/100, STL10, SVHN and Flowers102 are md5-checked by torchvision, so fabricated files are
refused (tested); their parsing is tested with torchvision's checksum function patched to accept.
"""

import numpy as np
import pytest

from _general_fixtures import (accept_torchvision_checksums, class_colour, decode_pattern, near, write_cars, write_cifar,
                               write_class_tree, write_fgvc, write_flowers, write_food101, write_gtsrb, write_mnist,
                               sun397_class_lines, write_pets, write_stl10, write_sun397, write_svhn)
from overspec.data.registry import get_dataset, open_dataset_split
from overspec.data.class_names import normalise_class_name
from overspec.errors import UserError


@pytest.fixture
def accept_checksums(monkeypatch):
    accept_torchvision_checksums(monkeypatch)


def _splits(name, data_root):
    spec = get_dataset(name)
    return spec, {s: open_dataset_split(spec, data_root, s) for s in spec.splits}


def _check_images(reader, decode_index=True):
    """Every image's pixels carry the label the reader reports."""
    for i, label in enumerate(reader.labels()):
        image = reader.load(i)
        assert image.mode == "RGB"
        pixel_label, _ = decode_pattern(image)
        assert near(pixel_label, label), (reader.ids()[i], pixel_label, label)


def test_cifar10_checksummed_pickles_are_refused_unless_official(tmp_path):
    write_cifar(tmp_path, list(get_dataset("cifar10").options["reader_classes"]))
    with pytest.raises(UserError, match=r"cifar-10-batches-py.*md5.*expected <data_root>/cifar-10-batches-py"):
        open_dataset_split(get_dataset("cifar10"), tmp_path, "test")


def test_cifar10_arrays_ids_labels_and_carved_val(tmp_path, accept_checksums):
    write_cifar(tmp_path, list(get_dataset("cifar10").options["reader_classes"]), per_batch=6)
    spec, splits = _splits("cifar10", tmp_path)
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert len(test) == 6 and test.ids()[:2] == ["test/000000", "test/000001"]
    assert test.labels() == [5, 6, 7, 8, 9, 0]  # the test batch is the sixth: labels (5 + i) % 10
    assert len(train) + len(val) == 30 and set(train.ids()).isdisjoint(val.ids())
    assert all(i.startswith("train/") for i in train.ids() + val.ids())
    per_class = np.bincount(train.labels() + val.labels(), minlength=10)
    assert np.bincount(val.labels(), minlength=10).tolist() == [int(n * 0.1 + 0.5) for n in per_class]
    _check_images(test)
    image = test.load(3)
    assert image.size == (32, 32) and decode_pattern(image) == (8, 33)  # (label, index 5*6+3): exact, no codec
    assert test.listing_digest() == open_dataset_split(spec, tmp_path, "test").listing_digest()


def test_cifar10_val_fraction_per_class(tmp_path, accept_checksums):
    write_cifar(tmp_path, list(get_dataset("cifar10").options["reader_classes"]), per_batch=30)
    _, splits = _splits("cifar10", tmp_path)
    train, val = splits["train"], splits["val"]
    # 15 training images per class -> round(1.5) = 2 per class in val
    assert np.bincount(val.labels(), minlength=10).tolist() == [2] * 10
    assert len(train) == 150 - 20 and set(train.ids()).isdisjoint(val.ids())
    _check_images(val)


def test_cifar100_meta_names_keep_underscores_registry_names_do_not(tmp_path, accept_checksums):
    spec = get_dataset("cifar100")
    raw = list(spec.options["reader_classes"])
    assert "aquarium_fish" in raw and "aquarium fish" in spec.classes
    assert not any("_" in c for c in spec.classes)
    write_cifar(tmp_path, raw, per_batch=8, hundred=True)
    test = open_dataset_split(spec, tmp_path, "test")
    assert test.labels() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert spec.classes[test.labels()[0]] == "aquarium fish"
    _check_images(test)


def test_cifar100_meta_in_another_order_is_matched_by_name(tmp_path, accept_checksums):
    """Labels index the meta file's names; the registry label is the one of the same name, not position."""
    spec = get_dataset("cifar100")
    raw = list(spec.options["reader_classes"])
    raw[1], raw[2] = raw[2], raw[1]  # the meta says 1 = baby, 2 = aquarium_fish
    write_cifar(tmp_path, raw, per_batch=3, hundred=True)
    test = open_dataset_split(spec, tmp_path, "test")
    assert [spec.classes[label] for label in test.labels()] == ["baby", "aquarium fish", "bear"]


def test_class_identifier_with_no_name_names_file_and_line(tmp_path):
    lines = sun397_class_lines()
    lines[lines.index("/j/jail/indoor")] = "/j/jail/outdoor"  # line 207: SUN397 has no 'jail outdoor'
    write_sun397(tmp_path, lines, {0: 1})
    with pytest.raises(UserError, match=rf"^{tmp_path}/SUN397/ClassName.txt line 207 names class 'jail/outdoor', "
                                        r"which has no name in overspec's list of 397 classes"):
        open_dataset_split(get_dataset("sun397"), tmp_path, "test")


def test_mnist_raw_idx_opens_without_checksums(tmp_path):
    write_mnist(tmp_path, train=40, test=8)
    _, splits = _splits("mnist", tmp_path)
    assert splits["test"].labels() == list(range(8)) and splits["test"].ids()[7] == "test/000007"
    assert len(splits["train"]) + len(splits["val"]) == 40
    assert np.bincount(splits["val"].labels(), minlength=10).tolist() == [0] * 10  # 4 per class: round(.4) = 0
    image = splits["test"].load(7)
    assert image.mode == "RGB" and image.size == (28, 28) and decode_pattern(image)[0] == 7


def test_stl10_column_major_binary(tmp_path, accept_checksums):
    write_stl10(tmp_path, list(get_dataset("stl10").options["reader_classes"]))
    test = open_dataset_split(get_dataset("stl10"), tmp_path, "test")
    assert test.labels() == [0, 1, 2, 3, 4, 5]
    assert [decode_pattern(test.load(i)) for i in range(6)] == [(i, i) for i in range(6)]
    assert test.load(0).size == (96, 96)


def test_svhn_mat_digit_ten_is_zero(tmp_path, accept_checksums):
    write_svhn(tmp_path)
    test = open_dataset_split(get_dataset("svhn"), tmp_path, "test")
    assert test.labels() == [0, 1, 2, 3, 4, 5]
    assert [decode_pattern(test.load(i)) for i in range(6)] == [(i, i) for i in range(6)]


def test_food101_files_sorted_ids_and_class_check(tmp_path):
    spec = get_dataset("food101")
    raw = list(spec.options["reader_classes"])
    write_food101(tmp_path, raw, {"train": {"apple_pie": 10, "cheese_plate": 20}, "test": {"cheesecake": 2}})
    train, val, test = (open_dataset_split(spec, tmp_path, s) for s in spec.splits)
    assert test.ids() == ["images/cheesecake/test0.jpg", "images/cheesecake/test1.jpg"]
    assert spec.classes[test.labels()[0]] == "cheesecake"
    assert np.bincount(val.labels()).tolist()[:1] == [1] and len(val) == 1 + 2
    assert len(train) == 30 - 3 and set(train.ids()).isdisjoint(val.ids())
    for reader in (train, val, test):
        _check_images(reader)
    assert train.ids() == open_dataset_split(spec, tmp_path, "train").ids()  # deterministic


def test_fgvc_variants_official_splits_mean_per_class(tmp_path):
    spec = get_dataset("fgvc_aircraft")
    assert spec.primary_metric == "mean_per_class_recall" and len(spec.classes) == 100
    variants = list(spec.options["reader_classes"])
    write_fgvc(tmp_path, variants, {"train": [0, 72, 73], "val": [1], "test": [73, 99]})
    train, val, test = (open_dataset_split(spec, tmp_path, s) for s in spec.splits)
    assert [spec.classes[l] for l in train.labels()] == ["707-320", "F-16A/B", "F/A-18"]
    assert val.labels() == [1] and test.labels() == [73, 99]
    _check_images(train)


def test_pets_reorders_openai_names_to_class_ids(tmp_path):
    spec = get_dataset("pets")
    breeds = [c.replace(" ", "_") for c in spec.options["reader_classes"]]
    breeds = [b.capitalize() if c[0].isupper() else b for b, c in zip(breeds, spec.classes)]
    assert spec.classes[:3] == ("Abyssinian", "american bulldog", "american pit bull terrier")
    write_pets(tmp_path, breeds, trainval=10, test=1)
    train, val, test = (open_dataset_split(spec, tmp_path, s) for s in spec.splits)
    named = {i: spec.classes[label] for i, label in zip(test.ids(), test.labels())}
    assert len(test) == 37 and named["images/Bengal_test0.jpg"] == "Bengal"
    assert named["images/great_pyrenees_test0.jpg"] == "great pyrenees"
    assert np.bincount(val.labels()).tolist() == [1] * 37 and len(train) == 37 * 9
    _check_images(val)


def test_gtsrb_carves_whole_tracks_and_reads_test_csv(tmp_path):
    write_gtsrb(tmp_path, tracks=10, frames=3)
    spec = get_dataset("gtsrb")
    train, val, test = (open_dataset_split(spec, tmp_path, s) for s in spec.splits)
    assert test.labels() == [0, 1, 2, 3, 4] and test.ids()[0] == "GTSRB/Final_Test/Images/00000.ppm"
    tracks = lambda r: {i.rsplit("_", 1)[0] for i in r.ids() if "/00000/" in i}
    assert len(tracks(val)) == 1 and tracks(val).isdisjoint(tracks(train))  # 30 frames: val = one whole track of 3
    assert sum(1 for i in val.ids() if "/00000/" in i) == 3
    _check_images(train)


def test_gtsrb_missing_class_folder_would_shift_labels_and_is_caught(tmp_path):
    import shutil

    base = write_gtsrb(tmp_path, classes=43, tracks=1, frames=1)
    shutil.rmtree(base / "GTSRB" / "Training" / "00001")
    with pytest.raises(UserError, match="in the folder of class 2 but torchvision labelled it 1"):
        open_dataset_split(get_dataset("gtsrb"), tmp_path, "train")


def test_sun397_fixed_partition_50_5_45(tmp_path):
    spec = get_dataset("sun397")
    write_sun397(tmp_path, sun397_class_lines(), {0: 101, 8: 3})
    train, val, test = (open_dataset_split(spec, tmp_path, s) for s in spec.splits)
    counts = {name: np.bincount(r.labels(), minlength=397)[[0, 8]].tolist()
              for name, r in (("train", train), ("val", val), ("test", test))}
    assert counts == {"train": [45, 0], "val": [5, 0], "test": [50, 3]}
    assert not (set(train.ids()) & set(test.ids())) and not (set(val.ids()) & set(test.ids()))
    assert test.ids()[0].startswith("a/abbey/sun_")
    assert spec.classes[8] == "apartment building outdoor"
    _check_images(val)


def test_sun397_every_class_identifier_gets_its_own_name(tmp_path):
    """ClassName.txt in its real order ('/j/jail/indoor' sorts before '/j/jail_cell'): each image's label
    must name the class of the folder it is in, for all 397 classes."""
    spec = get_dataset("sun397")
    lines = sun397_class_lines()
    write_sun397(tmp_path, lines, {i: 1 for i in range(len(lines))}, draw=class_colour)
    test = open_dataset_split(spec, tmp_path, "test")
    assert len(test) == 397
    for sample_id, label in zip(test.ids(), test.labels()):
        identifier = sample_id.rsplit("/", 1)[0][2:]  # "j/jail/indoor/sun_x.jpg" -> "jail/indoor"
        assert normalise_class_name(spec.classes[label]) == normalise_class_name(identifier), sample_id
    jail = {i.rsplit("/", 1)[0]: spec.classes[label] for i, label in zip(test.ids(), test.labels()) if "/jail" in i}
    assert jail == {"j/jail/indoor": "jail indoor", "j/jail_cell": "jail cell"}


def test_eurosat_partition_is_disjoint_and_stratified(tmp_path):
    spec = get_dataset("eurosat")
    folders = list(spec.options["reader_classes"])
    write_class_tree(tmp_path / "eurosat" / "2750", {f: 10 for f in folders}, {f: i for i, f in enumerate(folders)})
    train, val, test = (open_dataset_split(spec, tmp_path, s) for s in spec.splits)
    assert [len(train), len(val), len(test)] == [60, 20, 20]
    assert len(set(train.ids()) | set(val.ids()) | set(test.ids())) == 100
    assert spec.classes[test.labels()[0]] == "annual crop land"
    _check_images(test)


def test_eurosat_missing_class_folder_is_caught(tmp_path):
    folders = list(get_dataset("eurosat").options["reader_classes"])[1:]
    write_class_tree(tmp_path / "eurosat" / "2750", {f: 2 for f in folders}, {f: 0 for f in folders})
    with pytest.raises(UserError, match="lists 9 classes but the registry's EuroSAT has 10"):
        open_dataset_split(get_dataset("eurosat"), tmp_path, "train")


def test_flowers_mat_files(tmp_path, accept_checksums):
    spec = get_dataset("flowers")
    # (one-element id lists would be squeezed to scalars by torchvision's loadmat: real splits never are)
    write_flowers(tmp_path, labels=[0, 1, 101, 5, 5, 7], setid={"train": [1, 2], "val": [3, 6], "test": [4, 5]})
    train, val, test = (open_dataset_split(spec, tmp_path, s) for s in spec.splits)
    assert train.labels() == [0, 1] and val.labels() == [101, 7] and test.ids() == ["jpg/image_00004.jpg",
                                                                                 "jpg/image_00005.jpg"]
    assert spec.classes[101] == "blackberry lily"
    _check_images(train)


def test_flowers_refused_without_official_mat_files(tmp_path):
    write_flowers(tmp_path, labels=[0, 1], setid={"train": [1, 2], "val": [1, 2], "test": [1, 2]})
    with pytest.raises(UserError, match="md5"):
        open_dataset_split(get_dataset("flowers"), tmp_path, "train")


def test_stanford_cars_mat_annotations(tmp_path):
    spec = get_dataset("cars")
    write_cars(tmp_path, list(spec.classes), train=[0, 195, 195], test=[10, 3])
    test = open_dataset_split(spec, tmp_path, "test")
    assert test.labels() == [10, 3] and test.ids() == ["cars_test/00001.jpg", "cars_test/00002.jpg"]
    train = open_dataset_split(spec, tmp_path, "train")
    assert sorted(train.labels()) == [0, 195, 195]
    _check_images(train)


def test_missing_torchvision_folder_names_folder_and_layout(tmp_path):
    with pytest.raises(UserError, match=r"Dataset folder .*food-101 does not exist.*meta/\{train,test\}.json"):
        open_dataset_split(get_dataset("food101"), tmp_path, "test")
    (tmp_path / "food-101").mkdir()
    with pytest.raises(UserError, match="cannot read split 'test'.*missing or incomplete"):
        open_dataset_split(get_dataset("food101"), tmp_path, "test")


def test_rendered_sst2_valid_folder_is_val(tmp_path):
    base = tmp_path / "rendered-sst2"
    for folder, n in (("train", 2), ("valid", 1), ("test", 1)):
        write_class_tree(base / folder, {"negative": n, "positive": n}, {"negative": 0, "positive": 1},
                         suffix=".png")
    spec = get_dataset("renderedsst2")
    train, val = (open_dataset_split(spec, tmp_path, s) for s in ("train", "val"))
    assert len(open_dataset_split(spec, tmp_path, "test")) == 2
    assert val.ids() == ["valid/negative/image_0001.png", "valid/positive/image_0001.png"] and val.labels() == [0, 1]
    assert len(train) == 4 and spec.class_prompts()[1] == ["a positive review of a movie."]
    _check_images(train)


def test_dtd_partition_one_label_files(tmp_path):
    spec = get_dataset("dtd")
    data = tmp_path / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True)
    lines = []
    for label, name in enumerate(spec.classes):
        write_class_tree(data / "images", {name: 1}, {name: label}, prefix=f"{name}_")
        lines.append(f"{name}/{name}_0001.jpg")
    for split in ("train", "val", "test"):
        (data / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
    test = open_dataset_split(spec, tmp_path, "test")
    assert len(test) == 47 and test.ids()[0] == "dtd/images/banded/banded_0001.jpg"
    _check_images(test)


def test_country211_iso_folders(tmp_path):
    spec = get_dataset("country211")
    codes = list(spec.options["reader_classes"])
    assert codes[:2] == ["AD", "AE"] and codes == sorted(codes) and len(set(codes)) == 211
    write_class_tree(tmp_path / "country211" / "test", {c: 1 for c in codes}, {c: i % 256 for i, c in enumerate(codes)})
    test = open_dataset_split(spec, tmp_path, "test")
    assert len(test) == 211 and test.labels() == list(range(211)) and test.ids()[1] == "test/AE/image_0001.jpg"
    assert spec.classes[:2] == ("Andorra", "United Arab Emirates")  # ISO order AD, AE
    named = dict(zip(codes, spec.classes))
    assert (named["GB"], named["XK"], named["ZW"]) == ("United Kingdom", "Kosovo", "Zimbabwe")
