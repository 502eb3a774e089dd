"""Image embeddings of every split of one dataset, written to HDF5.

The file layout is documented in `overspec.embed.store`, which reads it without torch. The hot
loop: `overspec.embed.loader` fills uint8 batches (workers, in-memory slicing, GPU JPEG decoding),
`overspec.embed.encoder` runs the model (autocast, out-of-memory fallback, torch.compile), and
`overspec.embed.partial` keeps finished chunks so that a killed job resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from overspec.data.readers import SplitReader, open_split
from overspec.embed.encoder import ImageEncoder, forward_rows, loader_batch_size, resolve_precision
from overspec.embed.loader import (
    BatchKey,
    Preprocess,
    SplitBatches,
    TransformedSamples,
    decode_on,
    eval_transform,
    in_memory_array,
    make_loader,
    plan_batches,
)
from overspec.embed.partial import PartialStore, source_digest
from overspec.embed.progress import progress_bar
from overspec.errors import UserError
from overspec.models.checkpoint import load_model
from overspec.provenance import atomic_path, read_json, sha256_file

__all__ = ["embed_dataset", "embed_splits", "eval_transform", "open_manifest_split"]

log = logging.getLogger(__name__)

_TransformedSplit = TransformedSamples  # the per-image fetch (older name, used by tests to inject failures)

H5_CHUNK_ROWS = 1024  # rows per HDF5 chunk of `features`
CHUNK_ROWS = 4096  # a finished chunk of the partial store is written at least every this many images...
CHUNK_SECONDS = 60.0  # ...or this many seconds, whichever comes first


def open_manifest_split(manifest_path: str | Path, split: str) -> tuple[dict[str, Any], SplitReader]:
    """The manifest and a reader for one split, checked against the listing recorded at preparation."""
    manifest = read_json(manifest_path)
    if split not in manifest["splits"]:
        raise UserError(f"Dataset {manifest['dataset']} has no split '{split}' (it has {', '.join(manifest['splits'])}).")
    reader = open_split(manifest["reader"], manifest["root"], split, tuple(manifest["classes"]),
                        manifest.get("options", {}))
    recorded = manifest["splits"][split]["listing_sha256"]
    if reader.listing_digest() != recorded:
        raise UserError(f"The files of {manifest['dataset']}/{split} under {manifest['root']} changed since "
                        f"{manifest_path} was written: rerun prepare_dataset for it (delete that manifest).")
    return manifest, reader


def embed_dataset(model_path: str | Path, manifest_path: str | Path, out_path: str | Path, device: str = "cpu",
                  batch_size: int = 256, num_workers: int = 0, provenance: dict[str, Any] | None = None, *,
                  precision: str = "auto", compile: bool = False, decode_on_device: bool = False) -> dict[str, int]:
    """Embed every split of a prepared dataset into one HDF5 file; returns the images per split.

    precision: "auto" (bf16/fp16 autocast on GPU, fp32 on CPU), "fp32", "bf16" or "fp16".
    compile: run the image tower through torch.compile. decode_on_device: decode JPEG files on
    the GPU (nvjpeg). A job that is killed resumes from its last finished chunk when rerun.
    """
    manifest = read_json(manifest_path)
    readers = {split: open_manifest_split(manifest_path, split)[1] for split in manifest["splits"]}
    loaded = load_model(model_path, device=device)
    resolved = resolve_precision(precision, torch.device(device))
    digest = source_digest(model=sha256_file(model_path), manifest=sha256_file(manifest_path), precision=resolved,
                           device_type=torch.device(device).type, compile=bool(compile),
                           decode_on_device=bool(decode_on_device))
    file_attrs = {"dataset": manifest["dataset"],
                  "preprocessing": json.dumps(loaded.card["preprocessing"], sort_keys=True),
                  "provenance": json.dumps(provenance or {}, sort_keys=True)}
    listing = {split: manifest["splits"][split]["listing_sha256"] for split in readers}
    return embed_splits(loaded.model, loaded.card["preprocessing"], readers, out_path, digest=digest,
                        file_attrs=file_attrs, listing_digests=listing, device=device, batch_size=batch_size,
                        num_workers=num_workers, precision=resolved, compile=compile,
                        decode_on_device=decode_on_device, description=f"embed {manifest['dataset']}")


@torch.inference_mode()
def embed_splits(model: torch.nn.Module, preprocessing: dict[str, Any], readers: dict[str, SplitReader],
                 out_path: str | Path, *, digest: str, file_attrs: dict[str, str] | None = None,
                 listing_digests: dict[str, str] | None = None, device: str = "cpu", batch_size: int = 256,
                 num_workers: int = 0, precision: str = "auto", compile: bool = False,
                 decode_on_device: bool = False, description: str = "embed") -> dict[str, int]:
    """Embed `readers` (split name -> reader) with `model` into `out_path` (the store layout).

    `digest` names what the features are computed from: finished chunks left by a killed job with
    the same digest are kept, others are discarded.
    """
    if batch_size < 1:
        raise UserError(f"Embedding batch size must be at least 1 (got {batch_size}): fix embed_batch_size.")
    dev = torch.device(device)
    names = list(readers)
    split_readers = [readers[name] for name in names]
    sizes = [len(reader) for reader in split_readers]
    store = PartialStore(out_path, digest, names)
    done = [min(store.done(name), size) for name, size in zip(names, sizes)]
    if any(done):
        log.info("resuming %s: %d of %d images already embedded", out_path, sum(done), sum(sizes))

    if any(d < s for d, s in zip(done, sizes)):
        _embed_remaining(model, preprocessing, split_readers, names, sizes, done, store, dev, batch_size, num_workers,
                         resolve_precision(precision, dev), compile, decode_on_device, description)
    _assemble(out_path, store, names, split_readers, file_attrs or {}, listing_digests or {})
    store.remove()
    return dict(zip(names, sizes))


def _loader_workers(split_readers: Sequence[SplitReader], num_workers: int) -> int:
    """Workers pay for reading and decoding files. In-memory splits are sliced whole (GPU) or
    resized per image in well under 1% of a forward pass (CPU), where workers would only take
    cores from the model: those are read on the main thread."""
    if all(in_memory_array(reader) is not None for reader in split_readers):
        return 0
    return max(0, num_workers)


def _embed_remaining(model, preprocessing, split_readers, names, sizes, done, store: PartialStore,
                     dev: torch.device, batch_size: int, num_workers: int, precision: str, compile: bool,
                     decode_on_device: bool, description: str) -> None:
    preprocess = Preprocess.from_preprocessing(preprocessing)
    on_gpu = dev.type == "cuda"
    batches = SplitBatches(split_readers, preprocess, resize_on_device=on_gpu and preprocess.on_tensors,
                           decode_on_device=decode_on_device and preprocess.on_tensors,
                           samples_class=_TransformedSplit)
    keys = plan_batches(sizes, done, loader_batch_size(dev, batch_size))
    loader = make_loader(batches, keys, _loader_workers(split_readers, num_workers), pin_memory=on_gpu)
    encoder = ImageEncoder(model, dev, preprocess.mean, preprocess.std, precision=precision, compile=compile,
                           rows=forward_rows(dev, batch_size))
    writer = _ChunkWriter(store, names)
    pending: list[tuple[BatchKey, torch.Tensor, Any]] = []
    bar = progress_bar(total=sum(sizes), initial=sum(done), description=description)
    try:
        for batch in loader:
            key = BatchKey(batch["split"], batch["start"], batch["stop"])
            features = encoder(_pixels_on_device(batch, batches, preprocess, dev))
            if on_gpu:  # copy back without waiting; the previous batch's copy is done by now
                host = torch.empty(features.shape, dtype=torch.float32, pin_memory=True)
                host.copy_(features, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                pending.append((key, host, event))
                while len(pending) > 1:
                    _finish(pending.pop(0), writer)
            else:
                writer.add(key, features.numpy())
            bar.update(key.stop - key.start)
        while pending:
            _finish(pending.pop(0), writer)
        writer.flush()
    finally:
        bar.close()


def _finish(item: tuple[BatchKey, torch.Tensor, Any], writer: _ChunkWriter) -> None:
    key, host, event = item
    event.synchronize()
    writer.add(key, host.numpy())


def _pixels_on_device(batch: dict[str, Any], batches: SplitBatches, preprocess: Preprocess,
                      dev: torch.device) -> torch.Tensor:
    """uint8 [B, 3, H, W] at the model's input size, on `dev` (a transposed view of the NHWC batch)."""
    if batch["kind"] == "pixels":
        return batch["data"].to(dev, non_blocking=True).permute(0, 3, 1, 2)
    if batch["kind"] == "raw":
        return preprocess.geometric_tensor(batch["data"].to(dev, non_blocking=True).permute(0, 3, 1, 2))
    samples, start = batches.samples[batch["split"]], batch["start"]
    return decode_on(batch["data"], preprocess.geometric_tensor, dev, fallback=lambda i: samples[start + i])


