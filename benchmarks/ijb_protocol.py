"""Speed and memory of the IJB 1:1 protocol at real scale, on synthetic features (no images, no model).

Times template pooling (media mean, template sum), pair scoring by unique-template matrix
products, and TAR@FAR + AUC, for IJB-B-sized (default) or IJB-C-sized meta data.

Run: python benchmarks/ijb_protocol.py [ijbb|ijbc]   (readable lines, then one JSON object on the last line)
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from overspec.evaluate.ijb import score_template_pairs, template_features
from overspec.metrics import IJB_FAR_TARGETS, auc, tar_at_far

SCALES = {  # images, templates, genuine pairs, impostor pairs, unique first templates
    "ijbb": (227_630, 12_115, 10_270, 8_000_000, 1_845),
    "ijbc": (469_375, 23_124, 19_557, 15_638_932, 3_531),
}


def main(scale: str = "ijbb", dim: int = 512) -> None:
    n_images, n_templates, n_genuine, n_impostor, n_first = SCALES[scale]
    rng = np.random.default_rng(0)
    subjects = rng.integers(0, n_templates // 4, n_templates)
    centres = rng.standard_normal((n_templates // 4, dim)).astype(np.float32)
    templates = np.sort(rng.integers(0, n_templates, n_images))
    medias = templates * 8 + rng.integers(0, 3, n_images)
    features = centres[subjects[templates]] + 1.5 * rng.standard_normal((n_images, dim)).astype(np.float32)
    faceness = rng.uniform(0.1, 1.0, n_images).astype(np.float32)
    first = rng.choice(n_templates, n_first, replace=False)
    pairs = np.stack([rng.choice(first, n_genuine + n_impostor), rng.integers(0, n_templates, n_genuine + n_impostor)], 1)
    labels = (subjects[pairs[:, 0]] == subjects[pairs[:, 1]]).astype(np.int8)

    start = time.perf_counter()
    ids, feats = template_features(features, templates, medias, faceness)
    pooled = time.perf_counter()
    scores = score_template_pairs(ids, feats, pairs)
    scored = time.perf_counter()
    tar_at_far(scores[labels == 1], scores[labels == 0], IJB_FAR_TARGETS)
    auc(scores[labels == 1], scores[labels == 0])
    done = time.perf_counter()
    result = {
        "scale": scale,
        "pairs": int(pairs.shape[0]),
        "pool_s": round(pooled - start, 2),
        "score_s": round(scored - pooled, 2),
        "metrics_s": round(done - scored, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    for name, value in result.items():
        print(f"{name:>14}: {value}")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:2])
