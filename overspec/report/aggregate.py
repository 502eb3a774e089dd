"""Collect the per-job result JSONs into the study's long-form metrics table and write the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from overspec.provenance import read_json
from overspec.report.schema import METRICS_COLUMNS
from overspec.report.tables import write_long_tables

CLASSIFICATION_METRICS = ("top1", "top5", "mean_per_class_recall", "primary")


def classification_rows(result: Mapping[str, Any], model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per metric of a zero-shot or linear-probe result."""
    base = {"model": model["model"], "backbone": model["backbone_label"], "adaptation": model["adaptation"],
            "protocol": result["protocol"], "dataset": result["dataset"], "n": int(result["n"])}
    rows = [{**base, "metric": name, "value": float(result[name])} for name in CLASSIFICATION_METRICS]
    if "primary_ci95" in result:
        low, high = result["primary_ci95"]
        rows += [{**base, "metric": "primary_ci_low", "value": float(low)},
                 {**base, "metric": "primary_ci_high", "value": float(high)}]
    return rows


def collect_metrics(result_paths: Iterable[str | Path], models: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for path in result_paths:
        result = read_json(path)
        rows += classification_rows(result, models[result["model"]])
    return pd.DataFrame(rows, columns=list(METRICS_COLUMNS))


def aggregate_tables(result_paths: Iterable[str | Path], models: Mapping[str, Mapping[str, Any]],
                     outputs: Mapping[str, str]) -> None:
    """Write metrics.csv, gelo.csv and their Markdown views into the folder of `outputs['metrics']`."""
    metrics = collect_metrics(result_paths, models)
    written = write_long_tables(metrics, Path(outputs["metrics"]).parent)
    expected = {Path(p).resolve() for p in outputs.values()}
    missing = expected - {Path(p).resolve() for p in written.values()}
    if missing:
        raise RuntimeError(f"aggregate_tables did not write {sorted(map(str, missing))}")
