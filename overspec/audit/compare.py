"""Comparing a reproduced artifact with the original: byte-identical, or within a stated tolerance.

Deterministic CPU steps must give identical bytes. Where a step ran on a GPU (or the reproduction
did), kernels may reorder floating-point sums, so values are compared with tolerances instead:

- arrays of floats (HDF5 features, model tensors): |a - b| <= FEATURE_ATOL + FEATURE_RTOL * |b|;
- metrics (JSON numbers, CSV cells; fractions in [0, 1]): within METRIC_ATOL = 0.001, i.e. +-0.1
  percentage point; Markdown/LaTeX views show percentages, so their numbers get +-0.1 directly;
- everything else (strings, integers, shapes, digest files) must match exactly.

Provenance blocks are left out of tolerant comparisons: they name the device and versions.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from overspec.provenance import sha256_file

FEATURE_ATOL = 1e-4
FEATURE_RTOL = 1e-3
METRIC_ATOL = 1e-3
PERCENT_ATOL = 0.1
IGNORED_KEYS = ("provenance", "sha256")  # the sidecar's own digest follows the artifact's bytes
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class Comparison:
    path: str
    mode: str  # "exact" (deterministic CPU step) or "tolerance"
    status: str  # identical | within tolerance | differs | missing
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "identical" or (self.mode == "tolerance" and self.status == "within tolerance")

    def line(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
        return f"{verdict} {self.path}: {self.status} ({self.mode}){': ' + self.detail if self.detail else ''}"


class _Differs(Exception):
    """Raised with a one-line description of the first difference found."""


def _within(a: np.ndarray, b: np.ndarray, atol: float, rtol: float, where: str) -> float:
    if a.shape != b.shape:
        raise _Differs(f"{where}: shape {a.shape} vs {b.shape}")
    if not (np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)):
        if not np.array_equal(a, b):
            raise _Differs(f"{where}: values differ")
        return 0.0
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)):
        raise _Differs(f"{where}: NaNs at different places")
    both = ~np.isnan(a64)
    diff = np.abs(a64[both] - b64[both])
    worst = float(diff.max()) if diff.size else 0.0
    if not np.all(diff <= atol + rtol * np.abs(b64[both])):
        raise _Differs(f"{where}: max |diff| {worst:.3g} exceeds atol {atol:g} + rtol {rtol:g}")
    return worst


def _hdf5_arrays(path: Path) -> dict[str, np.ndarray]:
    import h5py

    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: arrays.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def _tensor_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file

        return load_file(str(path))
    except (TypeError, ValueError):  # dtypes numpy lacks (bfloat16)
        from safetensors.torch import load_file as load_torch

        return {k: v.float().numpy() for k, v in load_torch(str(path)).items()}


def _compare_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    if sorted(a) != sorted(b):
        raise _Differs(f"different entries: {sorted(set(a) ^ set(b))[:5]}")
    worst = 0.0
    for name in sorted(a):
        worst = max(worst, _within(a[name], b[name], FEATURE_ATOL, FEATURE_RTOL, name))
    return worst


def _compare_json(a: Any, b: Any, where: str = "") -> float:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) - set(IGNORED_KEYS), set(b) - set(IGNORED_KEYS)
        if keys[0] != keys[1]:
            raise _Differs(f"{where or '/'}: different keys {sorted(keys[0] ^ keys[1])[:5]}")
        return max([_compare_json(a[k], b[k], f"{where}/{k}") for k in sorted(keys[0])], default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            raise _Differs(f"{where}: {len(a)} vs {len(b)} items")
        return max([_compare_json(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b))], default=0.0)
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            raise _Differs(f"{where}: {a!r} vs {b!r}")
        if math.isnan(a) or math.isnan(b):
            if not (math.isnan(a) and math.isnan(b)):
                raise _Differs(f"{where}: {a!r} vs {b!r}")
            return 0.0
        if abs(a - b) > METRIC_ATOL:
            raise _Differs(f"{where}: {a!r} vs {b!r} (more than {METRIC_ATOL:g} apart)")
        return abs(a - b)
    if a != b:
        raise _Differs(f"{where}: {a!r} vs {b!r}")
    return 0.0


def _compare_csv(a: Path, b: Path) -> float:
    import pandas as pd

    left, right = pd.read_csv(a), pd.read_csv(b)
    if list(left.columns) != list(right.columns) or left.shape != right.shape:
        raise _Differs(f"columns or shape differ: {list(left.columns)} {left.shape} vs {list(right.columns)} {right.shape}")
    worst = 0.0
    for column in left.columns:
        x, y = left[column], right[column]
        if pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
            worst = max(worst, _within(x.to_numpy(float), y.to_numpy(float), METRIC_ATOL, 0.0, f"column {column}"))
        elif not x.equals(y):
            raise _Differs(f"column {column}: values differ")
    return worst


def _compare_text_numbers(a: Path, b: Path) -> float:
    left, right = a.read_text(), b.read_text()
    if _NUMBER.split(left) != _NUMBER.split(right):
        raise _Differs("the text around the numbers differs")
    worst = 0.0
    for x, y in zip(_NUMBER.findall(left), _NUMBER.findall(right)):
        if abs(float(x) - float(y)) > PERCENT_ATOL:
            raise _Differs(f"{x} vs {y} (more than {PERCENT_ATOL:g} apart)")
        worst = max(worst, abs(float(x) - float(y)))
    return worst


def tolerant_difference(original: Path, reproduced: Path) -> float:
    """The largest difference found, or raise _Differs naming the first one out of tolerance."""
    suffix = original.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return _compare_arrays(_hdf5_arrays(original), _hdf5_arrays(reproduced))
    if suffix == ".safetensors":
        return _compare_arrays(_tensor_arrays(original), _tensor_arrays(reproduced))
    if suffix == ".json":
        return _compare_json(json.loads(original.read_text()), json.loads(reproduced.read_text()))
    if suffix == ".csv":
        return _compare_csv(original, reproduced)
    if suffix in (".md", ".tex"):
        return _compare_text_numbers(original, reproduced)
    if original.read_bytes() != reproduced.read_bytes():
        raise _Differs("bytes differ (compared exactly)")
    return 0.0


def compare_files(original: str | Path, reproduced: str | Path, exact: bool, name: str | None = None) -> Comparison:
    """Compare a reproduced file with the original: bytes when `exact`, else within tolerance.

    An exact comparison that fails still says how far apart the values are, which tells a
    non-deterministic step from a wrong one.
    """
    original, reproduced = Path(original), Path(reproduced)
    name = name or str(original)
    mode = "exact" if exact else "tolerance"
    for path in (original, reproduced):
        if not path.is_file():
            return Comparison(name, mode, "missing", f"{path} does not exist")
    if sha256_file(original) == sha256_file(reproduced):
        return Comparison(name, mode, "identical")
    try:
        worst = tolerant_difference(original, reproduced)
    except _Differs as exc:
        return Comparison(name, mode, "differs", str(exc))
    except Exception as exc:  # noqa: BLE001 - an unreadable reproduction is reported, the others still compared
        return Comparison(name, mode, "differs", f"could not be read ({type(exc).__name__}: {exc})")
    detail = f"max |diff| {worst:.3g}" + ("; bytes differ" if exact else "")
    return Comparison(name, mode, "within tolerance", detail)
