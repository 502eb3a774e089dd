"""The study's report files, made from the aggregated tables (``metrics.csv``, ``gelo.csv``).

What the workflow's report steps call: the paper-layout tables with this run beside the published
numbers (:func:`write_study_tables`), the one-page summary (:func:`write_study_summary`), and the
names of the figures (:func:`figure_names`; the figures themselves are drawn by
``overspec.report.study_figures``, which loads matplotlib). Every file gets a provenance sidecar
when a provenance block is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from overspec.analysis.task_gain import read_task_gain
from overspec.provenance import write_sidecar
from overspec.report.gelo import read_gelo
from overspec.report.paper import PAPER_ADAPTATIONS, load_paper_tables, write_paper_comparison
from overspec.report.schema import read_metrics
from overspec.report.summary import write_summary
from overspec.report.tables import PAPER_TABLES, write_paper_tables

# Figures every study has (a placeholder says so where this run lacks what one needs), then one
# score-curve figure per IJB set (TAR-FAR) and per MAD and PAD benchmark (ROC and DET).
STUDY_FIGURES = ("tradeoff", "gelo", "retention_heatmap", "retention_scatter", "capacity", "training_curves")
CURVE_KINDS = ("ijb", "mad", "pad")
FIGURE_FORMATS = ("png", "svg")
TABLE_FORMATS = ("csv", "md", "tex", "html")


def curve_figure(kind: str, benchmark: str) -> str:
    """The figure name of one benchmark's score curves, e.g. ``mad_syn_mad22``."""
    if kind not in CURVE_KINDS:
        raise ValueError(f"unknown curve kind {kind!r}; known: {', '.join(CURVE_KINDS)}")
    return f"{kind}_{benchmark}"


def figure_names(curves: Iterable[tuple[str, str]]) -> list[str]:
    """Every figure of a study whose score curves are these ``(kind, benchmark)`` pairs."""
    return list(STUDY_FIGURES) + [curve_figure(kind, benchmark) for kind, benchmark in curves]


def table_files() -> list[str]:
    """The file names :func:`write_study_tables` writes (paper-layout tables, then the comparison)."""
    names = [f"table_{name}.{ext}" for name in PAPER_TABLES for ext in TABLE_FORMATS]
    return names + ["paper_comparison.csv", "paper_comparison.md", "paper_comparison.html"]


def paper_model_map(models: Mapping[str, Mapping[str, Any]], paper: pd.DataFrame, present: Iterable[str]) -> dict:
    """Models of this run that stand for a published one: ``{model: (approach, arch)}``.

    A model stands for the paper's approach of its adaptation (``fr`` -> FRoundation, ``none`` ->
    CLIP, ...) on the architecture its backbone label names (``ViT-B/16``); the toy study maps none.
    Models made from a fine-tune (WiSE-FT interpolations: ``finetune`` set) stand for none.
    """
    approach_of = {adaptation: approach for approach, adaptation in PAPER_ADAPTATIONS.items()}
    published = set(zip(paper.approach, paper.arch))
    present = set(present)
    mapping = {}
    for name, row in sorted(models.items()):
        cell = (approach_of.get(row["adaptation"]), row["backbone_label"])
        if name in present and cell in published and not row.get("finetune"):
            mapping[name] = cell
    return mapping


def unique_row_labels(model_map: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Print a mapped model as the paper's (approach, arch) when no other model maps to that row."""
    rows = list(model_map.values())
    return {model: cell for model, cell in model_map.items() if rows.count(cell) == 1}


def write_sidecars(paths: Iterable[str | os.PathLike], provenance: Mapping[str, Any] | None) -> None:
    """The same provenance block beside every file one step wrote (nothing when it is None)."""
    if provenance is not None:
        for path in paths:
            write_sidecar(path, provenance)


def write_study_tables(
    metrics_csv: str | os.PathLike,
    out_dir: str | os.PathLike,
    models: Mapping[str, Mapping[str, Any]],
    *,
    provenance: Mapping[str, Any] | None = None,
    paper: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """The four paper-layout tables (CSV, Markdown, LaTeX) and this run vs the published numbers.

    ``models`` is the study's model table (``overspec.config.model_table``): it says which model
    stands for which published one. Tables of a model that stands for one alone use the paper's
    row labels (approach, arch).
    """
    metrics = read_metrics(metrics_csv)
    paper = load_paper_tables() if paper is None else paper
    model_map = paper_model_map(models, paper, metrics.model)
    written = write_paper_tables(metrics, out_dir, row_labels=unique_row_labels(model_map) or None)
    comparison = write_paper_comparison(metrics, out_dir, model_map, paper=paper)
    written.update({f"paper_comparison_{kind}": path for kind, path in comparison.items()})
    write_sidecars(written.values(), provenance)
    return written


def write_study_summary(
    metrics_csv: str | os.PathLike,
    gelo_csv: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    task_gain_csv: str | os.PathLike | None = None,
    exclude_models: Iterable[str] = (),
    remedies: Mapping[str, Mapping[str, Any]] | None = None,
    min_gelo: float = 0.95,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """``summary.md``: own-task gains, headline GELO and the three findings (``report.summary``).

    ``task_gain_csv`` (``bootstrap_significance``'s ``task_gain.csv``) gives the gains their intervals.
    ``exclude_models`` (the WiSE-FT interpolations) are left out: they carry their fine-tune's
    adaptation name, so the findings would count them as fine-tunes of their own. ``remedies``
    (``overspec.analysis.remedies.remedy_table``) adds the Remedies section, WiSE-FT models included,
    with its best remedy at zero-shot GELO >= ``min_gelo``."""
    from overspec.analysis.mitigation import mitigation_table

    excluded = set(exclude_models)
    metrics, gelo = read_metrics(metrics_csv), read_gelo(gelo_csv)
    gains = None if task_gain_csv is None else read_task_gain(task_gain_csv)
    table = mitigation_table(metrics, gelo, remedies, gains) if remedies else None
    path = write_summary(metrics[~metrics.model.isin(excluded)], gelo[~gelo.model.isin(excluded)], out_path,
                         task_gain=None if gains is None else gains[~gains.model.isin(excluded)],
                         remedies=table, min_gelo=min_gelo)
    write_sidecars([path], provenance)
    return path
