"""Representation drift: how far each fine-tuned model's features moved from its baseline's, per dataset,
and whether the datasets whose features moved most are those that lost most accuracy.

Drift is the linear CKA (``overspec.analysis.cka``) between the model's and its baseline's test
features of a dataset, read from the embedding files (``overspec.embed.store``; nothing is
re-encoded). Features are taken as stored (projected, not normalised). The accuracy change is the
model's top-1 minus the baseline's on the same dataset, zero-shot and linear probe, from the result
JSONs. Across all (model, dataset) cells, Pearson and Spearman correlations relate CKA to that
change (positive: lower CKA goes with larger losses); they need three cells or more.

Outputs: ``drift.csv`` (one row per fine-tuned model and dataset), ``drift_correlation.csv`` (one row
per protocol), ``drift.md`` and the heatmap ``drift_heatmap.{png,svg}``.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.special import stdtr

from overspec.analysis.cka import linear_cka
from overspec.embed.store import read_embeddings
from overspec.errors import UserError
from overspec.provenance import read_json, write_sidecar
from overspec.report.figures import STYLE, save_figure
from overspec.report.names import GELO_PROTOCOLS, PROTOCOL_LABELS, dataset_label, dataset_sort_key
from overspec.report.schema import model_sort_key
from overspec.report.tables import float_csv, write_text_file

DRIFT_COLUMNS = ("model", "backbone", "adaptation", "baseline", "dataset", "cka", "n",
                 "delta_top1_zeroshot", "delta_top1_linear_probe")
CORRELATION_COLUMNS = ("protocol", "n_cells", "pearson_r", "pearson_p", "spearman_rho", "spearman_p")
MIN_CELLS = 3


def _test_features(cache: dict[str, tuple[np.ndarray, list[str]]], embeddings: str, model: str,
                   dataset: str) -> tuple[np.ndarray, list[str]]:
    """A model's test features and ids on a dataset, each file read once per dataset (a baseline serves
    several fine-tunes)."""
    if model not in cache:
        features, _, ids = read_embeddings(embeddings.format(model=model, dataset=dataset), "test")
        cache[model] = features, ids
    return cache[model]


def drift_table(pairs: Mapping[str, str], models: Mapping[str, Mapping[str, Any]], datasets: Sequence[str],
                embeddings: str, result_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """CKA and top-1 change of every fine-tuned model on every dataset.

    ``pairs`` maps each fine-tuned model to its baseline, ``models`` is the study's model table,
    ``embeddings`` the embedding file pattern with ``{model}`` and ``{dataset}``; ``result_paths``
    are zero-shot and linear-probe result JSONs (read for their top-1).
    """
    top1 = {}
    for path in result_paths:
        result = read_json(path)
        top1[(result["protocol"], result["model"], result["dataset"])] = float(result["top1"])
    rows = []
    for dataset in sorted(datasets, key=dataset_sort_key):
        cache: dict[str, tuple[np.ndarray, list[str]]] = {}
        for model, baseline in pairs.items():
            mine, mine_ids = _test_features(cache, embeddings, model, dataset)
            base, base_ids = _test_features(cache, embeddings, baseline, dataset)
            if mine_ids != base_ids:
                raise UserError(f"The test embeddings of {model} and {baseline} on {dataset} list different samples: "
                                f"delete the older one ({embeddings.format(model=model, dataset=dataset)}) and rerun.")
            deltas = {f"delta_top1_{p}": top1[(p, model, dataset)] - top1[(p, baseline, dataset)]
                      if (p, model, dataset) in top1 and (p, baseline, dataset) in top1 else np.nan
                      for p in GELO_PROTOCOLS}
            rows.append({"model": model, "backbone": models[model]["backbone_label"],
                         "adaptation": models[model]["adaptation"], "baseline": baseline, "dataset": dataset,
                         "cka": linear_cka(mine, base), "n": len(mine_ids), **deltas})
    frame = pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))
    order = sorted(range(len(frame)), key=lambda i: model_sort_key(frame.adaptation[i], frame.backbone[i],
                                                                   frame.model[i]) + (dataset_sort_key(frame.dataset[i]),))
    return frame.iloc[order].reset_index(drop=True)


def correlation(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson r and its two-sided p-value (t test, n - 2 degrees of freedom), as scipy.stats.pearsonr gives
    them; on ranks (average ties) the same is scipy.stats.spearmanr. Computed here because importing
    scipy.stats costs this one-shot job more than a second of start-up."""
    r = float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))
    if abs(r) == 1.0:
        return r, 0.0
    t = r * np.sqrt((len(x) - 2) / (1.0 - r * r))
    return r, float(2.0 * stdtr(len(x) - 2, -abs(t)))


