"""Score sets the metric tests compare against reference libraries, and the reference values recorded on them.

numpy only: tests/reference_values/make_*.py import this module in a throwaway venv that holds the
reference library (and not overspec), so the recorded values and the tests use the same inputs.
Each recorded input carries the sha256 of its float64 bytes, checked before any value is compared,
so a change of generator (or of numpy's random stream) fails loudly instead of comparing other scores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

REFERENCE_VALUES = Path(__file__).resolve().parent / "reference_values"

# The notes' §6.2 fixture: genuine/bona fide and impostor/attack with a cross-class tie at 0.5.
GENUINE = np.array([0.5, 0.5, 0.9])
IMPOSTOR = np.array([0.5, 0.1, 0.2])


def roc_scores(seed, n_gen=204, n_imp=1000, decimals=None):
    """Genuine N(1.5, 1) and impostor N(0, 1), the sizes of a small MAD test set."""
    rng = np.random.default_rng(seed)
    genuine, impostor = rng.normal(1.5, 1.0, n_gen), rng.normal(0.0, 1.0, n_imp)
    if decimals is not None:  # coarse rounding creates ties within and across classes
        genuine, impostor = np.round(genuine, decimals), np.round(impostor, decimals)
    return genuine, impostor


def verification_scores(seed, n_gen=2000, n_imp=20000, decimals=None, dtype=np.float64):
    """Genuine N(2.5, 1) and impostor N(0, 1), optionally rounded (ties) or in float32."""
    rng = np.random.default_rng(seed)
    genuine = rng.normal(2.5, 1.0, n_gen).astype(dtype)
    impostor = rng.normal(0.0, 1.0, n_imp).astype(dtype)
    if decimals is not None:
        genuine, impostor = np.round(genuine, decimals), np.round(impostor, decimals)
    return genuine, impostor


def digest(scores) -> str:
    """sha256 of the scores as little-endian float64: the identity of a recorded input."""
    return hashlib.sha256(np.ascontiguousarray(scores, dtype="<f8").tobytes()).hexdigest()


def recorded(name: str) -> dict:
    """tests/reference_values/<name>.json: how it was made, and its cases by key."""
    path = REFERENCE_VALUES / f"{name}.json"
    record = json.loads(path.read_text())
    missing = {"command", "package", "version", "python", "numpy", "date", "cases"} - record.keys()
    assert not missing, f"{path} lacks {sorted(missing)}: regenerate it with {REFERENCE_VALUES}/make_{name}.py"
    return record


def recorded_case(record: dict, key: str, genuine, impostor) -> dict:
    """One recorded case, after checking that it was computed on exactly these scores."""
    case = record["cases"][key]
    assert (case["genuine_sha256"], case["impostor_sha256"]) == (digest(genuine), digest(impostor)), (
        f"reference case {key!r} was recorded on other scores than the test makes now: "
        f"rerun {record['command']!r} so the recorded values and the test's inputs agree"
    )
    return case
