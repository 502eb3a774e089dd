"""insightface ``.bin`` verification pair sets (LFW, CFP-FP, CFP-FF, AgeDB-30, CALFW, CPLFW).

Format (insightface ``build_eval_pack.py``): a pickle of ``(bins, issame)`` where ``bins`` is a
list of encoded images (JPEG bytes), two per pair in order img1, img2, and ``issame`` one bool per
pair, so ``len(bins) == 2 * len(issame)`` and images ``2i``, ``2i+1`` form pair ``i``. The file
is read through a restricted unpickler; images are decoded only when accessed, to RGB (PIL), so
LFW costs its ~60 MB of JPEG bytes in memory, not gigabytes of float tensors.

Pair counts are asserted for the known benchmarks (by name: the file stem unless given); other
names (the toy world's sets) are checked only for the 2-images-per-pair structure.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from overspec.data.biometric.safe_pickle import restricted_load
from overspec.errors import UserError
from overspec.provenance import atomic_path

# Pairs per benchmark (insightface recognition/_datasets_/README.md); each half genuine, half impostor.
KNOWN_PAIR_COUNTS = {"lfw": 6000, "cfp_fp": 7000, "cfp_ff": 7000, "agedb_30": 6000, "calfw": 6000, "cplfw": 6000}


def benchmark_name(path: str | os.PathLike) -> str:
    """The benchmark a ``.bin`` file holds, from its stem: ``agedb_30.bin`` -> ``agedb_30``."""
    return Path(path).stem.lower().replace("-", "_")


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Encoded image bytes -> uint8 HxWx3 RGB."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise UserError(f"{where} is not a decodable image ({err}); re-download or rebuild the file.") from None


@dataclass(frozen=True)
class PairSet:
    """A verification pair set: encoded images (decoded on access) and one `issame` flag per pair."""

    name: str
    path: str
    encoded: tuple[bytes, ...]
    issame: np.ndarray  # [n_pairs] bool

    @property
    def n_pairs(self) -> int:
        return int(self.issame.size)

    def __len__(self) -> int:
        return len(self.encoded)

    def image(self, index: int) -> np.ndarray:
        """Image `index` (pair index // 2) as uint8 HxWx3 RGB."""
        return decode_image(self.encoded[index], f"image {index} of {self.path}")

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """All images in file order, as uint8 [B,H,W,3] batches (every image must have the same size)."""
        shape = None
        for start in range(0, len(self), batch_size):
            batch = [self.image(i) for i in range(start, min(start + batch_size, len(self)))]
            for offset, img in enumerate(batch):
                if shape is None:
                    shape = img.shape
                elif img.shape != shape:
                    raise UserError(
                        f"Image {start + offset} of {self.path} is {img.shape[1]}x{img.shape[0]}, the first is "
                        f"{shape[1]}x{shape[0]}: a pair set must hold aligned crops of one size; rebuild it."
                    )
            yield np.stack(batch)


def _as_issame(values: object, path: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or not (array.dtype == bool or (np.issubdtype(array.dtype, np.integer) and np.isin(array, (0, 1)).all())):
        raise UserError(f"{path}: the second element must be a list of booleans (issame), one per pair; rebuild the file.")
    return array.astype(bool)


def read_pair_set(path: str | os.PathLike, name: str | None = None) -> PairSet:
    """Read an insightface ``.bin`` pair set safely; assert its pair count if `name` is a known benchmark."""
    path_str = str(path)
    name = (name or benchmark_name(path)).lower()
    loaded = restricted_load(path, what="insightface .bin pair set")
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 2:
        raise UserError(f"{path_str} is not an insightface pair set: expected a pickled (images, issame) pair; rebuild it.")
    bins, issame = loaded
    if not isinstance(bins, (list, tuple)) or not all(isinstance(b, (bytes, bytearray)) for b in bins):
        raise UserError(f"{path_str}: the first element must be a list of encoded images (bytes); rebuild the file.")
    same = _as_issame(issame, path_str)
    if len(bins) != 2 * same.size:
        raise UserError(
            f"{path_str} holds {len(bins)} images for {same.size} pairs; a pair set needs exactly two images per pair."
        )
    expected = KNOWN_PAIR_COUNTS.get(name)
    if expected is not None and (same.size != expected or int(same.sum()) != expected // 2):
        raise UserError(
            f"{path_str} holds {same.size} pairs ({int(same.sum())} genuine), but {name} has {expected} "
            f"({expected // 2} genuine): the file is truncated or not {name}; re-download it."
        )
    return PairSet(name=name, path=path_str, encoded=tuple(bytes(b) for b in bins), issame=same)


def encode_image(image: np.ndarray, fmt: str = "JPEG", quality: int = 95) -> bytes:
    """uint8 HxWx3 RGB -> encoded bytes (deterministic for a given Pillow build)."""
    buffer = io.BytesIO()
    kwargs = {"quality": quality} if fmt.upper() in ("JPEG", "JPG") else {}
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def write_pair_set(
    path: str | os.PathLike, images: Sequence[np.ndarray], issame: Sequence[bool], fmt: str = "JPEG", quality: int = 95
) -> None:
    """Write a pair set in insightface's format: pickle of (list of encoded images, list of bools)."""
    if len(images) != 2 * len(issame):
        raise ValueError(f"need two images per pair, got {len(images)} images for {len(issame)} pairs")
    payload = ([encode_image(img, fmt, quality) for img in images], [bool(s) for s in issame])
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
