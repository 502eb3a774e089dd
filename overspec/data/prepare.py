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
from overspec.data.registry import SplitSource, get_dataset, split_source
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
                    image_size: int, provenance: dict[str, Any] | None = None, *,
                    reader: str | None = None) -> dict[str, Any]:
    """`reader="wds"` reads a real dataset from its CLIP_benchmark shards (`<data_root>/wds_<name>`)
    instead of its registry reader; the manifest records which, so every later step reads the same."""
    spec = get_dataset(name)
    manifest_path = Path(manifest_path)
    if spec.is_toy:
        if reader not in (None, spec.reader):
            raise UserError(f"Dataset {name} is generated, not read: it has no '{reader}' reader.")
        source = SplitSource(spec.reader, generate_toy_images(name, manifest_path.parent, seed, image_size),
                             spec.options, spec.splits)
    else:
        source = split_source(spec, data_root, reader=reader)
        if not source.root.exists():
            layout = source.options.get("layout") or spec.layout or "its standard layout"
            raise UserError(f"Dataset {name} was not found in {source.root}: expected {layout} "
                            f"(set data_root in the config, or remove {name} from datasets).")
    splits = {}
    for split in source.splits:
        split_reader = open_split(source.reader, source.root, split, spec.classes, source.options)
        labels = split_reader.labels()
        splits[split] = {
            "n": len(split_reader),
            "class_counts": [labels.count(i) for i in range(len(spec.classes))],
            "listing_sha256": split_reader.listing_digest(),
            # Hashing decoded pixels of a large real dataset costs a full pass; toy data is small.
            "content_sha256": _content_digest(split_reader) if spec.is_toy else None,
        }
    manifest = {
        "dataset": name,
        "reader": source.reader,
        "root": str(source.root),
        "options": source.options,
        "classes": list(spec.classes),
        "templates": list(spec.templates),
        "primary_metric": spec.primary_metric,
        "splits": splits,
        "generator": {"seed": seed, "image_size": image_size} if spec.is_toy else None,
        "provenance": provenance or {},
    }
    write_json(manifest_path, manifest)
    return manifest
