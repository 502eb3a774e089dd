"""A miniature data root in the real on-disk layout of every dataset and benchmark configs/paper.yaml
names, and the paper configuration pointed at it (for the slow end-to-end test).

- General datasets: torchvision's layouts (written by `_general_fixtures`), a few images of a few
  classes each, with the class files in full and in their real order (SUN397's ClassName.txt,
  Food101's meta, Country211's 211 folders, DTD's 47 classes). CIFAR-10/100, STL10 and Flowers102
  are md5-checked by torchvision, so fabricated copies are refused (their reader tests patch the
  check): here they are CLIP_benchmark WebDataset shards (`wds_<name>`), the other real layout
  overspec reads them in.
- Biometrics from the toy biometric world, laid out as the real benchmarks: insightface's MS1MV2
  RecordIO (train.rec/.idx) and .bin pair sets, IJB_release folders (loose crops + meta), and CSV
  lists for SMDD, SYN-MAD-2022, MorDIFF (sharing the FRLL bona fides) and the PAD protocol.
  Images vary in size where the real data does (loose IJB crops, MAD and PAD images).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from _general_fixtures import (class_colour, save_image, sun397_class_lines, write_cars, write_class_tree, write_fgvc,
                               write_food101, write_gtsrb, write_mnist, write_sun397, write_wds)
from overspec.data.biometric.ijb import read_ijb_meta, write_ijb_meta
from overspec.data.biometric.pair_bin import encode_image
from overspec.data.registry import get_dataset
from overspec.data.toy.biometric_world import ToyBiometricSizes, write_biometric_world
from overspec.data.train_sets import open_train_set, write_insightface_recordio

ROOT = Path(__file__).resolve().parents[1]
SIDES = (8, 13, 24, 40)  # square general images of several sizes
SHAPES = ((40, 30), (23, 57), (64, 64), (90, 41), (17, 17))  # (width, height) of attack images and IJB crops
WDS_DATASETS = ("cifar10", "cifar100", "stl10", "flowers")  # torchvision md5-checks their files

BIOMETRIC_SIZES = ToyBiometricSizes(
    fr_identities=6, fr_images_per_identity=3, pairs_per_fold=4, identities_per_fold=3, ijb_identities=4,
    ijb_impostor_pairs=10, mad_train_pairs=6, mad_test_pairs=4, pad_train_videos=4, pad_dev_videos=3,
    pad_test_videos=3, pad_frames=2)

# config key -> file, with the real names changed: the readers check the real counts for real names
PAIR_SETS = {f"mini_{name}": f"faces_emore/mini_{name}.bin" for name in ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw")}
IJB_SETS = {"mini_ijbb": "IJB_release/MINI_IJBB", "mini_ijbc": "IJB_release/MINI_IJBC"}
MAD_METHODS = {"facemorpher": "landmark", "mipgan_i": "gan", "mipgan_ii": "gan", "opencv": "landmark",
               "webmorph": "pixel", "mordiff": "pixel"}  # paper's method -> the toy morph standing for it


def _side(i: int) -> int:
    return SIDES[i % len(SIDES)]


def _reader_classes(name: str) -> list[str]:
    return list(get_dataset(name).options["reader_classes"])


def write_general(data: Path) -> None:
    """The 14 general datasets of the paper, a few images of a few classes each."""
    food = _reader_classes("food101")
    write_food101(data, food, {"train": {c: 5 for c in food[:3]}, "test": {c: 2 for c in food[:3]}})
    lines = sun397_class_lines()  # 50 test + 5 val + 45 train per class: 57 images leave 2 for train
    write_sun397(data, lines, {0: 57, lines.index("/j/jail/indoor"): 57}, draw=class_colour, size=_side)
    write_cars(data, _reader_classes("cars"), train=[0] * 5 + [1] * 5 + [195] * 5, test=[0, 1, 195])
    write_fgvc(data, _reader_classes("fgvc_aircraft"), {"train": [0, 1, 2, 0, 1, 2], "val": [0, 1, 2],
                                                       "test": [0, 1, 2]})
    dtd = data / "dtd" / "dtd"
    (dtd / "labels").mkdir(parents=True)
    names = _reader_classes("dtd")
    for label, name in enumerate(names):  # torchvision's DTD classes are those its label files list
        write_class_tree(dtd / "images", {name: 3}, {name: label}, prefix=f"{name}_", draw=class_colour)
    for k, split in enumerate(("train", "val", "test")):
        (dtd / "labels" / f"{split}1.txt").write_text("".join(f"{n}/{n}_{k + 1:04d}.jpg\n" for n in names))
    write_mnist(data, train=50, test=10)
    write_gtsrb(data, classes=43, tracks=5, frames=1, test=6)
    codes = _reader_classes("country211")
    for folder in ("train", "valid", "test"):
        write_class_tree(data / "country211" / folder, {c: 1 for c in codes}, {c: i for i, c in enumerate(codes)},
                         draw=class_colour)
    for folder, n in (("train", 3), ("valid", 2), ("test", 2)):
        write_class_tree(data / "rendered-sst2" / folder, {"negative": n, "positive": n}, {"negative": 0, "positive": 1},
                         suffix=".png", draw=class_colour)
    write_class_tree(data / "imagenetv2" / "imagenetv2-matched-frequency-format-val", {"0": 2, "10": 2, "999": 1},
                     {"0": 0, "10": 10, "999": 999}, suffix=".jpeg", draw=class_colour)
    for name in WDS_DATASETS:
        classes = list(get_dataset(name).classes)
        labels = [i % min(4, len(classes)) for i in range(20)]  # 5 per class: val gets 1
        write_wds(data / f"wds_{name}", classes, {"train": labels, "test": labels[:8]}, draw=class_colour)


def _copy_image(source: Path, target: Path, k: int) -> None:
    """`source` resized to one of SHAPES (real MAD/PAD images differ in size and aspect ratio)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.open(source).convert("RGB").resize(SHAPES[k % len(SHAPES)], Image.BICUBIC).save(target)


