"""Readers for fine-tuning data in the formats the published models trained on.

- identity image folders (CASIA-WebFace layout: root/<identity>/<image>), class = sorted folder index;
- MXNet RecordIO `.rec` + `.idx` (insightface MS1MV2 / MS1MV3 layout), read without mxnet;
- CSV file lists with a header `path,label[,...]` (MADation / FoundPAD protocols), label 1 = bona fide.

Every reader is a map-style torch Dataset of `(PIL RGB image, int label)` with `labels`,
`num_classes`, `class_names` and `digest()` (sha256 over labels and image bytes, never absolute
paths), so the same data gives the same digest on any machine.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from overspec.data.biometric.attack_lists import read_mad_list, read_pad_list
from overspec.data.biometric.identity_folders import read_identity_folders
from overspec.errors import UserError
from overspec.provenance import sha256_file



def _decode(data: bytes, where: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"Training image {where} cannot be decoded ({exc}); replace or remove it.") from None


class TrainSet(Dataset):
    """Base class: subclasses fill `labels`, `class_names` and implement `read_bytes` and `_digest_parts`."""

    kind = "base"
    labels: np.ndarray
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def groups(self) -> np.ndarray | None:
        """What must not be split between training and validation (identity, video); None = each sample alone."""
        return None

    def __len__(self) -> int:
        return len(self.labels)

    def read_bytes(self, index: int) -> bytes:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        return f"#{index}"

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return _decode(self.read_bytes(index), self.describe(index)), int(self.labels[index])

    def _digest_parts(self) -> Iterable[bytes]:
        for i in range(len(self)):
            yield f"{int(self.labels[i])}\t{hashlib.sha256(self.read_bytes(i)).hexdigest()}\n".encode()

    def digest(self) -> str:
        """sha256 over the format, class names, and every (label, image bytes) in order."""
        h = hashlib.sha256(f"{self.kind}\n{self.class_names}\n".encode())
        for part in self._digest_parts():
            h.update(part)
        return h.hexdigest()

    def summary(self) -> dict:
        return {"format": self.kind, "num_samples": len(self), "num_classes": self.num_classes,
                "digest": self.digest()}


class TrainSubset(TrainSet):
    """The samples of `parent` at `indices` (a training or validation split), in the parent's label space."""

    def __init__(self, parent: TrainSet, indices: Sequence[int]) -> None:
        self.parent, self.indices = parent, np.asarray(indices, dtype=np.int64)
        self.kind, self.class_names = parent.kind, parent.class_names
        self.labels = parent.labels[self.indices]

    def read_bytes(self, index: int) -> bytes:
        return self.parent.read_bytes(int(self.indices[index]))

    def describe(self, index: int) -> str:
        return self.parent.describe(int(self.indices[index]))


class IdentityFolders(TrainSet):
    """root/<identity>/<image>, indexed by `read_identity_folders`: identities sorted by name get labels 0..C-1."""

    kind = "identity_folders"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        index = read_identity_folders(self.root)
        self.relative = list(index.paths)
        self.paths = [self.root / p for p in index.paths]
        self.labels, self.class_names = index.labels, list(index.identities)

    @property
    def groups(self) -> np.ndarray:
        return self.labels

    def read_bytes(self, index: int) -> bytes:
        return self.paths[index].read_bytes()

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def _digest_parts(self) -> Iterable[bytes]:
        for rel, path, label in zip(self.relative, self.paths, self.labels, strict=True):
            yield f"{rel}\t{int(label)}\t{sha256_file(path)}\n".encode()


class CSVList(TrainSet):
    """A MAD/PAD list with a header (`path` or `image_path`, `label`, any other columns ignored),
    read by the evaluation reader `read_mad_list`; relative paths are relative to the CSV's folder."""

    kind = "csv_list"
    class_names = ["attack", "bonafide"]

    def __init__(self, csv_path: str | Path) -> None:
        self.csv_path = Path(csv_path)
        if not self.csv_path.is_file():
            raise UserError(f"Training list {csv_path} does not exist: give a CSV with columns path,label.")
        # a list with video ids (PAD) is read as one, so its videos stay whole in a validation split
        frame = read_mad_list(self.csv_path)  # checks the list first, with its one-sentence errors
        has_videos = "video_id" in pd.read_csv(self.csv_path, nrows=0).columns.str.strip().str.lower()
        if has_videos:
            frame = read_pad_list(self.csv_path)
        self._groups = frame["video_id"].to_numpy() if has_videos else None
        self.paths = [Path(p) for p in frame["path"]]
        self.labels = frame["label"].to_numpy().astype(np.int64)
        missing = next((p for p in self.paths if not p.is_file()), None)
        if missing is not None:
            raise UserError(f"{csv_path} lists {missing}, which does not exist: fix the list or the image folder.")
        if len(set(self.labels.tolist())) < 2:
            raise UserError(f"Training list {csv_path} has only {self.class_names[self.labels[0]]} samples; it needs both classes.")

    @property
    def groups(self) -> np.ndarray | None:
        return self._groups

    def read_bytes(self, index: int) -> bytes:
        return self.paths[index].read_bytes()

    def describe(self, index: int) -> str:
        return str(self.paths[index])