def drift_correlation(drift: pd.DataFrame) -> pd.DataFrame:
    """Pearson and Spearman correlation of CKA with the top-1 change, per protocol (NaN below 3 cells
    or when either side is constant)."""
    rows = []
    for protocol in GELO_PROTOCOLS:
        cells = drift[["cka", f"delta_top1_{protocol}"]].dropna().to_numpy(dtype=np.float64)
        row = {"protocol": protocol, "n_cells": len(cells), "pearson_r": np.nan, "pearson_p": np.nan,
               "spearman_rho": np.nan, "spearman_p": np.nan}
        if len(cells) >= MIN_CELLS and np.ptp(cells[:, 0]) > 0 and np.ptp(cells[:, 1]) > 0:
            ranks = pd.DataFrame(cells).rank(method="average").to_numpy()
            (r, p), (rho, p_rank) = correlation(cells[:, 0], cells[:, 1]), correlation(ranks[:, 0], ranks[:, 1])
            row.update(pearson_r=r, pearson_p=p, spearman_rho=rho, spearman_p=p_rank)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def drift_markdown(drift: pd.DataFrame, correlation: pd.DataFrame) -> str:
    parts = ["# Representation drift (linear CKA with the baseline, test features)\n",
             ("CKA 1: the same features up to rotation and scale; near 0: unrelated. Delta: the model's top-1 minus "
              "the baseline's, in percentage points.\n")]
    if drift.empty:
        parts.append("_No fine-tuned model in this run._\n")
        return "\n".join(parts)
    def pp(value: float) -> str:
        return "" if pd.isna(value) else f"{100 * value:+.2f}"

    table = pd.DataFrame({"model": drift.model, "dataset": drift.dataset.map(dataset_label),
                          "CKA": drift.cka.map(lambda v: "" if pd.isna(v) else f"{v:.3f}"),
                          "delta ZS": drift.delta_top1_zeroshot.map(pp), "delta LP": drift.delta_top1_linear_probe.map(pp),
                          "n": drift.n})
    parts += [table.to_markdown(index=False, disable_numparse=True) + "\n",
              "## CKA vs top-1 change, across (model, dataset) cells\n"]
    lines = []
    for r in correlation.itertuples(index=False):
        if pd.isna(r.pearson_r):
            lines.append(f"- {PROTOCOL_LABELS[r.protocol]}: {r.n_cells} cells, no correlation (needs {MIN_CELLS} or "
                         "more cells with varying values).")
        else:
            lines.append(f"- {PROTOCOL_LABELS[r.protocol]}: {r.n_cells} cells, Pearson r = {r.pearson_r:.3f} "
                         f"(p = {r.pearson_p:.3g}), Spearman rho = {r.spearman_rho:.3f} (p = {r.spearman_p:.3g}).")
    return "\n".join(parts) + "\n".join(lines) + "\n"


def plot_drift_heatmap(drift: pd.DataFrame, out_stem: str | os.PathLike) -> dict[str, Path]:
    """Fine-tuned models (rows) by datasets (columns), coloured and labelled by CKA on a fixed 0..1 scale."""
    with matplotlib.rc_context(STYLE):
        if drift.empty:
            fig = Figure(figsize=(5, 2.5))
            ax = fig.add_subplot()
            ax.set_axis_off()
            ax.text(0.5, 0.5, "No fine-tuned model in this run.", ha="center", va="center", fontsize=11)
            return save_figure(fig, out_stem)
        models = list(dict.fromkeys(drift.model))  # drift_table's order: the report's row order
        datasets = sorted(set(drift.dataset), key=dataset_sort_key)
        grid = drift.pivot(index="model", columns="dataset", values="cka").reindex(index=models, columns=datasets)
        fig = Figure(figsize=(2.4 + 0.7 * len(datasets) + 1.0, 1.8 + 0.45 * len(models)))
        ax = fig.add_subplot()
        image = ax.imshow(grid.to_numpy(dtype=np.float64), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(datasets)), [dataset_label(d) for d in datasets], rotation=60, ha="right")
        ax.set_yticks(range(len(models)), models)
        for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=np.float64)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color="black" if v > 0.6 else "white")
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel("Dataset")
        ax.set_ylabel("Fine-tuned model")
        ax.set_title("Representation similarity to the baseline")
        fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02).set_label("Linear CKA (test features)")
        return save_figure(fig, out_stem)


def run_drift(pairs: Mapping[str, str], models: Mapping[str, Mapping[str, Any]], datasets: Sequence[str],
              embeddings: str, result_paths: Iterable[str | os.PathLike], outputs: Mapping[str, str | os.PathLike],
              *, provenance: Mapping[str, Any]) -> None:
    """Write ``outputs['table']``, ``['correlation']`` (CSV), ``['markdown']`` and the heatmap
    ``['png']`` / ``['svg']`` (same stem), each with a provenance sidecar."""
    drift = drift_table(pairs, models, datasets, embeddings, result_paths)
    correlation = drift_correlation(drift)
    written = [
        write_text_file(outputs["table"], float_csv(drift, ("cka", "delta_top1_zeroshot", "delta_top1_linear_probe"))),
        write_text_file(outputs["correlation"], float_csv(correlation, CORRELATION_COLUMNS[2:])),
        write_text_file(outputs["markdown"], drift_markdown(drift, correlation)),
    ]
    png, svg = Path(outputs["png"]), Path(outputs["svg"])
    if png.with_suffix("") != svg.with_suffix(""):
        raise ValueError(f"the heatmap's PNG and SVG must share a stem, got {png} and {svg}")
    figures = plot_drift_heatmap(drift, png.with_suffix(""))
    for path in written + [figures["png"], figures["svg"]]:
        write_sidecar(path, provenance)
