"""Small datasets written in each reader's real on-disk format (tiny images, a few per class).

Every image encodes its own label and index in its pixels (`pattern`), so a test can check that a
reader returns the right image for each id, not only the right label.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def pattern(label: int, index: int, size: int = 8, channels: int = 3) -> np.ndarray:
    """A flat image whose colour says (label, index): R = label, G = index, B = 7."""
    image = np.zeros((size, size, channels), dtype=np.uint8)
    image[..., 0] = label
    if channels > 1:
        image[..., 1] = index
        image[..., 2] = 7
    return image[..., 0] if channels == 1 else image


def class_colour(label: int, index: int = 0, size: int = 8, channels: int = 3) -> np.ndarray:
    """A flat image in one colour per class (`index` ignored): classes even an untrained model separates."""
    rgb = np.array([(37 * label + 20) % 256, (91 * label + 140) % 256, (151 * label + 60) % 256], dtype=np.uint8)
    image = np.broadcast_to(rgb, (size, size, 3)).copy()
    return image[..., 0] if channels == 1 else image


def accept_torchvision_checksums(monkeypatch) -> None:
    """torchvision md5-checks CIFAR, STL10, SVHN and Flowers102 files, so fabricated ones need this."""
    for module in ("cifar", "stl10", "svhn", "flowers102"):
        monkeypatch.setattr(f"torchvision.datasets.{module}.check_integrity", lambda *a, **k: True)


def decode_pattern(image: Image.Image) -> tuple[int, int]:
    r, g, _ = np.asarray(image.convert("RGB"))[2, 2]
    return int(r), int(g)


def save_image(path: Path, label: int, index: int, size: int = 8, draw=pattern) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".ppm": "PPM", ".webp": "WEBP"}[path.suffix.lower()]
    extra = {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(draw(label, index, size)).save(path, fmt, **extra)
    return path


def near(value: int, expected: int) -> bool:
    return abs(value - expected) <= 2  # JPEG rounding


# --- arrays in one file ------------------------------------------------------------------------


def write_cifar(root: Path, names: list[str], per_batch: int = 6, hundred: bool = False, draw=pattern) -> Path:
    """The python pickles of cifar-10-batches-py / cifar-100-python (protocol 2, str keys, as published).

    Batch b's image i has label (b + i) % len(names) and is `draw(label, b * per_batch + i, 32)`."""
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    label_key = "fine_labels" if hundred else "labels"
    batches = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, batch in enumerate(batches):
        labels = [(b + i) % len(names) for i in range(per_batch)]
        data = np.stack([draw(label, b * per_batch + i, 32).transpose(2, 0, 1).reshape(-1)
                         for i, label in enumerate(labels)])
        entry = {"batch_label": batch, label_key: labels, "data": data,
                 "filenames": [f"img_{b}_{i}.png" for i in range(per_batch)]}
        if hundred:
            entry["coarse_labels"] = [0] * per_batch
        with open(folder / batch, "wb") as handle:
            pickle.dump(entry, handle, protocol=2)
    meta = ({"fine_label_names": names, "coarse_label_names": ["c"]} if hundred
            else {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072})
    with open(folder / ("meta" if hundred else "batches.meta"), "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return folder


def _idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format: magic 0x0000 08 <ndim>, big-endian sizes, uint8 data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, train: int = 20, test: int = 8) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = np.arange(n) % 10
        _idx(raw / f"{prefix}-images-idx3-ubyte", np.stack([pattern(l, i, 28, 1) for i, l in enumerate(labels)]))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root / "MNIST"


def write_stl10(root: Path, names: list[str], train: int = 20, test: int = 6) -> Path:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for split, n in (("train", train), ("test", test)):
        labels = np.arange(n) % 10
        images = np.stack([pattern(l, i, 96).transpose(2, 1, 0) for i, l in enumerate(labels)])  # column-major
        (folder / f"{split}_X.bin").write_bytes(images.tobytes())
        (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())  # 1-based
    (folder / "unlabeled_X.bin").write_bytes(b"")
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    return folder


