"""Resumable embedding jobs: finished chunks of features kept next to the output until it is whole.

`results/embeddings/{model}/.{dataset}.partial/` holds `source.json` (the digest of what the
features are computed from) and one `.npy` file per finished chunk, `{split}/{start:010d}.npy`,
each written under a temporary name and renamed: a job killed at any moment leaves only whole
chunks, never a half-written file that looks finished. A rerun keeps the chunks whose digest
matches and embeds the rest; a partial folder from another model, dataset or precision is deleted.
The output HDF5 is assembled from the chunks in one fixed pattern, so a resumed job writes the same
bytes as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from overspec.provenance import sha256_bytes

log = logging.getLogger(__name__)

FORMAT = "overspec-embed-partial/1"


def partial_dir(out_path: str | Path) -> Path:
    """The hidden sibling folder that holds the partial work for `out_path`."""
    out = Path(out_path)
    return out.with_name(f".{out.stem}.partial")


def source_digest(**parts) -> str:
    """sha256 of the JSON of everything the features depend on (sorted keys)."""
    return sha256_bytes(json.dumps({"format": FORMAT, **parts}, sort_keys=True).encode())


class PartialStore:
    """The finished chunks of one embedding job."""

    def __init__(self, out_path: str | Path, digest: str, splits: Sequence[str]) -> None:
        self.root, self.digest, self.splits = partial_dir(out_path), digest, list(splits)
        marker = self.root / "source.json"
        if self.root.exists():
            try:
                kept = json.loads(marker.read_text())["digest"] == digest
            except (OSError, ValueError, KeyError):
                kept = False
            if not kept:
                log.info("discarding %s: it was computed from another model, dataset or setting", self.root)
                shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        if not marker.exists():
            tmp = marker.with_name(f".source.json.tmp-{os.getpid()}")
            tmp.write_text(json.dumps({"digest": digest, "format": FORMAT}, sort_keys=True))
            os.replace(tmp, marker)
        for split in self.splits:
            (self.root / split).mkdir(exist_ok=True)
            for stray in (self.root / split).glob(".*.tmp-*"):  # a chunk being written when a job died
                stray.unlink()

    def _chunks(self, split: str) -> list[tuple[int, Path]]:
        return sorted((int(p.stem), p) for p in (self.root / split).glob("*.npy"))

    def done(self, split: str) -> int:
        """How many leading images of `split` are finished (chunks must be contiguous from 0)."""
        end = 0
        for start, path in self._chunks(split):
            if start != end:
                break
            try:
                rows = np.load(path, mmap_mode="r").shape[0]
            except (OSError, ValueError):  # unreadable: recompute from here
                break
            end = start + rows
        return end

    def write(self, split: str, start: int, features: np.ndarray) -> None:
        final = self.root / split / f"{start:010d}.npy"
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(features, dtype=np.float32))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)

    def rows(self, split: str, n: int, block: int) -> Iterator[np.ndarray]:
        """Features of images [0, n) of `split` in blocks of `block` rows (the last may be shorter),
        reading one chunk at a time, so memory stays flat."""
        buffer: list[np.ndarray] = []
        held = 0
        position = 0
        for start, path in self._chunks(split):
            if start != position or position >= n:
                break
            chunk = np.load(path, mmap_mode="r")
            position += len(chunk)
            offset = 0
            while offset < len(chunk):
                take = min(block - held, len(chunk) - offset)
                buffer.append(np.asarray(chunk[offset:offset + take]))
                held += take
                offset += take
                if held == block:
                    yield np.concatenate(buffer)
                    buffer, held = [], 0
        if position != n:
            raise RuntimeError(f"{self.root}/{split} holds {position} finished images, expected {n}")
        if held:
            yield np.concatenate(buffer)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