class _ChunkWriter:
    """Collects features of consecutive batches and writes them to the partial store as chunks."""

    def __init__(self, store: PartialStore, names: Sequence[str]) -> None:
        self.store, self.names = store, names
        self.split: int | None = None
        self.start = 0
        self.parts: list[np.ndarray] = []
        self.rows = 0
        self.last_write = time.monotonic()

    def add(self, key: BatchKey, features: np.ndarray) -> None:
        if self.split != key.split or self.start + self.rows != key.start:
            self.flush()
            self.split, self.start = key.split, key.start
        self.parts.append(np.array(features, dtype=np.float32, copy=True))
        self.rows += len(features)
        if self.rows >= CHUNK_ROWS or time.monotonic() - self.last_write >= CHUNK_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.store.write(self.names[self.split], self.start, np.concatenate(self.parts))
            self.start += self.rows
        self.parts, self.rows, self.last_write = [], 0, time.monotonic()


def _assemble(out_path: str | Path, store: PartialStore, names: Sequence[str], split_readers: Sequence[SplitReader],
              file_attrs: dict[str, str], listing_digests: dict[str, str]) -> None:
    """Write the final HDF5 from the finished chunks, in one fixed pattern (same bytes however the
    chunks were cut), atomically: the output exists only once it is whole."""
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w", track_order=True) as out:
        for key, value in file_attrs.items():
            out.attrs[key] = value
        for name, reader in zip(names, split_readers):
            group = out.create_group(name, track_order=True)
            if name in listing_digests:
                group.attrs["listing_sha256"] = listing_digests[name]
            n = len(reader)
            features, row = None, 0
            for block in store.rows(name, n, H5_CHUNK_ROWS):
                if features is None:
                    dim = block.shape[1]
                    features = group.create_dataset("features", shape=(n, dim), dtype="float32",
                                                    chunks=(min(n, H5_CHUNK_ROWS), dim), track_times=False)
                features[row:row + len(block)] = block
                row += len(block)
            group.create_dataset("labels", data=np.asarray(reader.labels(), np.int64), track_times=False)
            group.create_dataset("ids", data=np.array(reader.ids(), dtype=object), dtype=h5py.string_dtype(),
                                 track_times=False)
