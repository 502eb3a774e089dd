"""How long fixed-split carving and WebDataset indexing take at real dataset sizes.

Carving: ImageNet-1k's 1,281,167 training ids, 10 val images per class (the imagenet1k plan).
WebDataset: indexing tar headers of shards holding `--wds-samples` small webp images (no decoding),
then decoding 256 of them. Prints readable lines, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from overspec.data.splits import carve_indices
from overspec.data.wds import WdsSplit


def _write_shards(folder: Path, samples: int, per_shard: int = 1000) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buffer, "WEBP", lossless=True)
    image = buffer.getvalue()
    folder.mkdir(parents=True)
    for shard in range(0, samples, per_shard):
        with tarfile.open(folder / f"{shard // per_shard}.tar", "w") as tar:
            for index in range(shard, min(samples, shard + per_shard)):
                for name, data in ((f"s{index:07d}.webp", image), (f"s{index:07d}.cls", str(index % 10).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", type=int, default=1_281_167)
    parser.add_argument("--wds-samples", type=int, default=50_000)
    args = parser.parse_args()

    ids = [f"train/n{i % 1000:08d}/n{i % 1000:08d}_{i}.JPEG" for i in range(args.ids)]
    labels = [i % 1000 for i in range(args.ids)]
    start = time.perf_counter()
    parts = carve_indices(ids, labels, (("val", 10), ("train", None)), seed=0)
    carve_s = time.perf_counter() - start
    print(f"carve {args.ids:,} ids into val {len(parts['val']):,} / train {len(parts['train']):,}: {carve_s:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        _write_shards(Path(tmp) / "train", args.wds_samples)
        start = time.perf_counter()
        split = WdsSplit(Path(tmp) / "train", "train", tuple(str(i) for i in range(10)))
        index_s = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(256):
            split.load(i * (len(split) // 256))
        decode_ms = (time.perf_counter() - start) / 256 * 1000
    print(f"index {len(split):,} WebDataset samples: {index_s:.2f} s; decode one 32x32 webp: {decode_ms:.2f} ms")
    print(json.dumps({"carve_ids": args.ids, "carve_s": round(carve_s, 3), "wds_samples": len(split),
                      "wds_index_s": round(index_s, 3), "wds_decode_ms": round(decode_ms, 3)}))


if __name__ == "__main__":
    main()
