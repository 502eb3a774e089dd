"""Peak memory of embedding MAD/PAD list images of varied sizes, for lists of growing length.

Each list names JPEG files of several sizes and aspect ratios (up to `--max-side` pixels). A child
process per length runs `overspec.evaluate.attack_detection.embed_paths` with the real loader path
(`fitted_batches`: the model's geometric transform per image, then batching) and a cheap stand-in
encoder (mean colour per image), so the number is the loading path's memory, not a model's. Its
peak resident memory should not grow with the list length: images are streamed a few batches at a
time. Prints readable lines, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

PREPROCESSING = {"size": [224, 224], "mean": [0.48145466, 0.4578275, 0.40821073],
                 "std": [0.26862954, 0.26130258, 0.27577711], "resize_mode": "shortest", "interpolation": "bicubic"}


def _write_images(folder: Path, n: int, max_side: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        if (folder / f"{i:06d}.jpg").exists():
            continue
        width, height = (int(v) for v in rng.integers(max_side // 4, max_side + 1, size=2))
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{i:06d}.jpg")


def _child(folder: str, n: int, batch_size: int, workers: int) -> None:
    """Embed the first `n` images; print seconds and peak RSS (MiB) as JSON."""
    import pandas as pd

    from overspec.embed.loader import Preprocess
    from overspec.evaluate.attack_detection import embed_paths

    paths = [str(Path(folder) / f"{i:06d}.jpg") for i in range(n)]
    frame = pd.DataFrame({"path": paths, "origin": [f"list row {i + 2}" for i in range(n)]})
    fit = Preprocess.from_preprocessing(PREPROCESSING).geometric
    start = time.perf_counter()
    features = embed_paths([frame], lambda batch: batch.reshape(len(batch), -1, 3).mean(axis=1), batch_size, fit,
                           workers)
    seconds = time.perf_counter() - start
    assert len(features) == n
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"n": n, "seconds": seconds, "peak_rss_mib": peak, "worker_peak_rss_mib": children}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, n, batch_size, workers = args.child
        _child(folder, int(n), int(batch_size), int(workers))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _write_images(Path(tmp), max(args.lengths), args.max_side)
        for n in args.lengths:
            out = subprocess.run([sys.executable, __file__, "--child", tmp, str(n), str(args.batch_size),
                                  str(args.workers)], capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{n:6d} images up to {args.max_side}px: {row['seconds']:.1f} s, peak RSS {row['peak_rss_mib']:.0f} MiB "
                  f"(main), {row['worker_peak_rss_mib']:.0f} MiB (largest worker)")
    growth = rows[-1]["peak_rss_mib"] - rows[0]["peak_rss_mib"]
    print(f"peak RSS grows by {growth:.0f} MiB from {rows[0]['n']} to {rows[-1]['n']} images")
    print(json.dumps({"benchmark": "attack_list_memory", "batch_size": args.batch_size, "workers": args.workers,
                      "max_side": args.max_side, "rows": rows, "peak_rss_growth_mib": growth}))


if __name__ == "__main__":
    main()
