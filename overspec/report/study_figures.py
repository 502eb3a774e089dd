"""The study's figures from its aggregated tables, score files and training logs (what the
workflow's ``plot_figures`` step calls; the plots themselves are ``overspec.report.figures``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from overspec.report import figures
from overspec.report.gelo import read_gelo
from overspec.report.names import dataset_label
from overspec.report.schema import read_metrics
from overspec.report.study import FIGURE_FORMATS, curve_figure, write_sidecars
from overspec.report.summary import backbone_ranks
from overspec.report.tradeoff import tradeoff_points

CURVE_TITLES = {"ijb": "IJB verification", "mad": "Morphing attack detection", "pad": "Presentation attack detection"}


def backbone_order(backbones: Sequence[str]) -> list[str]:
    """Smallest to largest where the name tells (``ViT-B/16`` < ``ViT-L/14``, ``toy-S`` < ``toy-M``), then by name."""
    ranks = backbone_ranks(sorted(set(backbones)))
    return sorted(set(backbones), key=lambda b: (b not in ranks, ranks.get(b, 0.0), b))


def _curve_figure(curve: Mapping[str, Any], out_stem: Path) -> dict[str, Path]:
    kind, scores = curve["kind"], dict(sorted(curve["scores"].items()))
    title = f"{CURVE_TITLES[kind]}: {dataset_label(curve['benchmark'])}"
    if kind == "ijb":
        return figures.plot_tar_far(scores, out_stem, title=title)
    if kind == "pad":  # PAD is scored per video, as its metrics are
        return figures.plot_attack_curves(scores, out_stem, title=title, score_column="video_score", unit="video_id")
    return figures.plot_attack_curves(scores, out_stem, title=title)


def write_study_figures(
    metrics_csv: str | os.PathLike,
    gelo_csv: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    curves: Sequence[Mapping[str, Any]] = (),
    training_logs: Mapping[str, str | os.PathLike] | None = None,
    loss_kinds: Mapping[str, str] | None = None,
    wiseft: Mapping[str, Mapping[str, Any]] | None = None,
    remedies: Mapping[str, Mapping[str, Any]] | None = None,
    task_gain_csv: str | os.PathLike | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Every figure of the study as ``<out_dir>/<name>.png`` and ``.svg`` (names: ``study.figure_names``).

    ``curves`` lists ``{"kind": "ijb" | "mad" | "pad", "benchmark": name, "scores": {model: score
    file}}``: one figure per entry, one curve per model. ``training_logs`` maps each fine-tuned
    model to its ``train_log.csv`` and ``loss_kinds`` to its head type (one loss panel per kind).
    ``wiseft`` maps each WiSE-FT model to ``{"finetune", "alpha"}`` (its line on the trade-off figure);
    ``remedies`` (``overspec.analysis.remedies.remedy_table``) each remedy group's models, drawn by
    remedy with their Pareto front, over those that learned their task (``task_gain_csv`` decides,
    else a positive point gain).
    """
    from overspec.analysis.task_gain import read_task_gain

    out = Path(out_dir)
    metrics, gelo = read_metrics(metrics_csv), read_gelo(gelo_csv)
    task_gain = None if task_gain_csv is None else read_task_gain(task_gain_csv)
    points = tradeoff_points(metrics, gelo, wiseft, remedies=remedies, task_gain=task_gain)
    drawn = {
        "tradeoff": figures.plot_tradeoff(points, out / "tradeoff"),
        "gelo": figures.plot_gelo(gelo, out / "gelo"),
        "retention_heatmap": figures.plot_retention_heatmap(metrics, out / "retention_heatmap"),
        "retention_scatter": figures.plot_retention_scatter(gelo, out / "retention_scatter"),
        "capacity": figures.plot_capacity(gelo, out / "capacity", backbone_order(gelo.backbone)),
        "training_curves": figures.plot_training_curves(training_logs or {}, out / "training_curves", loss_kinds),
    }
    for curve in curves:
        name = curve_figure(curve["kind"], curve["benchmark"])
        drawn[name] = _curve_figure(curve, out / name)
    written = {f"{name}_{fmt}": paths[fmt] for name, paths in drawn.items() for fmt in FIGURE_FORMATS}
    write_sidecars(written.values(), provenance)
    return written
