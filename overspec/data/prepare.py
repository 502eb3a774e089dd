"""`prepare_dataset`: generate a toy dataset, or check a real one, and write its manifest.

The manifest records, per split, the number of images, the class counts, the digest of the listing
(ids and labels; checked again by every reader) and the digest of the file contents (provenance).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from overspec.data.readers import open_split
from overspec.data.registry import get_dataset
from overspec.data.toy.general import write_toy_dataset
from overspec.errors import UserError
from overspec.provenance import write_json


def _content_digest(reader) -> str:
    digest = hashlib.sha256()
    for index in range(len(reader)):
        digest.update(reader.ids()[index].encode() + b"\0")
        digest.update(reader.load(index).tobytes())
    return digest.hexdigest()


def generate_toy_images(name: str, out_dir: Path, seed: int, image_size: int) -> Path:
    """Write the toy dataset into `out_dir/images`, via a temporary folder renamed at the end."""
    final = out_dir / "images"
    tmp = out_dir / f".images.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_toy_dataset(name, tmp, seed=seed, size=image_size)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def prepare_dataset(name: str, manifest_path: str | Path, data_root: str | Path, seed: int,
                    image_size: int, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = get_dataset(name)
    manifest_path = Path(manifest_path)
    if spec.is_toy:
        root = generate_toy_images(name, manifest_path.parent, seed, image_size)
    else:
        root = Path(data_root) / (spec.location or name)
        if not root.exists():
            raise UserError(f"Dataset {name} was not found in {root}: expected {spec.layout or 'its standard layout'} "
                            f"(set data_root in the config, or remove {name} from datasets).")
    splits = {}
    for split in spec.splits:
        reader = open_split(spec.reader, root, split, spec.classes, spec.options)
        labels = reader.labels()
        splits[split] = {
            "n": len(reader),
            "class_counts": [labels.count(i) for i in range(len(spec.classes))],
            "listing_sha256": reader.listing_digest(),
            # Hashing decoded pixels of a large real dataset costs a full pass; toy data is small.
            "content_sha256": _content_digest(reader) if spec.is_toy else None,
        }
    manifest = {
        "dataset": name,
        "reader": spec.reader,
        "root": str(root),
        "options": spec.options,
        "classes": list(spec.classes),
        "templates": list(spec.templates),
        "primary_metric": spec.primary_metric,
        "splits": splits,
        "generator": {"seed": seed, "image_size": image_size} if spec.is_toy else None,
        "provenance": provenance or {},
    }
    write_json(manifest_path, manifest)
    return manifest
