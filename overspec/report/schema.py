"""The long-form metrics table every report function reads, its checks and its orderings.

One row per (model, protocol, dataset, metric): columns ``model, backbone, adaptation, protocol,
dataset, metric, value, n``. Values are fractions (not percent); ``adaptation`` is ``none`` for
an untouched baseline; ``n`` is the number of test samples (may be empty).
"""

from __future__ import annotations

import math
import os

import pandas as pd

from overspec.errors import UserError
from overspec.report.names import AVERAGE_DATASET, BASELINE, canonical_metric, dataset_sort_key, metric_sort_key, protocol_sort_key

METRICS_COLUMNS = ("model", "backbone", "adaptation", "protocol", "dataset", "metric", "value", "n")
KEY_COLUMNS = ("model", "protocol", "dataset", "metric")
CI_SUFFIXES = ("_ci_low", "_ci_high")


def check_metrics(metrics: pd.DataFrame, source: str = "the metrics table") -> pd.DataFrame:
    """A clean copy: exact columns, string labels, float values, nullable-int ``n``, unique keys."""
    if not isinstance(metrics, pd.DataFrame):
        raise UserError(f"{source} must be a pandas DataFrame, got {type(metrics).__name__}.")
    missing = [c for c in METRICS_COLUMNS if c not in metrics.columns]
    if missing:
        raise UserError(
            f"{source} lacks the columns {', '.join(missing)}; it must have exactly {', '.join(METRICS_COLUMNS)}."
        )
    frame = metrics.loc[:, list(METRICS_COLUMNS)].copy()
    for column in METRICS_COLUMNS[:6]:
        if frame[column].isna().any():
            raise UserError(f"{source} has empty cells in column {column!r}; every row needs a {column}.")
        frame[column] = frame[column].astype(str)
    frame["metric"] = frame["metric"].map(canonical_metric)
    try:
        frame["value"] = pd.to_numeric(frame["value"]).astype(float)
        frame["n"] = pd.to_numeric(frame["n"]).astype("Int64")
    except (ValueError, TypeError) as error:
        raise UserError(f"{source} has a non-numeric value or n ({error}); fix the rows that produced it.") from None
    duplicated = frame.duplicated(list(KEY_COLUMNS), keep=False)
    if duplicated.any():
        first = frame[duplicated].iloc[0]
        raise UserError(
            f"{source} has more than one row for model {first.model!r}, protocol {first.protocol!r}, "
            f"dataset {first.dataset!r}, metric {first.metric!r}; each result must appear once."
        )
    identity = frame.groupby("model")[["backbone", "adaptation"]].nunique()
    ambiguous = identity[(identity > 1).any(axis=1)]
    if len(ambiguous):
        raise UserError(
            f"{source} gives model {ambiguous.index[0]!r} more than one backbone or adaptation; "
            "a model name must identify one trained model."
        )
    return frame.reset_index(drop=True)


def read_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """``metrics.csv`` as ``write_long_tables`` wrote it, checked; labels stay text (a dataset named
    ``NA`` is not a missing value), empty ``value``/``n`` cells are missing."""
    try:
        frame = pd.read_csv(
            path,
            dtype={column: str for column in METRICS_COLUMNS[:6]},
            keep_default_na=False,
            na_values={"value": [""], "n": [""]},
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"Cannot read the metrics table {path} ({error}); rerun the aggregate_tables step.") from None
    return check_metrics(frame, source=str(path))


def model_sort_key(adaptation: str, backbone: str, model: str) -> tuple:
    """Baselines first, then by adaptation, backbone, name: the paper's row order (approach, then arch)."""
    return (adaptation != BASELINE, adaptation, backbone, model)


def models_in_order(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Distinct ``(model, backbone, adaptation)`` of a checked frame, in report order."""
    triples = frame[["model", "backbone", "adaptation"]].drop_duplicates().itertuples(index=False, name=None)
    return sorted(triples, key=lambda t: model_sort_key(t[2], t[1], t[0]))


def sort_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one deterministic order: protocol, model (report order), dataset, metric."""
    if frame.empty:
        return frame.reset_index(drop=True)
    key = frame.apply(
        lambda r: (
            protocol_sort_key(r.protocol),
            model_sort_key(r.adaptation, r.backbone, r.model),
            dataset_sort_key(r.dataset),
            metric_sort_key(r.metric),
        ),
        axis=1,
    )
    order = sorted(range(len(frame)), key=lambda i: key.iloc[i])
    return frame.iloc[order].reset_index(drop=True)


def baselines_by_backbone(frame: pd.DataFrame) -> dict[str, str]:
    """``{backbone: baseline model}``; two baselines on one backbone is an error."""
    found: dict[str, str] = {}
    for model, backbone, adaptation in models_in_order(frame):
        if adaptation != BASELINE:
            continue
        if backbone in found:
            raise UserError(
                f"Backbone {backbone!r} has two baselines ({found[backbone]!r} and {model!r}) with adaptation "
                f"'{BASELINE}'; keep one untouched model per backbone."
            )
        found[backbone] = model
    return found


def is_ci_metric(metric: str) -> bool:
    return metric.endswith(CI_SUFFIXES)


def ci_rows(frame: pd.DataFrame) -> pd.Series:
    """Boolean mask of interval rows (``<metric>_ci_low`` / ``_ci_high``), bool even when empty."""
    return frame["metric"].map(is_ci_metric).astype(bool)


def add_dataset_average(frame: pd.DataFrame, protocol: str, name: str = AVERAGE_DATASET) -> pd.DataFrame:
    """Append, per model and metric of ``protocol``, the mean over its datasets as dataset ``name``.

    This is how the paper reports MAD (the mean of each metric over the test sets). A model
    that lacks one of the protocol's datasets gets no average, so averages compare like with like.
    """
    frame = check_metrics(frame)
    rows = frame[(frame.protocol == protocol) & (frame.dataset != name) & ~ci_rows(frame)]
    if rows.empty or (frame[(frame.protocol == protocol)].dataset == name).any():
        return frame
    datasets = set(rows.dataset)
    extra = []
    for (model, metric), group in rows.groupby(["model", "metric"], sort=True):
        if set(group.dataset) != datasets or group.value.isna().any():
            continue
        first = group.iloc[0]
        n = group.n.sum() if group.n.notna().all() else pd.NA
        extra.append(
            {
                "model": model,
                "backbone": first.backbone,
                "adaptation": first.adaptation,
                "protocol": protocol,
                "dataset": name,
                "metric": metric,
                "value": math.fsum(group.value) / len(group),
                "n": n,
            }
        )
    if not extra:
        return frame
    return check_metrics(pd.concat([frame, pd.DataFrame(extra)], ignore_index=True))
