"""GELO (generalization loss): a model's mean accuracy over datasets / the same mean for its baseline.

GELO(model, protocol) = mean_d primary(model, d) / mean_d primary(baseline, d), where the baseline is
the untouched model (adaptation ``none``) of the same backbone and d runs over the same datasets
for both. Below 1: generalization lost; above 1: gained. A baseline's own GELO is exactly 1.0.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import pandas as pd

from overspec.errors import UserError
from overspec.report.names import BASELINE, GELO_PROTOCOLS, protocol_sort_key
from overspec.report.schema import baselines_by_backbone, check_metrics, model_sort_key

GELO_COLUMNS = ("model", "backbone", "adaptation", "protocol", "avg_baseline", "avg_model", "gelo")
PRIMARY = "primary"


def _mean(values: Sequence[float]) -> float:
    # fsum: the mean does not depend on the order rows arrived in.
    return math.fsum(values) / len(values)


def gelo_table(metrics: pd.DataFrame, datasets_by_protocol: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """GELO of every model (baselines included, at 1.0) for the zero-shot and linear-probe protocols.

    ``datasets_by_protocol`` restricts the mean to the listed datasets (protocols not listed are
    skipped); by default it runs over every dataset the backbone's baseline has. A model lacking
    one of those datasets, or a backbone without a baseline, is an error: means must compare alike.
    """
    frame = check_metrics(metrics)
    baselines = baselines_by_backbone(frame)
    rows = []
    for protocol in GELO_PROTOCOLS:
        if datasets_by_protocol is not None and protocol not in datasets_by_protocol:
            continue
        wanted = sorted(set(datasets_by_protocol[protocol])) if datasets_by_protocol is not None else None
        primary = frame[(frame.protocol == protocol) & (frame.metric == PRIMARY)]
        if primary.empty:
            if wanted:
                raise UserError(
                    f"No '{PRIMARY}' results for protocol {protocol!r}, but datasets {wanted} were asked for."
                )
            continue
        values = {model: dict(zip(group.dataset, group.value)) for model, group in primary.groupby("model", sort=True)}
        averages: dict[str, tuple[float, list[str]]] = {}
        for backbone in sorted(set(primary.backbone)):
            baseline = baselines.get(backbone)
            if baseline is None or baseline not in values:
                raise UserError(
                    f"No baseline (adaptation '{BASELINE}') with {protocol} results for backbone {backbone!r}; "
                    "GELO needs the untouched model of every backbone in the study."
                )
            datasets = wanted if wanted is not None else sorted(values[baseline])
            averages[backbone] = (_average(values, baseline, baseline, datasets, protocol), datasets)
        for model, group in primary.groupby("model", sort=True):
            backbone, adaptation = group.backbone.iloc[0], group.adaptation.iloc[0]
            avg_baseline, datasets = averages[backbone]
            avg_model = _average(values, model, baselines[backbone], datasets, protocol)
            if avg_baseline == 0.0:
                raise UserError(
                    f"Baseline {baselines[backbone]!r} has mean {protocol} accuracy 0, so GELO is undefined."
                )
            rows.append((model, backbone, adaptation, protocol, avg_baseline, avg_model, avg_model / avg_baseline))
    table = pd.DataFrame(rows, columns=list(GELO_COLUMNS))
    order = sorted(
        range(len(table)),
        key=lambda i: (
            (protocol_sort_key(table.protocol[i]),)
            + model_sort_key(table.adaptation[i], table.backbone[i], table.model[i])
        ),
    )
    return table.iloc[order].reset_index(drop=True)


def _average(
    values: dict[str, dict[str, float]], model: str, baseline: str, datasets: list[str], protocol: str
) -> float:
    have = values.get(model, {})
    lacking = [d for d in datasets if d not in have]
    if lacking:
        needed_by = "datasets_by_protocol lists" if model == baseline else f"its baseline {baseline!r} has"
        raise UserError(
            f"Model {model!r} lacks {protocol} results for {', '.join(lacking)}, which {needed_by}; "
            "run those evaluations or restrict datasets_by_protocol so both means cover the same datasets."
        )
    picked = [have[d] for d in datasets]
    if any(math.isnan(v) for v in picked):
        raise UserError(f"Model {model!r} has a NaN {protocol} result; rerun the evaluation that produced it.")
    return _mean(picked)


def read_gelo(path: str | os.PathLike) -> pd.DataFrame:
    """``gelo.csv`` as ``write_long_tables`` wrote it (floats written with ``repr`` read back exactly)."""
    labels = GELO_COLUMNS[:4]
    try:
        frame = pd.read_csv(path, dtype={c: str for c in labels}, keep_default_na=False, na_values={
            c: [""] for c in GELO_COLUMNS[4:]})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"Cannot read the GELO table {path} ({error}); rerun the aggregate_tables step.") from None
    if list(frame.columns) != list(GELO_COLUMNS):
        raise UserError(
            f"{path} has the columns {', '.join(frame.columns)}; a GELO table has {', '.join(GELO_COLUMNS)}. "
            "Rerun the aggregate_tables step."
        )
    try:
        return frame.astype({c: float for c in GELO_COLUMNS[4:]})
    except ValueError as error:
        raise UserError(f"{path} has a non-numeric GELO value ({error}); rerun the aggregate_tables step.") from None
