"""Record bob.measure's EER and FAR-threshold values on the tests' score sets (tests/reference_values/bob_measure.json).

bob.measure cannot be in the test extra: 6.1.1, its newest release, pins numpy~=1.26, while the
SLURM executor plugin the tests use needs numpy>=2.4.5. So its values are recorded once, in a
throwaway venv, and tests/test_metrics_roc.py and tests/test_metrics_verification.py compare
against this file everywhere. Run from the repository root:

    python3 -m venv /tmp/venv-bob && /tmp/venv-bob/bin/pip install bob.measure==6.1.1
    /tmp/venv-bob/bin/python tests/reference_values/make_bob_measure.py

Floats are written by repr, so they read back bit for bit.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

import bob.measure
import numpy as np

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from _reference_scores import GENUINE, IMPOSTOR, digest, roc_scores, verification_scores  # noqa: E402

COMMAND = "/tmp/venv-bob/bin/python tests/reference_values/make_bob_measure.py"
FAR_TARGETS = (0.001, 0.01, 0.1, 0.25)


def scores_case(genuine, impostor, **values) -> dict:
    return {"genuine_sha256": digest(genuine), "impostor_sha256": digest(impostor), **values}


def eer_case(genuine, impostor) -> dict:
    # bob's argument order is (negatives, positives); eer = (FAR + FRR) / 2 at bob.measure.eer_threshold.
    return scores_case(genuine, impostor, eer=float(bob.measure.eer(impostor, genuine)))


def far_threshold_case(genuine, impostor, targets) -> dict:
    """For each FAR target: bob's threshold and the FAR and FRR it achieves (accept: score >= threshold)."""
    points = []
    for target in targets:
        threshold = bob.measure.far_threshold(impostor, genuine, float(target))
        far, frr = bob.measure.farfrr(impostor, genuine, threshold)
        points.append({"far_target": float(target), "threshold": float(threshold), "far": float(far), "frr": float(frr)})
    return scores_case(genuine, impostor, points=points)


def cases() -> dict:
    found = {"eer_tie_fixture": eer_case(GENUINE, IMPOSTOR)}
    for seed in range(5):
        found[f"eer_roc_scores_seed{seed}"] = eer_case(*roc_scores(seed))
    for decimals in (None, 1):
        genuine, impostor = verification_scores(7, n_gen=300, n_imp=1000, decimals=decimals)
        found[f"far_threshold_verification_scores_seed7_decimals{decimals}"] = far_threshold_case(genuine, impostor, FAR_TARGETS)
    # bob.measure's own tests/test_error.py inputs: separable negatives 0..9 and positives 10..19,
    # then the same positives / 10 against negatives with four tied at 1.0.
    negatives, positives = np.arange(10.0), np.arange(10.0, 20.0)
    found["far_threshold_bob_separable"] = far_threshold_case(positives, negatives, np.linspace(0.0, 1.0, 21))
    tied = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0])
    found["far_threshold_bob_tied"] = far_threshold_case(positives / 10, tied, (0.4, 0.5))
    return found


def main() -> None:
    record = {
        "command": COMMAND,
        "package": "bob.measure",
        "version": version("bob.measure"),
        "numba": version("numba"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        "cases": cases(),
    }
    target = TESTS / "reference_values" / "bob_measure.json"
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(partial, target)  # a killed run never leaves a half file under the real name
    print(f"wrote {target}: {len(record['cases'])} cases, bob.measure {record['version']}")


if __name__ == "__main__":
    main()
