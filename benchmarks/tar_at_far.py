"""TAR@FAR at IJB-C scale: overspec's tail sort against the usual sklearn roc_curve approach.

15,639,051 impostor and 20,000 genuine synthetic float32 cosine-like scores; six operating points
(1e-6 ... 1e-1). The sklearn approach is insightface's: ``roc_curve`` then, per target, the ROC
point with the nearest FPR (``ijb_evals.py`` uses argmin on the flipped arrays). Both must agree
on the insightface value; overspec also gives the at-most value.

Run: python benchmarks/tar_at_far.py [--impostors N] [--genuines N] [--repeats R]
Prints readable lines, then one JSON object on the last line. Timings are wall-clock on whatever
else shares the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.metrics import roc_curve

from overspec.metrics import IJB_FAR_TARGETS, tar_at_far

TARGET_SECONDS = 1.0


def synthetic_scores(n_impostor: int, n_genuine: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    impostor = rng.standard_normal(n_impostor, dtype=np.float32) * np.float32(0.07)
    genuine = rng.standard_normal(n_genuine, dtype=np.float32) * np.float32(0.15) + np.float32(0.6)
    return genuine, impostor


def sklearn_nearest(genuine: np.ndarray, impostor: np.ndarray) -> list[float]:
    labels = np.r_[np.ones(genuine.size, dtype=np.int8), np.zeros(impostor.size, dtype=np.int8)]
    fpr, tpr, _ = roc_curve(labels, np.r_[genuine, impostor])
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)  # insightface: "select largest tpr at same fpr"
    return [float(tpr[np.argmin(np.abs(fpr - target))]) for target in IJB_FAR_TARGETS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impostors", type=int, default=15_639_051)
    parser.add_argument("--genuines", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    genuine, impostor = synthetic_scores(args.impostors, args.genuines)
    print(f"scores: {impostor.size:,} impostor, {genuine.size:,} genuine (float32); cpus: {os.cpu_count()}")
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        points = tar_at_far(genuine, impostor)
        times.append(time.perf_counter() - start)
    print(f"overspec tar_at_far: best {min(times):.3f} s, runs {', '.join(f'{t:.3f}' for t in times)}")

    start = time.perf_counter()
    reference = sklearn_nearest(genuine, impostor)
    sklearn_seconds = time.perf_counter() - start
    print(f"sklearn roc_curve + nearest point: {sklearn_seconds:.3f} s")

    for point, expected in zip(points, reference):
        print(
            f"FAR {point.far_target:.0e}: at-most TAR {point.tar:.5f} (FAR {point.achieved_far:.3e}, "
            f"{point.false_accepts} false accepts); nearest TAR {point.tar_nearest:.5f} "
            f"(FAR {point.far_nearest:.3e}); sklearn nearest {expected:.5f}"
        )
    max_diff = max(abs(p.tar_nearest - e) for p, e in zip(points, reference))
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        json.dumps(
            {
                "benchmark": "tar_at_far",
                "n_impostor": int(impostor.size),
                "n_genuine": int(genuine.size),
                "far_targets": list(IJB_FAR_TARGETS),
                "overspec_seconds": round(min(times), 4),
                "overspec_runs_seconds": [round(t, 4) for t in times],
                "sklearn_seconds": round(sklearn_seconds, 4),
                "speedup": round(sklearn_seconds / min(times), 1),
                "target_seconds": TARGET_SECONDS,
                "meets_target": min(times) < TARGET_SECONDS,
                "max_abs_diff_nearest_vs_sklearn": max_diff,
                "tar_at_most": [p.tar for p in points],
                "tar_nearest": [p.tar_nearest for p in points],
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