def _relist(source_csv: Path, target_csv: Path, image_dir: Path, prefix: str, start: int,
            keep=lambda row: True) -> int:
    """The rows of a toy list as a list of real-layout paths: images copied (resized) into `image_dir`,
    written in the list as `prefix` + file name; returns the next image counter."""
    table = pd.read_csv(source_csv, dtype=str, keep_default_na=False)
    table = table[[keep(row) for _, row in table.iterrows()]].copy()
    paths = []
    for k, rel in enumerate(table["path"], start):
        name = rel.replace("/", "_")
        _copy_image(source_csv.parent / rel, image_dir / name, k)
        paths.append(prefix + name)
    table["path"] = paths
    target_csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(target_csv, index=False)
    return start + len(table)


def _is_bona_fide(row) -> bool:
    return row["label"] == "bonafide"


def write_biometrics(data: Path, toy: Path) -> None:
    """The paper's biometric benchmarks in their real layouts, made from a toy biometric world."""
    write_biometric_world(toy, seed=3, sizes=BIOMETRIC_SIZES)
    # MS1MV2 as insightface ships it: train.rec + train.idx, JPEG payloads, identity labels
    fr = open_train_set(toy / "fr_train")
    samples = [(label, encode_image(np.asarray(fr[i][0]), "JPEG")) for i, label in enumerate(fr.labels)]
    (data / "faces_emore").mkdir()
    write_insightface_recordio(data / "faces_emore" / "train.rec", samples)
    for path in PAIR_SETS.values():
        shutil.copyfile(toy / "pairs" / "toy_pairs.bin", data / path)
    meta = read_ijb_meta(toy / "ijb" / "TOYIJB")
    for folder in IJB_SETS.values():  # loose crops of several sizes, landmarks scaled with them
        root, landmarks = data / folder, meta.landmarks.copy()
        for i, name in enumerate(meta.image_names):
            image = Image.open(meta.image_path(i)).convert("RGB")
            side = SHAPES[i % len(SHAPES)][0]
            landmarks[i] *= side / image.width
            (root / "loose_crop").mkdir(parents=True, exist_ok=True)
            image.resize((side, side), Image.BICUBIC).save(root / "loose_crop" / name)
        write_ijb_meta(root, Path(folder).name.lower(), list(meta.image_names), meta.templates, meta.medias, landmarks,
                       meta.faceness, meta.pair_templates, meta.pair_labels)
    # MAD: SMDD training list; SYN-MAD-2022 and MorDIFF tests sharing the FRLL bona fides
    k = _relist(toy / "mad" / "train.csv", data / "SMDD" / "train.csv", data / "SMDD" / "images", "images/", 0)
    for method, toy_method in MAD_METHODS.items():
        folder = "MorDIFF" if method == "mordiff" else "SYN-MAD-2022"
        csv = data / folder / f"{method}.csv"
        source = toy / "mad" / f"test_{toy_method}.csv"
        _relist(source, csv.with_name(f".{method}.bona.csv"), data / "FRLL", "../FRLL/", 1000, _is_bona_fide)
        k = _relist(source, csv.with_name(f".{method}.morph.csv"), data / folder / method, f"{method}/", k,
                    lambda row: not _is_bona_fide(row))
        parts = [pd.read_csv(csv.with_name(f".{method}.{p}.csv"), dtype=str, keep_default_na=False)
                 for p in ("bona", "morph")]
        pd.concat(parts)[["path", "label"]].to_csv(csv, index=False)
        for p in ("bona", "morph"):
            csv.with_name(f".{method}.{p}.csv").unlink()
    # PAD: O&C&M train and dev frames, CelebA-Spoof test
    k = _relist(toy / "pad" / "train.csv", data / "PAD" / "OCM" / "train.csv", data / "PAD" / "OCM" / "train", "train/", k)
    k = _relist(toy / "pad" / "dev.csv", data / "PAD" / "OCM" / "dev.csv", data / "PAD" / "OCM" / "dev", "dev/", k)
    _relist(toy / "pad" / "test.csv", data / "PAD" / "CelebA-Spoof" / "test.csv", data / "PAD" / "CelebA-Spoof" / "test",
            "test/", k)


