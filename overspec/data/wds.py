"""CLIP_benchmark-style WebDataset shards on disk, read with tarfile (no webdataset dependency).

Layout (what `clip_benchmark_export_wds` writes and the clip-benchmark/wds_* repositories hold):

    <root>/<split>/nshards.txt          number of shards N (optional here: else every *.tar)
    <root>/<split>/0.tar ... N-1.tar    members <key>.<webp|png|jpg|jpeg> and <key>.cls (the label as text)
    <root>/classnames.txt               one class name per line, in label order

The shards' own class names and templates are not used for prompts: the registry's OpenAI sets
are (the shards are a second copy known to have drifted); classnames.txt only has to agree on the
number of classes. Listing reads tar headers only; an image is read from its byte offset on demand.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from overspec.data.readers import ListedSplit, SplitReader, check_labels
from overspec.errors import UserError

IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")
WDS_LAYOUT = ("<root>/<split>/{0..N-1}.tar (+ nshards.txt) with <key>.webp|png|jpg and <key>.cls members, "
              "and <root>/classnames.txt")


@dataclass(frozen=True)
class _Member:
    shard: str  # shard file name inside the split folder
    offset: int  # byte offset of the member's data in the shard
    size: int


def split_key(member_name: str) -> tuple[str, str]:
    """WebDataset's rule: the key is the path up to the first dot of the base name, the rest is the extension."""
    folder, _, base = member_name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


def shard_paths(split_dir: Path) -> list[Path]:
    nshards_file = split_dir / "nshards.txt"
    if nshards_file.is_file():
        try:
            count = int(nshards_file.read_text().strip())
        except ValueError:
            raise UserError(f"{nshards_file} must hold one integer, the number of shards.") from None
        paths = [split_dir / f"{i}.tar" for i in range(count)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise UserError(f"{nshards_file} announces {count} shards but {', '.join(missing[:3])} "
                            f"{'is' if len(missing) == 1 else 'are'} missing in {split_dir}.")
        return paths
    return sorted(split_dir.glob("*.tar"), key=lambda p: (len(p.stem), p.stem))


class WdsSplit(ListedSplit):
    def __init__(self, split_dir: Path, split: str, classes: tuple[str, ...]) -> None:
        self.split_dir = split_dir
        images: dict[str, _Member] = {}
        labels: dict[str, int] = {}
        for shard in shard_paths(split_dir):
            self._index_shard(shard, images, labels)
        unlabelled = sorted(set(images) - set(labels))
        if unlabelled:
            raise UserError(f"Sample '{unlabelled[0]}' in {split_dir} has an image but no .cls label: "
                            f"only single-label classification shards can be read.")
        if not images:
            raise UserError(f"{split_dir} holds no samples; expected {WDS_LAYOUT}.")
        keys = sorted(images)
        self._members = [images[k] for k in keys]
        self._ids = [f"{split}/{k}" for k in keys]
        self._labels = [labels[k] for k in keys]
        check_labels(self._labels, classes, split_dir)

    def _index_shard(self, shard: Path, images: dict[str, _Member], labels: dict[str, int]) -> None:
        try:
            with tarfile.open(shard, "r:") as tar:
                for info in tar:
                    if not info.isfile():
                        continue
                    key, extension = split_key(info.name)
                    if extension in IMAGE_EXTENSIONS:
                        if key in images:
                            raise UserError(f"Sample key '{key}' appears twice in {self.split_dir}: "
                                            f"keys must be unique across the shards of a split.")
                        images[key] = _Member(shard.name, info.offset_data, info.size)
                    elif extension == "cls":
                        text = tar.extractfile(info).read().decode().strip()
                        try:
                            labels[key] = int(text)
                        except ValueError:
                            raise UserError(f"{shard} member {info.name} holds '{text[:20]}', not an integer label.") from None
        except tarfile.TarError as exc:
            raise UserError(f"Shard {shard} is not a readable tar file ({exc}): replace it.") from None

    def load(self, index: int) -> Image.Image:
        member = self._members[index]
        with open(self.split_dir / member.shard, "rb") as handle:
            handle.seek(member.offset)
            data = handle.read(member.size)
        try:
            with Image.open(io.BytesIO(data)) as image:
                return image.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise UserError(f"Sample {self._ids[index]} in {self.split_dir / member.shard} cannot be decoded "
                            f"({exc.__class__.__name__}): replace the shard.") from None


def read_classnames(root: Path) -> list[str] | None:
    path = root / "classnames.txt"
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()  # a trailing newline is not a class; an empty line inside the list is
    return lines


def open_wds_split(root: Path, official: str, classes: tuple[str, ...], options: dict) -> SplitReader:
    split_dir = Path(root) / official
    if not split_dir.is_dir():
        present = sorted(p.name for p in Path(root).iterdir() if p.is_dir())
        raise UserError(f"WebDataset folder {root} has no split folder '{official}' (it has "
                        f"{', '.join(present) or 'none'}); expected {WDS_LAYOUT}.")
    names = read_classnames(Path(root))
    if names is not None and len(names) != len(classes):
        raise UserError(f"{Path(root) / 'classnames.txt'} lists {len(names)} classes but the registry's dataset has "
                        f"{len(classes)}: these shards hold a different dataset or version.")
    return WdsSplit(split_dir, official, classes)
