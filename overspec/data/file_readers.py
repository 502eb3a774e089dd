"""Official splits of datasets whose layout torchvision does not read the way the study needs.

- `class_folders`: `<root>/<split dir>/<class folder>/<image>` where the class folders are named by
  the dataset (Caltech101 with its background class, RESISC45, ImageNet wnids, ImageNet-V2's
  numbered folders). Labels come from the registry's folder list, the folder number, or the sorted
  folder names; never from whatever folders happen to be present.
- `fer2013_csv`: the FER2013 challenge csv (48x48 pixels as text); its Usage column holds the three
  official splits (Training, PublicTest, PrivateTest), which torchvision merges into two.
- `pcam_h5`: PatchCamelyon's HDF5 files, read through one open handle per split instead of
  torchvision's two file opens per image.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from PIL import Image

from overspec.data.readers import IMAGE_SUFFIXES, ArraySplit, FileListSplit, ListedSplit, SplitReader, check_labels
from overspec.errors import UserError


def _layout(options: dict) -> str:
    return f"; expected {options['layout']}" if options.get("layout") else ""


def _folder_labels(split_dir: Path, classes: tuple[str, ...], options: dict) -> dict[str, int]:
    """Class folder name -> label, by the rule in options["folders"]."""
    present = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    rule = options.get("folders", "reader_classes")
    if rule == "reader_classes":
        index = {name: i for i, name in enumerate(options["reader_classes"])}
        unknown = [name for name in present if name not in index]
        if unknown:
            raise UserError(f"Folder {split_dir} has class folders this dataset does not have ({', '.join(unknown[:5])})"
                            f"{_layout(options)}.")
        return {name: index[name] for name in present}
    if rule == "numeric":
        bad = [name for name in present if not name.isdigit() or int(name) >= len(classes)]
        if bad:
            raise UserError(f"Folder {split_dir} has class folders that are not numbers 0..{len(classes) - 1} "
                            f"({', '.join(bad[:5])}){_layout(options)}.")
        return {name: int(name) for name in present}
    if rule == "sorted":
        pattern = re.compile(options.get("folder_pattern", r".+"))
        bad = [name for name in present if not pattern.fullmatch(name)]
        if bad or len(present) != len(classes):
            raise UserError(f"Folder {split_dir} must hold exactly {len(classes)} class folders "
                            f"(it has {len(present)}{', e.g. unexpected ' + bad[0] if bad else ''}): labels are the "
                            f"sorted folder order, so a missing class would shift every label{_layout(options)}.")
        return {name: i for i, name in enumerate(present)}
    raise ValueError(f"unknown folder rule {rule!r}")


def open_class_folders(root: Path, official: str, classes: tuple[str, ...], options: dict) -> SplitReader:
    split_dirs: dict[str, str] = options["split_dirs"]
    if official not in split_dirs:
        raise UserError(f"Dataset at {root} has no official split '{official}' (it has {', '.join(split_dirs)}).")
    relative = split_dirs[official]
    split_dir = root / relative
    if not split_dir.is_dir():
        raise UserError(f"Folder {split_dir} does not exist{_layout(options)}.")
    ids, labels = [], []
    for folder, label in sorted(_folder_labels(split_dir, classes, options).items()):
        for path in sorted((split_dir / folder).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:  # no stat per file: ImageNet has 1.28M
                ids.append(Path(relative, folder, path.name).as_posix())
                labels.append(label)
    if not ids:
        raise UserError(f"Folder {split_dir} holds no images{_layout(options)}.")
    check_labels(labels, classes, root)
    return FileListSplit(root, ids, labels)


FER_USAGES = ("Training", "PublicTest", "PrivateTest")


def open_fer2013_csv(root: Path, official: str, classes: tuple[str, ...], options: dict) -> SplitReader:
    """`fer2013.csv` (emotion,pixels,Usage) or `icml_face_data.csv` (emotion, Usage, pixels); ids `<Usage>/<row>`."""
    if official not in FER_USAGES:
        raise UserError(f"FER2013 has no split '{official}' (it has {', '.join(FER_USAGES)}).")
    path = next((root / name for name in ("fer2013.csv", "icml_face_data.csv") if (root / name).is_file()), None)
    if path is None:
        raise UserError(f"Neither fer2013.csv nor icml_face_data.csv is in {root}{_layout(options)}.")
    images, ids, labels = [], [], []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)  # icml_face_data.csv has ", Usage, pixels"
        for row_number, row in enumerate(reader):
            try:
                usage, emotion, pixels = row["Usage"], int(row["emotion"]), row["pixels"]
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path} row {row_number + 2} lacks emotion, pixels or Usage: "
                                f"it is not the FER2013 challenge csv.") from None
            if usage != official:
                continue
            values = np.array(pixels.split(), dtype=np.uint8)
            if values.size != 48 * 48:
                raise UserError(f"{path} row {row_number + 2} has {values.size} pixels, not 48x48.")
            images.append(values.reshape(48, 48))
            ids.append(f"{official}/{row_number:05d}")
            labels.append(emotion)
    if not ids:
        raise UserError(f"{path} has no rows with Usage '{official}'{_layout(options)}.")
    check_labels(labels, classes, root)
    return ArraySplit(np.stack(images), ids, labels)


PCAM_FILES = {split: (f"camelyonpatch_level_2_split_{split}_x.h5", f"camelyonpatch_level_2_split_{split}_y.h5")
              for split in ("train", "valid", "test")}


class PCamSplit(ListedSplit):
    """Images stay in the HDF5 file; one handle is opened lazily (and reopened in each worker process)."""

    def __init__(self, images_path: Path, ids: list[str], labels: list[int]) -> None:
        self.images_path, self._ids, self._labels = images_path, ids, labels
        self._handle = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None}  # h5py handles cannot cross process boundaries

    def load(self, index: int) -> Image.Image:
        import h5py

        if self._handle is None:
            self._handle = h5py.File(self.images_path, "r")
        return Image.fromarray(self._handle["x"][index]).convert("RGB")


def open_pcam_h5(root: Path, official: str, classes: tuple[str, ...], options: dict) -> SplitReader:
    import h5py

    if official not in PCAM_FILES:
        raise UserError(f"PCam has no split '{official}' (it has {', '.join(PCAM_FILES)}).")
    images_path, labels_path = (root / name for name in PCAM_FILES[official])
    for path in (images_path, labels_path):
        if not path.is_file():
            raise UserError(f"{path} does not exist (decompress the .h5.gz files){_layout(options)}.")
    try:
        with h5py.File(labels_path, "r") as targets, h5py.File(images_path, "r") as images:
            labels = [int(v) for v in np.asarray(targets["y"]).reshape(-1)]
            count = images["x"].shape[0]
    except (OSError, KeyError) as exc:
        raise UserError(f"{images_path.name} / {labels_path.name} in {root} cannot be read as PCam files "
                        f"({exc.__class__.__name__}): replace them with the official files.") from None
    if count != len(labels):
        raise UserError(f"{images_path} has {count} images but {labels_path.name} has {len(labels)} labels.")
    check_labels(labels, classes, root)
    return PCamSplit(images_path, [f"{official}/{i:06d}" for i in range(count)], labels)
