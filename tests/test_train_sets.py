"""Training-data readers: identity folders, MXNet RecordIO (without mxnet), CSV lists."""

import io
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from _finetune_fixtures import _one_torch_thread, make_csv_list, make_identity_folders  # noqa: F401 (autouse fixture)
from overspec.data.train_sets import (RECORDIO_MAGIC, CSVList, IdentityFolders, RecordIOSet, _write_raw,
                                      open_train_set, pack_record, read_record, unpack_record,
                                      write_insightface_recordio)
from overspec.errors import UserError


def test_identity_folders_labels_and_digest(tmp_path):
    root = make_identity_folders(tmp_path / "casia", identities=3, per_identity=2)
    (root / "id_000" / "notes.txt").write_text("not an image")
    ds = open_train_set(root)
    assert isinstance(ds, IdentityFolders)
    assert ds.class_names == ["id_000", "id_001", "id_002"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2]
    image, label = ds[3]
    assert image.mode == "RGB" and image.size == (16, 16) and label == 1
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    assert IdentityFolders(moved).digest() == ds.digest()  # no absolute paths in the digest
    Image.new("RGB", (16, 16)).save(moved / "id_001" / "00.png")
    assert IdentityFolders(moved).digest() != ds.digest()


def test_csv_list_published_and_numeric_labels(tmp_path):
    csv_path = make_csv_list(tmp_path, per_class=2)
    ds = open_train_set(csv_path)
    assert isinstance(ds, CSVList) and ds.num_classes == 2
    assert ds.labels.tolist() == [1, 0, 1, 0]  # bonafide = 1, attack = 0
    numeric = tmp_path / "numeric.csv"
    numeric.write_text("path,label,method\nimg/bonafide_00.png,1,\nimg/attack_00.png,0,toy\n")  # the toy world's columns
    assert CSVList(numeric).labels.tolist() == [1, 0]
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nimg/bonafide_00.png,maybe\nimg/attack_00.png,0\n")
    with pytest.raises(UserError, match="row 2 has label 'maybe'"):
        CSVList(bad)
    one_class = tmp_path / "one.csv"
    one_class.write_text("path,label\nimg/bonafide_00.png,bonafide\n")
    with pytest.raises(UserError, match="needs both classes"):
        CSVList(one_class)
    missing = tmp_path / "missing.csv"
    missing.write_text("path,label\nimg/nope.png,1\nimg/attack_00.png,0\n")
    with pytest.raises(UserError, match="nope.png"):
        CSVList(missing)


def test_recordio_bytes_follow_the_dmlc_layout():
    buf = io.BytesIO()
    _write_raw(buf, b"abcde")
    assert buf.getvalue() == struct.pack("<II", 0xCED7230A, 5) + b"abcde\0\0\0"


@pytest.mark.parametrize("positions", [[0], [8], [4, 12], [16]])
def test_recordio_splits_and_rejoins_records_holding_the_magic(positions):
    magic = struct.pack("<I", RECORDIO_MAGIC)
    data = bytearray(b"0123456789abcdefghij")
    for p in positions:
        data[p:p + 4] = magic
    buf = io.BytesIO()
    _write_raw(buf, bytes(data))
    _write_raw(buf, b"next")
    raw = buf.getvalue()
    first_flag = struct.unpack("<I", raw[4:8])[0] >> 29
    assert first_flag == 1  # split into a multi-part record, as dmlc does
    assert read_record(buf, 0) == bytes(data)
    assert read_record(buf, len(raw) - 12) == b"next"


@pytest.mark.parametrize("position", [1, 2, 3, 17])
def test_recordio_keeps_an_unaligned_magic_inside_one_record(position):
    data = bytearray(b"0123456789abcdefghijk")
    data[position:position + 4] = struct.pack("<I", RECORDIO_MAGIC)
    buf = io.BytesIO()
    _write_raw(buf, bytes(data))
    assert struct.unpack("<I", buf.getvalue()[4:8])[0] == len(data)  # one whole record (cflag 0)
    assert read_record(buf, 0) == bytes(data)


def test_ir_header_pack_unpack():
    assert unpack_record(pack_record(7.0, b"img", rid=3)) == (0, (7.0,), 3, b"img")
    assert unpack_record(pack_record([5.0, 9.0], b"x")) == (2, (5.0, 9.0), 0, b"x")
    assert len(pack_record(1.0, b"")) == 24  # mxnet IRHeader 'IfQQ'


def _jpeg(value: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((12, 12, 3), value, dtype=np.uint8)).save(out, format="JPEG")
    return out.getvalue()


def test_insightface_recordio_round_trip(tmp_path):
    samples = [(2, _jpeg(200)), (0, _jpeg(10)), (1, _jpeg(100)), (0, _jpeg(20)), (2, _jpeg(210))]
    rec = write_insightface_recordio(tmp_path / "train.rec", samples)
    ds = open_train_set(tmp_path)  # a folder with train.rec/train.idx
    assert isinstance(ds, RecordIOSet) and len(ds) == 5 and ds.num_classes == 3
    assert ds.labels.tolist() == [0, 0, 1, 2, 2]  # records are written grouped by identity
    means = [np.asarray(ds[i][0]).mean() for i in range(5)]
    assert means == pytest.approx([10, 20, 100, 200, 210], abs=3)
    assert open_train_set(rec).digest() == ds.digest()


def test_recordio_without_header_record_scans_labels(tmp_path):
    rec, lines = tmp_path / "plain.rec", []
    with open(rec, "wb") as handle:
        for key, label in enumerate([3, 1, 3]):
            lines.append(f"{key}\t{handle.tell()}\n")
            _write_raw(handle, pack_record(float(label), _jpeg(50 * key)))
    rec.with_suffix(".idx").write_text("".join(lines))
    ds = RecordIOSet(rec)
    assert ds.labels.tolist() == [3, 1, 3] and ds.num_classes == 4


def test_recordio_with_wrong_index_is_a_user_error(tmp_path):
    write_insightface_recordio(tmp_path / "train.rec", [(0, _jpeg(1)), (1, _jpeg(2))])
    (tmp_path / "train.idx").write_text("0\t8\n1\t40\n")
    with pytest.raises(UserError, match="bad magic"):
        RecordIOSet(tmp_path / "train.rec")


def test_recordio_reads_correctly_in_forked_workers(tmp_path):
    from torch.utils.data import DataLoader

    samples = [(k % 3, _jpeg(10 * k)) for k in range(12)]
    ds = RecordIOSet(write_insightface_recordio(tmp_path / "train.rec", samples))
    ds.read_bytes(0)  # the parent opens the file before the workers fork
    loader = DataLoader(range(len(ds)), batch_size=None, num_workers=2, collate_fn=lambda i: (i, ds.read_bytes(i)))
    assert dict(loader) == {i: ds.read_bytes(i) for i in range(len(ds))}