# ---------------------------------------------------------------------------------------------
# MXNet RecordIO (dmlc-core recordio + mxnet.recordio IRHeader), read and written without mxnet.

RECORDIO_MAGIC = 0xCED7230A
_IR_FORMAT = "<IfQQ"  # flag, label, id, id2: mxnet's IRHeader ('IfQQ', 24 bytes, little-endian)
_IR_SIZE = struct.calcsize(_IR_FORMAT)
_LENGTH_MASK = (1 << 29) - 1


def read_record(handle, offset: int) -> bytes:
    """One logical record at `offset`; multi-part records are re-joined with the magic, as dmlc does."""
    handle.seek(offset)
    out = bytearray()
    while True:
        head = handle.read(8)
        if len(head) < 8:
            raise UserError(f"RecordIO file {getattr(handle, 'name', '')} ends inside a record at offset {offset}.")
        magic, lrec = struct.unpack("<II", head)
        if magic != RECORDIO_MAGIC:
            raise UserError(f"RecordIO file {getattr(handle, 'name', '')} has no record at offset {offset} (bad magic); the .idx does not match the .rec.")
        cflag, length = lrec >> 29, lrec & _LENGTH_MASK
        out += handle.read(length)
        handle.read((4 - length % 4) % 4)  # records are padded to 4 bytes
        if cflag in (0, 3):
            return bytes(out)
        out += struct.pack("<I", RECORDIO_MAGIC)


def unpack_record(record: bytes) -> tuple[int, tuple[float, ...], int, bytes]:
    """(flag, label(s), id, payload) of an mxnet `pack`ed record."""
    flag, label, rid, _ = struct.unpack(_IR_FORMAT, record[:_IR_SIZE])
    payload = record[_IR_SIZE:]
    if flag > 0:
        labels = struct.unpack(f"<{flag}f", payload[:4 * flag])
        return flag, labels, rid, payload[4 * flag:]
    return flag, (label,), rid, payload


def pack_record(label: float | Sequence[float], payload: bytes, rid: int = 0) -> bytes:
    """mxnet.recordio.pack: a scalar label in the header, or `flag` float32 labels after it."""
    if isinstance(label, (int, float)):
        return struct.pack(_IR_FORMAT, 0, float(label), rid, 0) + payload
    labels = [float(x) for x in label]
    return struct.pack(_IR_FORMAT, len(labels), 0.0, rid, 0) + struct.pack(f"<{len(labels)}f", *labels) + payload


def _write_raw(handle, data: bytes) -> None:
    """dmlc RecordIOWriter::WriteRecord: split where the magic appears at an aligned position."""
    magic = struct.pack("<I", RECORDIO_MAGIC)
    end = len(data) - len(data) % 4
    start, parts = 0, []
    found = data.find(magic, 0, end)  # bytes.find, not a Python loop over words: MS1MV2 has 5.8M records
    while found >= 0:
        if found % 4 == 0:
            parts.append((1 if start == 0 else 2, data[start:found]))
            start = found + 4
        found = data.find(magic, found + (4 if found % 4 == 0 else 1), end)
    parts.append((3 if start else 0, data[start:]))
    for cflag, chunk in parts:
        handle.write(struct.pack("<II", RECORDIO_MAGIC, (cflag << 29) | len(chunk)))
        handle.write(chunk + b"\0" * ((4 - len(chunk) % 4) % 4))


