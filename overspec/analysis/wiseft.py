"""The WiSE-FT trade-off: each fine-tune's own biometric score against its GELO, alpha by alpha.

The models along a curve (``overspec.config.wiseft_curves``: the baseline or a model at alpha 0,
generated models in between, the fine-tune at 1) are ordinary models of the study, so everything
here is read from the aggregated tables. The biometric score of a fine-tune is its task's metric,
averaged over that task's benchmarks: FR the pair-set accuracy (IJB TAR@FAR=1e-4 when a study has
no pair sets), MAD the D-EER, PAD the HTER at the dev threshold (AUC without a dev list).

The chosen alpha has the best biometric score among the alphas whose zero-shot and linear-probe
GELO are both at least ``min_gelo`` (ties: the higher of the two GELOs, then the smaller alpha);
there is none when no alpha qualifies. ``gain_kept`` is the share of the alpha-0 -> alpha-1
biometric change an alpha keeps; ``*_loss_recovered`` the share of the alpha-1 GELO loss it undoes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from overspec.errors import UserError
from overspec.report.figures import MARKERS, PALETTE, STYLE, save_figure
from overspec.report.gelo import read_gelo
from overspec.report.names import AVERAGE_DATASET, GELO_PROTOCOLS, PROTOCOL_LABELS, PROTOCOL_SHORT, lower_is_better, metric_label
from overspec.report.schema import ci_rows, read_metrics
from overspec.report.study import write_sidecars
from overspec.report.tables import float_csv, write_text_file

# Per task, the (protocol, metric) candidates in order of preference: the first one every model of
# the curve has is used.
TASK_METRICS = {
    "fr": (("face_verification", "accuracy"), ("ijb", "tar@far=0.0001")),
    "mad": (("mad", "eer"),),
    "pad": (("pad", "hter"), ("pad", "auc")),
}
CURVE_COLUMNS = ("finetune", "task", "alpha", "model", "protocol", "metric", "biometric", "gelo_zeroshot",
                 "gelo_linear_probe", "gain_kept", "zeroshot_loss_recovered", "linear_probe_loss_recovered",
                 "chosen")


def biometric_scores(metrics: pd.DataFrame, protocol: str, metric: str) -> dict[str, float]:
    """Per model, the mean of `metric` over the benchmarks (datasets) of `protocol`."""
    rows = metrics[(metrics.protocol == protocol) & (metrics.metric == metric) & (metrics.dataset != AVERAGE_DATASET)  # recomputed from the subsets
                   & ~ci_rows(metrics)]
    return {model: math.fsum(group.value) / len(group) for model, group in rows.groupby("model", sort=True)}


def task_metric(metrics: pd.DataFrame, task: str, models: Sequence[str]) -> tuple[str, str, dict[str, float]]:
    """The first of the task's metrics that every model in `models` has, with the scores."""
    for protocol, metric in TASK_METRICS[task]:
        scores = biometric_scores(metrics, protocol, metric)
        if all(m in scores and not math.isnan(scores[m]) for m in models):
            return protocol, metric, scores
    wanted = " or ".join(f"{p} {m}" for p, m in TASK_METRICS[task])
    lacking = sorted(m for m in models if m not in biometric_scores(metrics, *TASK_METRICS[task][0]))
    raise UserError(f"The metrics table has no {wanted} for every model of a WiSE-FT curve (first lacking: "
                    f"{(lacking or list(models))[0]}); evaluate the {task} benchmarks for these models.")


def _share(value: float, start: float, end: float) -> float:
    """(value - start) / (end - start): how far from `start` towards `end`; NaN when they are equal."""
    span = end - start
    return (value - start) / span if span != 0 and not math.isnan(span) else math.nan


