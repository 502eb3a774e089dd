"""Collect the per-job result JSONs (general and biometric) into the study's long-form metrics table
and write the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from overspec.provenance import read_json
from overspec.report.names import AVERAGE_DATASET
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


def _operating_point(rate: str, at: str, target: float) -> str:
    return f"{rate}@{at}={float(target):g}"  # the spelling report.names.canonical_metric gives


def biometric_rows(result: Mapping[str, Any], model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of a biometric result (``results/biometrics/...json``), in the metric names of the paper's Table C.

    face_verification: ``accuracy`` per pair set; ijb: ``tar@far=<far>`` per IJB set; mad: per
    morphing-method subset and as their mean (dataset ``average``) ``eer`` (the D-EER),
    ``apcer@bpcer=<t>``, ``bpcer@apcer=<t>``, ``auc``; pad: ``hter`` (at the dev threshold),
    ``hter_oracle`` (at the test set's own EER threshold, the literature's convention) and ``auc``.
    """
    base = {"model": model["model"], "backbone": model["backbone_label"], "adaptation": model["adaptation"]}
    benchmark, task = result["benchmark"], result["task"]

    def row(protocol: str, dataset: str, metric: str, value: float, n: int) -> dict[str, Any]:
        return {**base, "protocol": protocol, "dataset": dataset, "metric": metric, "value": float(value), "n": int(n)}

    if task == "face_verification":
        return [row("face_verification", benchmark, "accuracy", result["accuracy"], result["n_pairs"])]
    if task == "ijb_1to1":
        return [row("ijb", benchmark, _operating_point("tar", "far", p["far"]), p["tar"], result["n_pairs"])
                for p in result["tar_at_far"]]
    if task == "mad":
        rows = []
        for subset, metrics in sorted(result["subsets"].items()):
            n = metrics["n_bona_fide"] + metrics["n_attack"]
            rows += [row("mad", subset, "eer", metrics["d_eer"], n), row("mad", subset, "auc", metrics["auc"], n)]
            rows += [row("mad", subset, _operating_point("bpcer", "apcer", p["target"]), p["bpcer"], n)
                     for p in metrics["bpcer_at_apcer"]]
            rows += [row("mad", subset, _operating_point("apcer", "bpcer", p["target"]), p["apcer"], n)
                     for p in metrics["apcer_at_bpcer"]]
        mean, n_all = result["mean_over_subsets"], sum(r["n"] for r in rows if r["metric"] == "eer")
        rows += [row("mad", AVERAGE_DATASET, "eer", mean["d_eer"], n_all), row("mad", AVERAGE_DATASET, "auc", mean["auc"], n_all)]
        rows += [row("mad", AVERAGE_DATASET, _operating_point("bpcer", "apcer", t), v, n_all) for t, v in mean["bpcer_at_apcer"].items()]
        rows += [row("mad", AVERAGE_DATASET, _operating_point("apcer", "bpcer", t), v, n_all) for t, v in mean["apcer_at_bpcer"].items()]
        return rows
    if task == "pad":
        n = result["n_videos"]
        rows = [row("pad", benchmark, "auc", result["auc"], n), row("pad", benchmark, "hter_oracle", result["oracle_hter"]["hter"], n)]
        if "hter" in result:
            rows.append(row("pad", benchmark, "hter", result["hter"], n))
        return rows
    raise ValueError(f"unknown biometric task {task!r} in the result for {benchmark}")


def collect_metrics(result_paths: Iterable[str | Path], models: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Every result JSON (general: zero-shot, linear probe; biometric: has a ``task``) as long-form rows."""
    rows: list[dict[str, Any]] = []
    for path in result_paths:
        result = read_json(path)
        model = models[result["model"]]
        rows += biometric_rows(result, model) if "task" in result else classification_rows(result, model)
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