def write_insightface_recordio(rec_path: str | Path, samples: Sequence[tuple[int, bytes]]) -> Path:
    """Write (label, encoded image) samples in the insightface layout, plus the `.idx` beside it.

    Record 0 holds (first identity record, end) as labels; records 1..N the images (label in the
    header); then one record per identity holding its image range [start, end).
    """
    rec_path = Path(rec_path)
    order = sorted(range(len(samples)), key=lambda i: samples[i][0])
    classes = sorted({int(label) for label, _ in samples})
    n = len(samples)
    records = [pack_record([float(n + 1), float(n + 1 + len(classes))], b"")]
    ranges: dict[int, list[int]] = {}
    for position, i in enumerate(order, start=1):
        label, payload = samples[i]
        records.append(pack_record(float(label), payload, rid=position))
        ranges.setdefault(int(label), [position, position])[1] = position + 1
    records += [pack_record([float(a), float(b)], b"") for a, b in (ranges[c] for c in classes)]
    lines = []
    with open(rec_path, "wb") as handle:
        for key, record in enumerate(records):
            lines.append(f"{key}\t{handle.tell()}\n")
            _write_raw(handle, record)
    rec_path.with_suffix(".idx").write_text("".join(lines))
    return rec_path


class RecordIOSet(TrainSet):
    """insightface `train.rec` + `train.idx`; labels come from identity records when present."""

    kind = "mxnet_recordio"

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path else self.rec_path.with_suffix(".idx")
        for p in (self.rec_path, self.idx_path):
            if not p.is_file():
                raise UserError(f"RecordIO file {p} does not exist: MS1MV2-style data needs train.rec and train.idx side by side.")
        self.offsets: dict[int, int] = {}
        for line_no, line in enumerate(self.idx_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                key, offset = line.split("\t")
                self.offsets[int(key)] = int(offset)
            except ValueError:
                raise UserError(f"{self.idx_path} line {line_no} is not 'key<TAB>offset'; regenerate the index.") from None
        self._handle, self._pid = None, os.getpid()
        flag, header_labels, _, _ = unpack_record(self._record(0)) if 0 in self.offsets else (0, (), 0, b"")
        if flag > 0:
            first_id, end_id = int(header_labels[0]), int(header_labels[1])
            self.keys = list(range(1, first_id))
            self.labels = self._labels_from_identities(first_id, end_id)
        else:
            self.keys = sorted(self.offsets)
            self.labels = np.asarray([int(unpack_record(self._record(k))[1][0]) for k in self.keys], dtype=np.int64)
        classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.class_names = [str(c) for c in range(classes)]

    def _labels_from_identities(self, first_id: int, end_id: int) -> np.ndarray:
        labels = np.full(len(self.keys), -1, dtype=np.int64)
        for identity, key in enumerate(range(first_id, end_id)):
            _, (start, end), _, _ = unpack_record(self._record(key))
            labels[int(start) - 1:int(end) - 1] = identity
        if (labels < 0).any():  # identity records do not cover every image: read image headers instead
            labels = np.asarray([int(unpack_record(self._record(k))[1][0]) for k in self.keys], dtype=np.int64)
        return labels

    def _record(self, key: int) -> bytes:
        if self._handle is None or self._pid != os.getpid():  # forked DataLoader workers need their own offset
            self._handle, self._pid = open(self.rec_path, "rb"), os.getpid()
        if key not in self.offsets:
            raise UserError(f"{self.idx_path} has no entry for record {key}; regenerate the index.")
        return read_record(self._handle, self.offsets[key])

    def __getstate__(self):  # DataLoader workers reopen the file themselves
        state = dict(self.__dict__)
        state["_handle"] = None
        return state

    @property
    def groups(self) -> np.ndarray:
        return self.labels

    def read_bytes(self, index: int) -> bytes:
        return unpack_record(self._record(self.keys[index]))[3]

    def describe(self, index: int) -> str:
        return f"{self.rec_path.name} record {self.keys[index]}"

    def _digest_parts(self) -> Iterable[bytes]:
        yield f"{sha256_file(self.idx_path)}\n{sha256_file(self.rec_path)}\n".encode()


def open_train_set(path: str | Path) -> TrainSet:
    """Choose the reader from the path: `.csv` list, `.rec` file (or a folder with train.rec), identity folders."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return CSVList(path)
    if path.suffix.lower() == ".rec":
        return RecordIOSet(path)
    if path.is_dir() and (path / "train.rec").is_file():
        return RecordIOSet(path / "train.rec")
    if path.is_dir():
        return IdentityFolders(path)
    raise UserError(f"Training data {path} is neither a CSV list, a .rec file nor an identity folder tree.")