def choose_alpha(curve: pd.DataFrame, min_gelo: float) -> float | None:
    """The alpha with the best biometric score among those with every GELO >= min_gelo (see module doc)."""
    gelo = curve[[f"gelo_{p}" for p in GELO_PROTOCOLS]].dropna(axis=1, how="all")
    keeps = (gelo >= min_gelo).all(axis=1) if gelo.shape[1] else pd.Series(True, index=curve.index)
    candidates = curve[keeps]
    if candidates.empty:
        return None
    sign = -1.0 if lower_is_better(curve.metric.iloc[0]) else 1.0
    worst_gelo = gelo.loc[candidates.index].min(axis=1) if gelo.shape[1] else 0.0 * candidates.alpha
    order = sorted(candidates.index, key=lambda i: (-sign * candidates.biometric[i], -worst_gelo[i], candidates.alpha[i]))
    return float(candidates.alpha[order[0]])


def curve_table(metrics: pd.DataFrame, gelo: pd.DataFrame, curves: Mapping[str, Sequence[Mapping[str, Any]]],
                min_gelo: float) -> pd.DataFrame:
    """One row per (fine-tune, alpha) with the columns of CURVE_COLUMNS."""
    tasks = dict(zip(metrics.model, metrics.adaptation))
    gelo_of = {(m, p): g for m, p, g in zip(gelo.model, gelo.protocol, gelo.gelo)}
    frames = []
    for finetune, points in sorted(curves.items()):
        if finetune not in tasks:
            raise UserError(f"The metrics table has no rows for the fine-tune {finetune}; rerun aggregate_tables.")
        task = tasks[finetune]
        models = [p["model"] for p in points]
        protocol, metric, scores = task_metric(metrics, task, models)
        rows = []
        for point in sorted(points, key=lambda p: p["alpha"]):
            row = {"finetune": finetune, "task": task, "alpha": float(point["alpha"]), "model": point["model"],
                   "protocol": protocol, "metric": metric, "biometric": scores[point["model"]]}
            for p in GELO_PROTOCOLS:
                row[f"gelo_{p}"] = gelo_of.get((point["model"], p), math.nan)
            rows.append(row)
        frame = pd.DataFrame(rows)
        ends = frame.set_index("alpha")
        start, end = (ends.loc[a] if a in ends.index else None for a in (0.0, 1.0))
        frame["gain_kept"] = [_share(v, start.biometric, end.biometric) if start is not None and end is not None
                              else math.nan for v in frame.biometric]
        for p in GELO_PROTOCOLS:
            frame[f"{p}_loss_recovered"] = [
                _share(v, end[f"gelo_{p}"], start[f"gelo_{p}"]) if start is not None and end is not None else math.nan
                for v in frame[f"gelo_{p}"]]
        chosen = choose_alpha(frame, min_gelo)
        frame["chosen"] = frame.alpha == chosen if chosen is not None else False
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]


def curve_csv(table: pd.DataFrame) -> str:
    return float_csv(table, ["alpha", *CURVE_COLUMNS[6:12]])


def _label(protocol: str, metric: str) -> str:
    return f"{PROTOCOL_LABELS.get(protocol, protocol)} {metric_label(metric)}"


def _fixed(value: float, scale: float = 1.0, digits: int = 3) -> str:
    return "" if pd.isna(value) else f"{scale * value:.{digits}f}"