def write_svhn(root: Path, train: int = 20, test: int = 6) -> Path:
    from scipy.io import savemat

    folder = root / "svhn"
    folder.mkdir(parents=True)
    for split, n in (("train", train), ("test", test)):
        digits = np.arange(n) % 10
        images = np.stack([pattern(d, i, 32) for i, d in enumerate(digits)], axis=-1)  # [32, 32, 3, N]
        savemat(folder / f"{split}_32x32.mat", {"X": images, "y": np.where(digits == 0, 10, digits)[:, None]})
    return folder


# --- image files with metadata ----------------------------------------------------------------


def write_food101(root: Path, classes: list[str], images: dict[str, dict[str, int]]) -> Path:
    """`images[split][class] = count`; every other class is listed with no images."""
    folder = root / "food-101"
    (folder / "meta").mkdir(parents=True)
    for split, counts in images.items():
        meta = {c: [] for c in classes}
        for c, n in counts.items():
            for i in range(n):
                save_image(folder / "images" / c / f"{split}{i}.jpg", classes.index(c), i)
                meta[c].append(f"{c}/{split}{i}")
        (folder / "meta" / f"{split}.json").write_text(json.dumps(meta))
    return folder


def write_fgvc(root: Path, variants: list[str], per_split: dict[str, list[int]]) -> Path:
    """`per_split[split]` = the variant index of each image."""
    data = root / "fgvc-aircraft-2013b" / "data"
    (data / "images").mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    number = 1000000
    for split, labels in per_split.items():
        lines = []
        for i, label in enumerate(labels):
            number += 1
            save_image(data / "images" / f"{number}.jpg", label, i)
            lines.append(f"{number} {variants[label]}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    return data.parent


def write_pets(root: Path, breeds: list[str], trainval: int = 2, test: int = 1) -> Path:
    """`breeds` in class-id order, as file-name prefixes (e.g. 'american_bulldog')."""
    folder = root / "oxford-iiit-pet"
    (folder / "annotations").mkdir(parents=True)
    for split, n in (("trainval", trainval), ("test", test)):
        lines = []
        for label, breed in enumerate(breeds):
            for i in range(n):
                image_id = f"{breed}_{split}{i}"
                save_image(folder / "images" / f"{image_id}.jpg", label, i)
                species = 1 if breed[0].isupper() else 2
                lines.append(f"{image_id} {label + 1} {species} 1")
        (folder / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


def write_gtsrb(root: Path, classes: int = 43, tracks: int = 4, frames: int = 3, test: int = 5) -> Path:
    base = root / "gtsrb"
    for label in range(classes):
        for track in range(tracks if label < 2 else 1):
            for frame in range(frames if label < 2 else 1):
                save_image(base / "GTSRB" / "Training" / f"{label:05d}" / f"{track:05d}_{frame:05d}.ppm",
                           label, track * frames + frame)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i in range(test):
        save_image(base / "GTSRB" / "Final_Test" / "Images" / f"{i:05d}.ppm", i % classes, i)
        rows.append(f"{i:05d}.ppm;8;8;0;0;7;7;{i % classes}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    return base


def write_class_tree(folder: Path, counts: dict[str, int], labels: dict[str, int], suffix: str = ".jpg",
                     prefix: str = "image_", draw=pattern) -> Path:
    """`<folder>/<class>/<prefix>NNNN<suffix>` with `counts[class]` images of pattern label `labels[class]`."""
    for name, n in counts.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            save_image(folder / name / f"{prefix}{i + 1:04d}{suffix}", labels[name], i, draw=draw)
    return folder


SUN397_CLASS_FILE = Path(__file__).parent / "data" / "sun397_ClassName.txt"  # the real file, in its own order


def sun397_class_lines() -> list[str]:
    """SUN397's ClassName.txt as published: '/<letter>/<class path>' sorted by path ('/' before '_')."""
    return SUN397_CLASS_FILE.read_text().splitlines()


def write_sun397(root: Path, lines: list[str], counts: dict[int, int], draw=pattern, size=lambda i: 8) -> Path:
    """ClassName.txt with `lines` ('/<letter>/<class path>') and `counts[line index]` images of each class,
    drawn with the line index as label; `size(i)` is the side of image i (real SUN397 sizes vary)."""
    folder = root / "SUN397"
    folder.mkdir(parents=True)
    (folder / "ClassName.txt").write_text("\n".join(lines) + "\n")
    for label, n in counts.items():
        for i in range(n):
            save_image(folder / lines[label].lstrip("/") / f"sun_{label:03d}{i:04d}.jpg", label, i, size(i), draw)
    return folder


def write_flowers(root: Path, labels: list[int], setid: dict[str, list[int]]) -> Path:
    """jpg/image_#####.jpg, imagelabels.mat (1-based labels) and setid.mat (1-based image ids)."""
    from scipy.io import savemat

    folder = root / "flowers-102"
    for image_id, label in enumerate(labels, 1):
        save_image(folder / "jpg" / f"image_{image_id:05d}.jpg", label, image_id)
    savemat(folder / "imagelabels.mat", {"labels": np.array([labels]) + 1})
    savemat(folder / "setid.mat", {"trnid": np.array([setid["train"]]), "valid": np.array([setid["val"]]),
                                   "tstid": np.array([setid["test"]])})
    return folder


def write_cars(root: Path, class_names: list[str], train: list[int], test: list[int]) -> Path:
    """devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat (1-based classes)."""
    from scipy.io import savemat

    folder = root / "stanford_cars"
    (folder / "devkit").mkdir(parents=True)
    savemat(folder / "devkit" / "cars_meta.mat", {"class_names": np.array([class_names], dtype=object)})
    for split, labels, mat in (("train", train, folder / "devkit" / "cars_train_annos.mat"),
                               ("test", test, folder / "cars_test_annos_withlabels.mat")):
        records = np.zeros((1, len(labels)), dtype=[("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"),
                                                    ("bbox_y2", "O"), ("class", "O"), ("fname", "O")])
        for i, label in enumerate(labels):
            fname = f"{i + 1:05d}.jpg"
            save_image(folder / f"cars_{split}" / fname, label, i)
            records[0, i] = (0, 0, 7, 7, label + 1, fname)
        savemat(mat, {"annotations": records})
    return folder


def write_fer2013(root: Path, rows: list[tuple[int, str]]) -> Path:
    """fer2013.csv rows (emotion, Usage); pixels encode (emotion, row number)."""
    folder = root / "fer2013"
    folder.mkdir(parents=True)
    lines = ["emotion,pixels,Usage"]
    for i, (emotion, usage) in enumerate(rows):
        pixels = " ".join(str(v) for v in pattern(emotion, i, 48, 1).reshape(-1))
        lines.append(f"{emotion},{pixels},{usage}")
    (folder / "fer2013.csv").write_text("\n".join(lines) + "\n")
    return folder


def write_pcam(root: Path, sizes: dict[str, int]) -> Path:
    import h5py

    folder = root / "pcam"
    folder.mkdir(parents=True)
    for split, n in sizes.items():
        labels = np.arange(n) % 2
        with h5py.File(folder / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as f:
            f["x"] = np.stack([pattern(l, i, 96) for i, l in enumerate(labels)])
        with h5py.File(folder / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as f:
            f["y"] = labels.reshape(-1, 1, 1, 1).astype(np.uint8)
    return folder


# --- WebDataset shards ------------------------------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_wds(root: Path, classnames: list[str], splits: dict[str, list[int]], per_shard: int = 4,
              image_format: str = "webp", draw=pattern) -> Path:
    """CLIP_benchmark's export: <split>/{0..N-1}.tar + nshards.txt, keys s0000000, .webp + .cls members."""
    root.mkdir(parents=True)
    (root / "classnames.txt").write_text("\n".join(classnames) + "\n")
    (root / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    for split, labels in splits.items():
        (root / split).mkdir()
        shards = [labels[i:i + per_shard] for i in range(0, len(labels), per_shard)]
        for s, shard_labels in enumerate(shards):
            with tarfile.open(root / split / f"{s}.tar", "w") as tar:
                for j, label in enumerate(shard_labels):
                    index = s * per_shard + j
                    buffer = io.BytesIO()
                    Image.fromarray(draw(label, index)).save(buffer, image_format.upper(), lossless=True)
                    _add(tar, f"s{index:07d}.{image_format}", buffer.getvalue())
                    _add(tar, f"s{index:07d}.cls", f"{label}".encode())
        (root / split / "nshards.txt").write_text(f"{len(shards)}\n")
    return root
