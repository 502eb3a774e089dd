"""Writing a biometric result: the metrics JSON plus the per-sample scores CSV beside it.

``results/biometrics/{model}/{task}/{benchmark}.json`` gets ``{benchmark}.scores.csv`` next to
it, one row per scored sample (pair, template pair, image or video) with its id, label and score,
so every table can be recomputed without the model. The CSV is written first and its sha256 goes
into the JSON, so a JSON on disk always names the scores it was computed from.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from overspec.provenance import atomic_path, sha256_file, write_json, write_sidecar


def scores_path(json_path: str | os.PathLike, compress: bool = False) -> Path:
    """``.../lfw.json`` -> ``.../lfw.scores.csv`` (``.scores.csv.gz`` when compressed, e.g. IJB-C's 15.7M pairs)."""
    path = Path(json_path)
    return path.with_name(path.stem + (".scores.csv.gz" if compress else ".scores.csv"))


def write_scores_csv(path: str | os.PathLike, scores: pd.DataFrame) -> str:
    """Write the table atomically (floats at full precision, no index; gzip if the name ends in .gz); return its sha256.

    The gzip header carries no file name and mtime 0, so identical tables give identical bytes.
    """
    with atomic_path(path) as tmp:
        if str(path).endswith(".gz"):
            with (
                open(tmp, "wb") as raw,
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed,
                io.TextIOWrapper(packed, encoding="utf-8", newline="") as text,
            ):
                scores.to_csv(text, index=False, lineterminator="\n")
        else:
            scores.to_csv(tmp, index=False, lineterminator="\n")
    return sha256_file(path)


def write_biometric_result(
    json_path: str | os.PathLike,
    result: Mapping[str, Any],
    scores: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    compress: bool = False,
) -> dict[str, Any]:
    """Write ``scores`` beside ``json_path``, then the result JSON naming the scores file and its digest."""
    csv_path = scores_path(json_path, compress)
    digest = write_scores_csv(csv_path, scores)
    record = dict(result)
    record["scores_file"] = {"path": csv_path.name, "sha256": digest, "rows": len(scores)}
    if provenance is not None:
        record["provenance"] = dict(provenance)
        write_sidecar(csv_path, provenance)
    write_json(json_path, record)
    return record