def curve_markdown(table: pd.DataFrame, min_gelo: float) -> str:
    parts = ["# WiSE-FT: biometric score against general ability\n",
             f"Models interpolated in weight space between each fine-tune (alpha 1) and its baseline (alpha 0), the "
             f"fine-tune's head kept. The chosen alpha has the best biometric score among those keeping zero-shot "
             f"and linear-probe GELO >= {min_gelo:g}. Gain kept: share of the alpha 0 -> 1 biometric change; loss "
             f"recovered: share of the fine-tune's GELO loss undone.\n"]
    if table.empty:
        return "\n".join(parts + ["_No WiSE-FT curve in this run._\n"])
    for finetune, curve in table.groupby("finetune", sort=True):
        label = _label(curve.protocol.iloc[0], curve.metric.iloc[0])
        frame = pd.DataFrame({
            "alpha": curve.alpha.map(lambda a: f"{a:.2f}"),
            "model": curve.model,
            f"{label} (%)": curve.biometric.map(lambda v: _fixed(v, 100, 2)),
            **{f"{PROTOCOL_SHORT[p]} GELO": curve[f"gelo_{p}"].map(_fixed) for p in GELO_PROTOCOLS},
            "gain kept": curve.gain_kept.map(_fixed),
            **{f"{PROTOCOL_SHORT[p]} loss recovered": curve[f"{p}_loss_recovered"].map(_fixed) for p in GELO_PROTOCOLS},
        })
        chosen = curve[curve.chosen]
        if chosen.empty:
            verdict = f"No alpha keeps GELO >= {min_gelo:g} under both protocols."
        else:
            row = chosen.iloc[0]
            verdict = (f"Chosen alpha: {row.alpha:.2f} ({row.model}: {label} {_fixed(row.biometric, 100, 2)}%, "
                       + ", ".join(f"{PROTOCOL_SHORT[p]} GELO {_fixed(row[f'gelo_{p}'])}" for p in GELO_PROTOCOLS)
                       + ")" + (f": no alpha above 0 keeps GELO >= {min_gelo:g} under both protocols." if row.alpha == 0
                                else "."))
        align = ["right", "left"] + ["right"] * (frame.shape[1] - 2)
        parts += [f"## {finetune} ({curve.task.iloc[0].upper()})\n",
                  frame.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n", verdict + "\n"]
    return "\n".join(parts)


def plot_curves(table: pd.DataFrame, out_stem: str | os.PathLike, min_gelo: float) -> dict[str, Path]:
    """One panel per fine-tune: its biometric score (y) against each protocol's GELO (x), alphas marked."""
    finetunes = sorted(set(table.finetune))
    with rc_context(STYLE):
        fig = Figure(figsize=(max(4.2, 3.8 * len(finetunes)), 3.6), layout="constrained")
        if not finetunes:
            ax = fig.add_subplot()
            ax.set_axis_off()
            ax.text(0.5, 0.5, "No WiSE-FT curve in this run.", ha="center", va="center")
            return save_figure(fig, out_stem)
        axes = fig.subplots(1, len(finetunes), squeeze=False)[0]
        for ax, finetune in zip(axes, finetunes):
            curve = table[table.finetune == finetune].sort_values("alpha")
            for j, protocol in enumerate(GELO_PROTOCOLS):
                x = curve[f"gelo_{protocol}"].to_numpy(dtype=float)
                if np.isnan(x).all():
                    continue
                ax.plot(x, curve.biometric, marker=MARKERS[j], color=PALETTE[j], linewidth=1.2,
                        label=f"{PROTOCOL_LABELS[protocol]} GELO")
                for xi, yi, alpha in zip(x, curve.biometric, curve.alpha):
                    ax.annotate(f"{alpha:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
                chosen = curve[curve.chosen]
                ax.scatter(chosen[f"gelo_{protocol}"], chosen.biometric, s=140, facecolors="none",
                           edgecolors="black", linewidths=1.0, zorder=3)
            ax.axvline(min_gelo, color="black", linestyle="--", linewidth=0.8)
            ax.set_xlabel("GELO (alpha annotated; ring: chosen)")
            ax.set_ylabel(_label(curve.protocol.iloc[0], curve.metric.iloc[0]))
            ax.set_title(finetune)
            ax.legend(loc="best", frameon=True)
        return save_figure(fig, out_stem)


def write_wiseft(metrics_csv: str | os.PathLike, gelo_csv: str | os.PathLike,
                 curves: Mapping[str, Sequence[Mapping[str, Any]]], outputs: Mapping[str, str | os.PathLike], *,
                 min_gelo: float = 0.95, provenance: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Write the curves as `outputs['csv']`, `['md']` and the figure `['png']`/`['svg']` (same stem)."""
    table = curve_table(read_metrics(metrics_csv), read_gelo(gelo_csv), curves, min_gelo)
    written = [write_text_file(outputs["csv"], curve_csv(table)), write_text_file(outputs["md"], curve_markdown(table, min_gelo))]
    stem = Path(outputs["png"]).with_suffix("")
    if Path(outputs["svg"]).with_suffix("") != stem:
        raise ValueError("the WiSE-FT figure's png and svg outputs must share one stem")
    written += list(plot_curves(table, stem, min_gelo).values())
    write_sidecars(written, provenance)
    return table
