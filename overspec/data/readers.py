"""Readers that turn a prepared dataset split into (image, label, id) samples.

A reader lists its split deterministically; `prepare_dataset` records the listing's digest in the
manifest, and readers check it again when embedding, so a dataset that changed on disk since it was
prepared is reported instead of silently embedded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image, UnidentifiedImageError

from overspec.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


class SplitReader(Protocol):
    def __len__(self) -> int: ...
    def ids(self) -> list[str]: ...
    def labels(self) -> list[int]: ...
    def load(self, index: int) -> Image.Image: ...
    def listing_digest(self) -> str: ...


def _listing_digest(ids: list[str], labels: list[int]) -> str:
    digest = hashlib.sha256()
    for sample_id, label in zip(ids, labels):
        digest.update(f"{sample_id}\t{label}\n".encode())
    return digest.hexdigest()


def open_image_rgb(path: Path, named_by: str = "",
                   advice: str = "replace or remove it, then rerun prepare_dataset for its dataset") -> Image.Image:
    """Decode one image as RGB, with a clear error for a corrupt or unreadable file.

    `named_by` says where the image is listed (e.g. '<list> row 7'), for the error."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        where = f" (named by {named_by})" if named_by else ""
        raise UserError(f"Image {path}{where} cannot be decoded ({exc.__class__.__name__}): {advice}.") from None


@dataclass
class ImageFolderSplit:
    """`<root>/<split>/<class name>/<image>`; labels follow the registry's class order, not the
    alphabetical order torchvision's ImageFolder would use."""

    root: Path
    split: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        split_dir = self.root / self.split
        if not split_dir.is_dir():
            raise UserError(f"Split folder {split_dir} does not exist: expected the layout "
                            f"<root>/<split>/<class name>/<image> with class folders {', '.join(self.classes[:5])}...")
        index = {name: i for i, name in enumerate(self.classes)}
        unknown = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name not in index)
        if unknown:
            raise UserError(f"Folder {split_dir} has class folders that are not classes of this dataset "
                            f"({', '.join(unknown[:5])}): rename them to the registry's class names.")
        self._ids: list[str] = []
        self._labels: list[int] = []
        for name in self.classes:
            class_dir = split_dir / name
            if not class_dir.is_dir():
                continue
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    self._ids.append(f"{self.split}/{name}/{path.name}")
                    self._labels.append(index[name])
        if not self._ids:
            raise UserError(f"Split folder {split_dir} holds no images: expected <class name>/<image>.png|jpg inside it.")

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        return list(self._ids)

    def labels(self) -> list[int]:
        return list(self._labels)

    def load(self, index: int) -> Image.Image:
        return open_image_rgb(self.root / self._ids[index])

    def listing_digest(self) -> str:
        return _listing_digest(self._ids, self._labels)


class ListedSplit:
    """A split whose ids and labels are listed up front; subclasses say how to load one image."""

    _ids: list[str]
    _labels: list[int]

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        return list(self._ids)

    def labels(self) -> list[int]:
        return list(self._labels)

    def listing_digest(self) -> str:
        return _listing_digest(self._ids, self._labels)

    def load(self, index: int) -> Image.Image:
        raise NotImplementedError


class FileListSplit(ListedSplit):
    """Images stored as files; ids are their paths relative to `root`."""

    def __init__(self, root: Path, ids: list[str], labels: list[int]) -> None:
        self.root, self._ids, self._labels = Path(root), list(ids), list(labels)

    def load(self, index: int) -> Image.Image:
        return open_image_rgb(self.root / self._ids[index])


class ArraySplit(ListedSplit):
    """Small images kept in memory as one uint8 array [N, H, W] or [N, H, W, C] (CIFAR, MNIST, ...)."""

    def __init__(self, images, ids: list[str], labels: list[int]) -> None:
        self.images, self._ids, self._labels = images, list(ids), list(labels)

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index]).convert("RGB")


class SubsetSplit(ListedSplit):
    """The samples of `base` at `indices` (a carved split); ids stay those of the base split."""

    def __init__(self, base: SplitReader, indices: list[int]) -> None:
        base_ids, base_labels = base.ids(), base.labels()
        self.base, self.indices = base, list(indices)
        self._ids = [base_ids[i] for i in self.indices]
        self._labels = [base_labels[i] for i in self.indices]

    def load(self, index: int) -> Image.Image:
        return self.base.load(self.indices[index])


def check_labels(labels: list[int], classes: tuple[str, ...], where: Path) -> None:
    """Labels must index the registry's class list; anything else means the files disagree with it."""
    bad = [label for label in labels if not 0 <= label < len(classes)]
    if bad:
        raise UserError(f"Dataset at {where} has label {bad[0]}, outside the {len(classes)} classes of this "
                        f"dataset: check that the folder holds the dataset the registry expects.")


READERS = ("toy", "imagefolder", "torchvision", "class_folders", "fer2013_csv", "pcam_h5", "wds")


def _official_opener(reader: str):
    """The function that opens one official split for `reader` (imported lazily: torchvision is slow)."""
    if reader == "torchvision":
        from overspec.data.torchvision_readers import open_torchvision_split
        return open_torchvision_split
    if reader in ("class_folders", "fer2013_csv", "pcam_h5"):
        from overspec.data import file_readers
        return {"class_folders": file_readers.open_class_folders, "fer2013_csv": file_readers.open_fer2013_csv,
                "pcam_h5": file_readers.open_pcam_h5}[reader]
    if reader == "wds":
        from overspec.data.wds import open_wds_split
        return open_wds_split
    raise UserError(f"Unknown dataset reader '{reader}' (known: {', '.join(READERS)}).")


def open_split(reader: str, root: str | Path, split: str, classes: tuple[str, ...],
               options: dict | None = None) -> SplitReader:
    """Open our `split` (train / val / test) of the dataset in `root`.

    `options["split_plan"]` (a `SplitPlan` or its `to_dict()`) says how our splits come from the
    dataset's official ones; without it each split is read as the official split of the same name.
    `options["layout"]` is quoted in errors. Toy and image-folder data keep one folder per split.
    """
    root = Path(root)
    options = dict(options or {})
    if not root.is_dir():
        expected = f"expected {options['layout']}" if options.get("layout") else "put the data there"
        raise UserError(f"Dataset folder {root} does not exist or is not readable: {expected}, "
                        f"or set data_root in the config.")
    if reader in ("toy", "imagefolder"):
        return ImageFolderSplit(root, split, classes)
    from overspec.data.splits import as_split_plan

    opener = _official_opener(reader)
    plan = as_split_plan(options.get("split_plan"))

    def open_official(official: str) -> SplitReader:
        return opener(root, official, classes, options)

    if plan is None:
        return open_official(split)
    return plan.resolve(split, open_official)
