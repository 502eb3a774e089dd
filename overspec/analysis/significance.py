"""Which differences are real: a paired bootstrap over test samples for every (fine-tuned model vs its
baseline, dataset, protocol) difference of the dataset's primary metric, and for every GELO.

Inputs are the zero-shot and linear-probe result JSONs and the per-sample predictions CSV each names
(``overspec.evaluate.general``). On each dataset one set of replicates (``overspec.analysis.bootstrap``,
seeded by ``[seed, crc32(dataset name)]`` so a dataset's replicates do not depend on which other
datasets are in the study) scores every model and both protocols, so a difference is always paired
and a GELO replicate is mean_d(model replicate) / mean_d(baseline replicate) over independently
resampled datasets. Differences are tested against 0, GELO against 1.

The fine-tunes' own-task gains (``overspec.analysis.task_gain``) are tested in the same job.

Outputs: ``significance.csv`` (one row per model, protocol, dataset; join it to ``metrics.csv`` on
``model, protocol, dataset`` and ``metric`` = ``primary``), ``significance_gelo.csv`` (one row per
model and protocol; join to ``gelo.csv`` on ``model, protocol``), ``task_gain.csv`` (one row per
fine-tune) and ``significance.md``.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from overspec.analysis.bootstrap import primary_replicates, read_tested_table, summarize
from overspec.analysis.task_gain import TASK_GAIN_FLOATS, task_gain_markdown, task_gain_table
from overspec.errors import UserError
from overspec.evaluate.general import PREDICTION_COLUMNS
from overspec.provenance import read_json, sha256_file, write_sidecar
from overspec.report.names import GELO_PROTOCOLS, dataset_sort_key, protocol_sort_key
from overspec.report.schema import model_sort_key, sort_metrics
from overspec.report.tables import float_csv, write_text_file

DIFFERENCE_COLUMNS = ("model", "backbone", "adaptation", "baseline", "protocol", "dataset", "metric", "primary_metric",
                      "model_value", "baseline_value", "difference", "ci_low", "ci_high", "p_value", "significant",
                      "n", "resamples", "seed")
GELO_COLUMNS = ("model", "backbone", "adaptation", "baseline", "protocol", "gelo", "ci_low", "ci_high", "p_value",
                "significant", "n_datasets", "resamples", "seed")
_FLOATS = ("model_value", "baseline_value", "difference", "gelo", "ci_low", "ci_high", "p_value")


@dataclass(frozen=True)
class Predictions:
    """One result's per-sample predictions and what its JSON says about them."""

    ids: tuple[str, ...]
    labels: np.ndarray
    pred: np.ndarray
    metric: str  # the dataset's primary metric
    value: float  # the primary metric the JSON reports
    source: str  # the JSON, for error messages


def read_predictions(json_path: str | os.PathLike) -> tuple[tuple[str, str, str], Predictions]:
    """``(protocol, model, dataset)`` and the predictions of one zero-shot or linear-probe result."""
    result = read_json(json_path)
    entry = result.get("predictions_file")
    if not entry:
        raise UserError(f"Result {json_path} names no per-sample predictions file: delete it and rerun its evaluation.")
    csv_path = Path(json_path).with_name(entry["path"])
    if not csv_path.is_file() or sha256_file(csv_path) != entry["sha256"]:
        raise UserError(f"Predictions {csv_path} are missing or differ from the digest in {json_path}: delete both "
                        f"and rerun the evaluation.")
    table = pd.read_csv(csv_path, dtype={"id": str})
    if tuple(table.columns) != PREDICTION_COLUMNS or len(table) != result["n"]:
        raise UserError(f"Predictions {csv_path} do not hold {result['n']} rows of {', '.join(PREDICTION_COLUMNS)}: "
                        f"delete it with {json_path} and rerun the evaluation.")
    key = (result["protocol"], result["model"], result["dataset"])
    return key, Predictions(tuple(table["id"]), table["label"].to_numpy(), table["pred"].to_numpy(),
                            result["primary_metric"], float(result["primary"]), str(json_path))


def dataset_seed(seed: int, dataset: str) -> list[int]:
    """The replicates' seed on one dataset: independent of the other datasets in the study."""
    return [seed, zlib.crc32(dataset.encode())]