def write_backbone(path: Path) -> Path:
    """A small open_clip architecture's weights as a local file (what a user points `pretrained` at)."""
    from safetensors.torch import save_file

    from overspec.models.factory import create_model

    model = create_model("toy-clip-s", seed=0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def paper_config(data: Path, weights: Path, steps: int = 2, batch_size: int = 8) -> dict:
    """configs/paper.yaml with only data_root, the backbones, the recipes' steps (how many, how large: the
    published batches of 256-512 are larger than the miniature training sets, which the fine-tune refuses)
    and the biometric benchmark names changed."""
    config = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    config["data_root"] = str(data)
    for backbone in config["backbones"].values():
        backbone.update(arch="toy-clip-s", pretrained=str(weights))
    for recipe in config["recipes"].values():
        recipe.update(epochs=None, max_steps=steps, batch_size=batch_size)
    fr = config["biometrics"]["fr"]
    fr["pairs"], fr["ijb"] = dict(PAIR_SETS), dict(IJB_SETS)
    config["datasets"]["webdataset"] = list(WDS_DATASETS)
    return config


def write_paper_root(tmp: Path) -> tuple[Path, Path]:
    """(data root, weights file) of the miniature study under `tmp`."""
    data = tmp / "data"
    data.mkdir(parents=True)
    write_general(data)
    write_biometrics(data, tmp / "toy_biometrics")
    return data, write_backbone(tmp / "toy-clip-s.safetensors")
