"""Speed of the procedural toy faces: faces per second on one core, batched and one at a time.

Run: python benchmarks/toy_faces.py   (prints readable lines, then one JSON object on the last line)
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from overspec.data.toy import faces


def _rate(fn, count: int) -> float:
    start = time.process_time()  # CPU time: robust to other processes sharing the machine
    fn()
    return count / (time.process_time() - start)


def main() -> None:
    rng = np.random.default_rng(0)
    ids = faces.sample_identities(2048, rng)
    faces.render_faces(ids[:8], rng)  # warm caches (grids, noise bank)
    result = {
        "faces_per_s_batched_32": _rate(lambda: faces.render_faces(ids, rng, 32), len(ids)),
        "faces_per_s_batched_64": _rate(lambda: faces.render_faces(ids[:512], rng, 64), 512),
        "faces_per_s_single_32": _rate(lambda: [faces.render_face(i, rng, 32) for i in ids[:1000]], 1000),
        "morphs_per_s_32": _rate(lambda: [faces.morph(ids[k], ids[k + 1], rng, 32, m)
                                          for k in range(300) for m in faces.MORPH_METHODS], 900),
        "attacks_per_s_32": _rate(lambda: [faces.present_attack(img, rng, kind)
                                           for img in faces.render_faces(ids[:300], rng, 32)
                                           for kind in faces.ATTACK_KINDS], 900),
    }
    result["load_average_1min"] = os.getloadavg()[0]  # other processes on the machine slow every number above
    for name, value in result.items():
        print(f"{name:>26}: {value:8.1f}")
    print(json.dumps({k: round(v, 1) for k, v in result.items()}, sort_keys=True))


if __name__ == "__main__":
    main()