def _replicates(found: Mapping[tuple[str, str, str], Predictions], resamples: int,
                seed: int) -> dict[tuple[str, str, str], tuple[float, np.ndarray]]:
    """Observed value and replicates of every result, one shared set of replicates per dataset."""
    values = {}
    for dataset in sorted({d for _, _, d in found}):
        keys = sorted(k for k in found if k[2] == dataset)
        first = found[keys[0]]
        for key in keys[1:]:
            other = found[key]
            if other.ids != first.ids or not np.array_equal(other.labels, first.labels) or other.metric != first.metric:
                raise UserError(f"{other.source} and {first.source} do not score the same test samples of {dataset}: "
                                "rerun embed_images and the evaluations of the older one.")
        scored = primary_replicates(first.metric, first.labels, {k: found[k].pred for k in keys}, resamples,
                                    dataset_seed(seed, dataset))
        for key, (value, replicate) in scored.items():
            # the JSON's value and the one recomputed from its predictions must agree: stale files otherwise
            if not math.isclose(value, found[key].value, rel_tol=0.0, abs_tol=1e-9):
                raise UserError(f"{found[key].source} reports {found[key].value} but its predictions give {value}: "
                                "delete it and rerun the evaluation.")
            values[key] = (value, replicate)
    return values


def significance_tables(result_paths: Iterable[str | os.PathLike], pairs: Mapping[str, str],
                        models: Mapping[str, Mapping[str, Any]], *, resamples: int, seed: int,
                        alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-dataset differences and the GELO table (see the module docstring).

    ``pairs`` maps each fine-tuned model to its baseline; ``models`` is the study's model table
    (``overspec.config.model_table``: backbone label and adaptation of each model).
    """
    wanted = set(pairs) | set(pairs.values())
    found = dict(item for item in map(read_predictions, result_paths) if item[0][1] in wanted)
    values = _replicates(found, resamples, seed)
    differences, gelos = [], []
    for model, baseline in pairs.items():
        label = {"model": model, "backbone": models[model]["backbone_label"], "adaptation": models[model]["adaptation"],
                 "baseline": baseline}
        run = {"resamples": resamples, "seed": seed}
        for protocol in sorted({p for p, _, _ in found}, key=protocol_sort_key):
            datasets = sorted((d for p, m, d in found if p == protocol and m == baseline), key=dataset_sort_key)
            lacking = [d for d in datasets if (protocol, model, d) not in values]
            if lacking:
                raise UserError(f"Model {model!r} lacks {protocol} results for {', '.join(lacking)}, which its baseline "
                                f"{baseline!r} has: run those evaluations.")
            if not datasets:
                continue
            for dataset in datasets:
                (mine, mine_r), (base, base_r) = values[(protocol, model, dataset)], values[(protocol, baseline, dataset)]
                test = summarize(mine - base, mine_r - base_r, 0.0, alpha)
                differences.append({**label, "protocol": protocol, "dataset": dataset, "metric": "primary",
                                    "primary_metric": found[(protocol, model, dataset)].metric, "model_value": mine,
                                    "baseline_value": base, "difference": test.pop("estimate"), **test,
                                    "n": len(found[(protocol, model, dataset)].ids), **run})
            if protocol in GELO_PROTOCOLS:
                mine = np.array([values[(protocol, model, d)][0] for d in datasets])
                base = np.array([values[(protocol, baseline, d)][0] for d in datasets])
                mine_r = np.mean([values[(protocol, model, d)][1] for d in datasets], axis=0)
                base_r = np.mean([values[(protocol, baseline, d)][1] for d in datasets], axis=0)
                test = summarize(mine.mean() / base.mean(), mine_r / base_r, 1.0, alpha)
                gelos.append({**label, "protocol": protocol, "gelo": test.pop("estimate"), **test,
                              "n_datasets": len(datasets), **run})
    difference_table = sort_metrics(pd.DataFrame(differences, columns=list(DIFFERENCE_COLUMNS)))
    gelo_table = pd.DataFrame(gelos, columns=list(GELO_COLUMNS))
    order = sorted(range(len(gelo_table)), key=lambda i: (protocol_sort_key(gelo_table.protocol[i]),) + model_sort_key(
        gelo_table.adaptation[i], gelo_table.backbone[i], gelo_table.model[i]))
    return difference_table, gelo_table.iloc[order].reset_index(drop=True)


def significance_csv(table: pd.DataFrame) -> str:
    return float_csv(table, [column for column in _FLOATS if column in table.columns])


def significance_markdown(differences: pd.DataFrame, gelo: pd.DataFrame, *, resamples: int, seed: int,
                          alpha: float) -> str:
    """Both tables for reading: values in percent, * marks p < alpha."""
    percent = "{:+.2f}".format

    def cell(value, low, high, significant, scale=100.0, fmt=percent):
        return f"{fmt(scale * value)} [{fmt(scale * low)}, {fmt(scale * high)}]" + (" *" if significant else "")

    parts = [
        "# Significance (paired bootstrap over test samples)\n",
        (f"{resamples} resamples, seed {seed} (per dataset: [seed, crc32(dataset)]); the same resampled test "
         f"samples score the model and its baseline. [low, high] is the {100 * (1 - alpha):g}% percentile "
         f"interval; * marks p < {alpha:g} (two-sided).\n"),
        "## Primary metric, model minus baseline (percentage points)\n",
    ]
    if differences.empty:
        parts.append("_No fine-tuned model with zero-shot or linear-probe results in this run._\n")
    else:
        frame = pd.DataFrame({
            "model": differences.model, "protocol": differences.protocol, "dataset": differences.dataset,
            "difference [CI]": [cell(*r) for r in zip(differences.difference, differences.ci_low,
                                                      differences.ci_high, differences.significant)],
            "p": differences.p_value.map("{:.4f}".format), "n": differences.n,
        })
        parts.append(frame.to_markdown(index=False, disable_numparse=True) + "\n")
    parts.append("## GELO (tested against 1)\n")
    if gelo.empty:
        parts.append("_No GELO in this run._\n")
    else:
        frame = pd.DataFrame({
            "model": gelo.model, "protocol": gelo.protocol,
            "GELO [CI]": [cell(*r, scale=1.0, fmt="{:.3f}".format) for r in zip(gelo.gelo, gelo.ci_low, gelo.ci_high,
                                                                                  gelo.significant)],
            "p": gelo.p_value.map("{:.4f}".format), "datasets": gelo.n_datasets,
        })
        parts.append(frame.to_markdown(index=False, disable_numparse=True) + "\n")
    return "\n".join(parts)


def run_significance(result_paths: Iterable[str | os.PathLike], biometric_paths: Iterable[str | os.PathLike],
                     pairs: Mapping[str, str], models: Mapping[str, Mapping[str, Any]],
                     outputs: Mapping[str, str | os.PathLike], *, resamples: int, seed: int,
                     provenance: Mapping[str, Any], alpha: float = 0.05) -> None:
    """Write ``outputs['differences']``, ``outputs['gelo']``, ``outputs['task_gain']`` (CSV) and
    ``outputs['markdown']``, each with a sidecar. ``biometric_paths`` are the fine-tunes' and their
    baselines' results on the fine-tunes' own tasks (``overspec.analysis.task_gain``)."""
    differences, gelo = significance_tables(result_paths, pairs, models, resamples=resamples, seed=seed, alpha=alpha)
    gains = task_gain_table(biometric_paths, pairs, models, resamples=resamples, seed=seed, alpha=alpha)
    markdown = significance_markdown(differences, gelo, resamples=resamples, seed=seed, alpha=alpha)
    texts = {"differences": significance_csv(differences), "gelo": significance_csv(gelo),
             "task_gain": float_csv(gains, TASK_GAIN_FLOATS),
             "markdown": markdown + "\n" + task_gain_markdown(gains, alpha)}
    for name, text in texts.items():
        write_sidecar(write_text_file(outputs[name], text), provenance)


def read_significance(path: str | os.PathLike) -> pd.DataFrame:
    """``significance.csv`` for the report: ``significant`` as bool, keyed by ``model, protocol, dataset``.

    A significant drop is a row with ``significant`` and ``difference < 0``.
    """
    return read_tested_table(path, DIFFERENCE_COLUMNS, ("model", "protocol", "dataset"))
