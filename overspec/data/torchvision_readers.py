"""Official splits of datasets in torchvision's on-disk layout, read through torchvision.datasets.

torchvision parses each dataset's own metadata (json, .mat, csv, idx, pickles); this module only
turns the result into a `SplitReader`: ids are paths relative to the dataset folder (or
`<split>/<index>` for datasets stored as arrays), listed in sorted order so carving never depends
on the file system. Nothing is ever downloaded (download=False).

torchvision compares md5 checksums of some files with the official ones before reading them
(CIFAR-10/100, STL10, SVHN, Flowers102's .mat files); a copy that differs from the official files
is refused with a message naming the folder. CIFAR's files are pickles: the checksum is what makes
unpickling them safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from overspec.data.class_names import normalise_class_name, registry_labels
from overspec.data.readers import ArraySplit, FileListSplit, SplitReader, check_labels
from overspec.errors import UserError


@dataclass(frozen=True)
class TorchvisionSource:
    cls: str  # attribute of torchvision.datasets
    folder: str  # the folder torchvision reads inside the root it is given; "" = that root itself
    split_kwargs: dict[str, dict]  # official split -> constructor keyword arguments
    extra: dict = field(default_factory=dict)  # keyword arguments for every split
    checksummed: bool = False  # torchvision refuses files whose md5 differs from the official ones
    arrays: bool = False  # images live in memory as one array (no file per image)
    class_where: str = ""  # where the files name class n (1-based), for errors; {split} = the official split


def _train_test(key: str = "split") -> dict[str, dict]:
    if key == "train":
        return {"train": {"train": True}, "test": {"train": False}}
    return {"train": {key: "train"}, "test": {key: "test"}}


SOURCES: dict[str, TorchvisionSource] = {
    s.cls: s
    for s in (
        TorchvisionSource("CIFAR10", "cifar-10-batches-py", _train_test("train"), checksummed=True, arrays=True,
                          class_where="batches.meta label_names entry {n}"),
        TorchvisionSource("CIFAR100", "cifar-100-python", _train_test("train"), checksummed=True, arrays=True,
                          class_where="meta fine_label_names entry {n}"),
        TorchvisionSource("MNIST", "MNIST", _train_test("train"), arrays=True),
        TorchvisionSource("STL10", "stl10_binary", _train_test(), checksummed=True, arrays=True,
                          class_where="class_names.txt line {n}"),
        TorchvisionSource("SVHN", "", _train_test(), checksummed=True, arrays=True),
        TorchvisionSource("Food101", "food-101", _train_test(), class_where="meta/{split}.json class {n} (sorted keys)"),
        TorchvisionSource("SUN397", "SUN397", {"all": {}}, class_where="ClassName.txt line {n}"),
        TorchvisionSource("StanfordCars", "stanford_cars", _train_test(),
                          class_where="devkit/cars_meta.mat class_names entry {n}"),
        TorchvisionSource("FGVCAircraft", "fgvc-aircraft-2013b",
                          {s: {"split": s} for s in ("train", "val", "test")}, {"annotation_level": "variant"},
                          class_where="data/variants.txt line {n}"),
        TorchvisionSource("DTD", "dtd", {s: {"split": s} for s in ("train", "val", "test")}, {"partition": 1},
                          class_where="labels/{split}1.txt class {n} (sorted)"),
        TorchvisionSource("Flowers102", "flowers-102", {s: {"split": s} for s in ("train", "val", "test")},
                          checksummed=True),
        TorchvisionSource("GTSRB", "gtsrb", _train_test()),
        TorchvisionSource("Country211", "country211", {s: {"split": s} for s in ("train", "valid", "test")},
                          class_where="{split}/ class folder {n} (sorted)"),
        TorchvisionSource("RenderedSST2", "rendered-sst2", {s: {"split": s} for s in ("train", "val", "test")}),
        TorchvisionSource("OxfordIIITPet", "oxford-iiit-pet", {"trainval": {"split": "trainval"},
                                                               "test": {"split": "test"}},
                          class_where="annotations/{split}.txt breed {n} (by class id)"),
        TorchvisionSource("EuroSAT", "eurosat", {"all": {}}, class_where="2750/ class folder {n} (sorted)"),
    )
}


def torchvision_root(root: Path, source: TorchvisionSource) -> Path:
    """The root torchvision wants: the parent of the dataset folder (torchvision adds the folder name)."""
    if not source.folder:
        return root
    if root.name != source.folder:
        raise UserError(f"torchvision's {source.cls} reads a folder named '{source.folder}', but the dataset folder "
                        f"is {root}: rename it to {source.folder} (or point data_root at the folder that holds it).")
    return root.parent


def _construct(source: TorchvisionSource, root: Path, official: str, layout: str):
    import torchvision.datasets

    if official not in source.split_kwargs:
        raise UserError(f"torchvision's {source.cls} has no split '{official}' "
                        f"(it has {', '.join(source.split_kwargs)}).")
    kwargs = {**source.extra, **source.split_kwargs[official], "download": False}
    dataset_class = getattr(torchvision.datasets, source.cls)
    try:
        return dataset_class(str(torchvision_root(root, source)), **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        checksum = " or differs from the official files (torchvision checks their md5)" if source.checksummed else ""
        expected = f"; expected {layout}" if layout else ""
        raise UserError(f"torchvision's {source.cls} cannot read split '{official}' from {root}: the data is "
                        f"missing or incomplete{checksum} ({exc.__class__.__name__}: {str(exc)[:160]}){expected}.") from None


def _file_samples(dataset) -> list[tuple[str, int]]:
    """(path, label) pairs from torchvision's file-based datasets (their private lists, stable since 0.12)."""
    for paths_attr, labels_attr in (("_image_files", "_labels"), ("_images", "_labels")):
        if hasattr(dataset, paths_attr) and hasattr(dataset, labels_attr):
            return [(str(p), int(label)) for p, label in zip(getattr(dataset, paths_attr), getattr(dataset, labels_attr))]
    for attr in ("_samples", "samples"):
        if hasattr(dataset, attr):
            return [(str(p), int(label)) for p, label in getattr(dataset, attr)]
    raise UserError(f"This torchvision version's {type(dataset).__name__} keeps its file list where overspec does not "
                    f"look: install the torchvision version pinned by overspec.")


def _array_samples(dataset) -> tuple[np.ndarray, list[int]]:
    images = np.asarray(dataset.data)
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))  # STL10 and SVHN store CHW
    labels = getattr(dataset, "targets", None)
    if labels is None:
        labels = dataset.labels
    return images, [int(label) for label in np.asarray(labels).reshape(-1)]


def _registry_labels(dataset, source: TorchvisionSource, root: Path, official: str, classes: tuple[str, ...],
                     options: dict) -> list[int] | None:
    """Registry label of each label torchvision gives, matched by class identifier (None: the same labels).

    torchvision numbers classes in the order of the files' own list (SUN397's ClassName.txt, DTD's sorted
    names, ...); the registry's `reader_classes` name the same classes, maybe in another order.
    """
    found = getattr(dataset, "classes", None)
    if found is None or source.cls in ("Flowers102", "MNIST", "RenderedSST2"):  # hard-coded in torchvision
        return None
    if len(found) != len(classes):
        raise UserError(f"{root} lists {len(found)} classes but the registry's {source.cls} has {len(classes)}: "
                        f"the folder holds a different version of the dataset.")
    identifiers = options.get("reader_classes")
    if identifiers is None:
        return None
    where = source.class_where.replace("{split}", official) or "the class list"
    return registry_labels(found, identifiers, lambda i: f"{root}/{where.format(n=i + 1)}")


def _check_label_in_path(ids: list[str], labels: list[int], root: Path, options: dict) -> None:
    """Where the class is also in the path (torchvision labels the sorted folders it finds), they must agree:
    a missing class folder would otherwise shift every later label."""
    pattern = options.get("label_in_path")
    if not pattern:
        return
    names = [normalise_class_name(c) for c in options.get("reader_classes", ())]
    for sample_id, label in zip(ids, labels):
        match = re.search(pattern, sample_id)
        if match is None:
            continue
        value = match.group(1)
        expected = int(value) if value.isdigit() else names.index(normalise_class_name(value))
        if expected != label:
            raise UserError(f"{root / sample_id} is in the folder of class {expected} but torchvision labelled it "
                            f"{label}: a class folder is missing under {root}.")


def _relative_id(path: Path, root: Path) -> str:
    try:  # torchvision builds its paths from the root we gave it, so a plain prefix test suffices
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.resolve().relative_to(root.resolve()).as_posix()


def open_torchvision_split(root: Path, official: str, classes: tuple[str, ...], options: dict) -> SplitReader:
    """One official split of the torchvision dataset `options["torchvision"]` stored in `root`."""
    source = SOURCES[options["torchvision"]]
    dataset = _construct(source, Path(root), official, options.get("layout", ""))
    to_registry = _registry_labels(dataset, source, root, official, classes, options)
    if source.arrays:
        images, labels = _array_samples(dataset)
        if to_registry is not None:
            labels = [to_registry[label] for label in labels]
        ids = [f"{official}/{i:06d}" for i in range(len(labels))]
        check_labels(labels, classes, root)
        return ArraySplit(images, ids, labels)
    root = Path(root)
    remap = to_registry.__getitem__ if to_registry is not None else int
    samples = sorted((_relative_id(Path(path), root), remap(label)) for path, label in _file_samples(dataset))
    ids, labels = [s[0] for s in samples], [s[1] for s in samples]
    check_labels(labels, classes, root)
    _check_label_in_path(ids, labels, root, options)
    if not ids:
        raise UserError(f"Split '{official}' of {root} holds no images; expected {options.get('layout', 'the torchvision layout')}.")
    return FileListSplit(root, ids, labels)
