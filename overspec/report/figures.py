"""The study's figures, each written as PNG and SVG (atomically, byte-stable for the same input).

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, so no global backend or
state), in a print style: fonts of 9 pt and up, labelled axes, the Okabe-Ito colour-blind-safe
palette, and hatching so bars stay apart in greyscale. SVGs carry no date and a fixed hash salt;
PNGs carry no software tag, so identical inputs give identical files.

Score files (for ROC/DET and TAR-FAR) are CSVs with ``sample_id, score, label`` and optionally
``subset`` / ``attack_type``; ``label`` 1 is genuine (a mated pair; a bona fide presentation),
0 impostor or attack, and a higher score means more genuine (as in ``overspec.metrics.roc``).
Training logs are CSVs with ``step``, ``loss`` and any other numeric columns.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from statistics import NormalDist
from typing import Iterator, Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from overspec.errors import UserError
from overspec.metrics.roc import roc_curve
from overspec.provenance import atomic_path
from overspec.report.gelo import PRIMARY
from overspec.report.names import BASELINE, GELO_PROTOCOLS, PROTOCOL_LABELS, dataset_label, dataset_sort_key
from overspec.report.schema import baselines_by_backbone, check_metrics, model_sort_key

# Okabe & Ito (2008), distinguishable under the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo")
MARKERS = ("o", "s", "^", "D", "v", "P")
DPI = 200
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "svg.hashsalt": "overspec",
    "svg.fonttype": "path",
    "path.simplify": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
ScoreSource = str | os.PathLike | pd.DataFrame


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def save_figure(fig: Figure, out_stem: str | os.PathLike) -> dict[str, Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` atomically, without dates or software tags."""
    stem = Path(out_stem)
    written = {}
    for fmt, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
        path = stem.with_name(stem.name + "." + fmt)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            fig.savefig(handle, format=fmt, dpi=DPI, metadata=metadata, bbox_inches="tight")
        written[fmt] = path
    return written


def _empty(fig: Figure, message: str) -> None:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11)


def _tuned_gelo(gelo: pd.DataFrame) -> pd.DataFrame:
    return gelo[gelo.adaptation != BASELINE]


def _model_order(frame: pd.DataFrame) -> list[str]:
    triples = frame[["model", "backbone", "adaptation"]].drop_duplicates().itertuples(index=False, name=None)
    return [m for m, b, a in sorted(triples, key=lambda t: model_sort_key(t[2], t[1], t[0]))]


# -- GELO ------------------------------------------------------------------------------------


def plot_gelo(gelo: pd.DataFrame, out_stem: str | os.PathLike) -> dict[str, Path]:
    """Bars of GELO per fine-tuned model, one bar per protocol, with the no-loss line at 1."""
    tuned = _tuned_gelo(gelo)
    models = _model_order(tuned)
    protocols = [p for p in GELO_PROTOCOLS if p in set(tuned.protocol)]
    with _style():
        fig = Figure(figsize=(max(4.5, 1.0 + 0.9 * len(models) * max(1, len(protocols))), 3.6))
        if tuned.empty:
            _empty(fig, "No fine-tuned model with zero-shot or linear-probe results in this run.")
            return save_figure(fig, out_stem)
        ax = fig.add_subplot()
        value = {(m, p): g for m, p, g in zip(tuned.model, tuned.protocol, tuned.gelo)}
        width = 0.8 / len(protocols)
        x = np.arange(len(models))
        for j, protocol in enumerate(protocols):
            heights = [value.get((m, protocol), np.nan) for m in models]
            bars = ax.bar(
                x + (j - (len(protocols) - 1) / 2) * width,
                heights,
                width,
                label=PROTOCOL_LABELS[protocol],
                color=PALETTE[j],
                hatch=HATCHES[j],
                edgecolor="black",
                linewidth=0.6,
            )
            ax.bar_label(bars, fmt="%.3f", fontsize=9, padding=2)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
        top = float(np.nanmax(tuned.gelo))
        ax.set_ylim(0.0, max(1.1, top * 1.12))
        ax.set_xticks(x, models, rotation=20 if len(models) > 3 else 0, ha="right" if len(models) > 3 else "center")
        ax.set_xlabel("Fine-tuned model")
        ax.set_ylabel("GELO (mean after / before)")
        ax.set_title("Generalization retained after fine-tuning")
        ax.legend(loc="lower right", frameon=True)
        return save_figure(fig, out_stem)


def plot_retention_scatter(gelo: pd.DataFrame, out_stem: str | os.PathLike) -> dict[str, Path]:
    """Zero-shot GELO (x) against linear-probe GELO (y) per model; colour adaptation, marker backbone."""
    tuned = _tuned_gelo(gelo)
    pivot = tuned.pivot_table(index=["model", "backbone", "adaptation"], columns="protocol", values="gelo")
    with _style():
        fig = Figure(figsize=(4.8, 4.4))
        if not {"zeroshot", "linear_probe"} <= set(pivot.columns) or pivot.dropna().empty:
            _empty(fig, "No model has both zero-shot and linear-probe GELO in this run.")
            return save_figure(fig, out_stem)
        pivot = pivot.dropna(subset=["zeroshot", "linear_probe"]).reset_index()
        ax = fig.add_subplot()
        adaptations = sorted(set(pivot.adaptation))
        backbones = sorted(set(pivot.backbone))
        # colour (adaptation) and marker (backbone) name a point; names are added only when they do not
        named = pivot.duplicated(["adaptation", "backbone"], keep=False).any()
        for r in pivot.sort_values(["adaptation", "backbone", "model"]).itertuples(index=False):
            ax.scatter(
                r.zeroshot,
                r.linear_probe,
                s=55,
                color=PALETTE[adaptations.index(r.adaptation) % len(PALETTE)],
                marker=MARKERS[backbones.index(r.backbone) % len(MARKERS)],
                edgecolor="black",
                linewidth=0.6,
                zorder=3,
            )
            if named:
                ax.annotate(
                    r.model, (r.zeroshot, r.linear_probe), textcoords="offset points", xytext=(5, 4), fontsize=9
                )
        values = np.concatenate([pivot.zeroshot.to_numpy(), pivot.linear_probe.to_numpy(), [1.0]])
        low, high = float(values.min()), float(values.max())
        pad = max(0.02, 0.08 * (high - low))
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", linestyle=":", linewidth=0.8)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=0.6)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=0.6)
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
        handles = [
            ax.scatter([], [], color=PALETTE[i % len(PALETTE)], marker="o", edgecolor="black", label=a)
            for i, a in enumerate(adaptations)
        ] + [
            ax.scatter([], [], color="white", marker=MARKERS[i % len(MARKERS)], edgecolor="black", label=b)
            for i, b in enumerate(backbones)
        ]
        ax.legend(handles=handles, loc="best", frameon=True)
        ax.set_xlabel("Zero-shot GELO")
        ax.set_ylabel("Linear-probe GELO")
        ax.set_title("Retention: zero-shot vs linear probe")
        return save_figure(fig, out_stem)


def plot_tradeoff(points: pd.DataFrame, out_stem: str | os.PathLike) -> dict[str, Path]:
    """Own-task gain (x) against GELO (y), one panel per GELO protocol, one labelled marker per model.

    ``points``: ``overspec.report.tradeoff.tradeoff_points``. Colour is the task, marker the backbone;
    a WiSE-FT line joins a fine-tune's models in order of alpha. Models of a remedy group (column
    ``reference`` set) are coloured by remedy instead (the plain reference keeps its task's colour),
    labelled by strength, and each group's Pareto front (column ``front``) is a dashed line; a
    model that did not learn its task is drawn hollow. Each model's marker carries the SVG id
    ``tradeoff-<protocol>-<model>``, each front ``tradeoff-front-<protocol>-<reference>``.
    """
    protocols = [p for p in GELO_PROTOCOLS if p in set(points.protocol)]
    with _style():
        fig = Figure(figsize=(5.0 * max(1, len(protocols)), 4.6), layout="constrained")
        if points.empty:
            _empty(fig, "No fine-tuned model has both an own-task result and a GELO in this run.")
            return save_figure(fig, out_stem)
        points = _with_remedy_columns(points)
        tasks, backbones = sorted(set(points.task)), sorted(set(points.backbone))
        remedies = sorted(set(points.remedy) - {"", "none"})
        colour_of_remedy = {r: REMEDY_PALETTE[i % len(REMEDY_PALETTE)] for i, r in enumerate(remedies)}
        if remedies:  # a wider figure: many points and a long legend
            fig.set_size_inches(6.4 * max(1, len(protocols)), 5.6)
        axes = fig.subplots(1, len(protocols), squeeze=False)[0]
        for ax, protocol in zip(axes, protocols):
            rows = points[points.protocol == protocol]
            for finetune, line in rows[rows.finetune != ""].groupby("finetune", sort=True):
                line = line.sort_values("alpha")
                ax.plot(line.gain_pp, line.gelo, color="grey", linewidth=1.0, linestyle="-", zorder=2)
            for reference, front in rows[rows.front.astype(bool)].groupby("reference", sort=True):
                front = front.sort_values("gain_pp")
                ax.plot(front.gain_pp, front.gelo, color="black", linewidth=1.0, linestyle="--", zorder=2,
                        gid=f"tradeoff-front-{protocol}-{reference}")
            for r in rows.sort_values(["task", "backbone", "model"]).itertuples(index=False):
                colour = colour_of_remedy.get(r.remedy, PALETTE[tasks.index(r.task) % len(PALETTE)])
                ax.scatter(r.gain_pp, r.gelo, s=60, color=colour if r.learned else "white",
                           marker=MARKERS[backbones.index(r.backbone) % len(MARKERS)],
                           edgecolor="black" if r.learned else colour, linewidth=0.6 if r.learned else 1.4,
                           zorder=3, gid=f"tradeoff-{protocol}-{r.model}")
                label = r.model if not r.reference else _remedy_label(r.remedy, r.strength)
                ax.annotate(label, (r.gain_pp, r.gelo), textcoords="offset points", xytext=(5, 4),
                            fontsize=8 if not r.reference else 6.5)
            ax.axhline(1.0, color="black", linestyle="--", linewidth=0.6)
            ax.axvline(0.0, color="black", linestyle="--", linewidth=0.6)
            ax.set_xlabel("Own-task gain over the baseline (pp)")
            ax.set_ylabel(f"{PROTOCOL_LABELS[protocol]} GELO")
            ax.set_title(f"What was bought vs what was kept: {PROTOCOL_LABELS[protocol].lower()}")
            ax.margins(x=0.15, y=0.1)
        handles = [
            axes[0].scatter([], [], color=PALETTE[i % len(PALETTE)], marker="o", edgecolor="black", label=t)
            for i, t in enumerate(tasks)
        ] + [
            axes[0].scatter([], [], color="white", marker=MARKERS[i % len(MARKERS)], edgecolor="black", label=b)
            for i, b in enumerate(backbones)
        ] + [
            axes[0].scatter([], [], color=colour_of_remedy[r], marker="o", edgecolor="black", label=f"remedy: {r}")
            for r in remedies
        ]
        if points.front.astype(bool).any():
            handles += axes[0].plot([], [], color="black", linestyle="--", linewidth=1.0, label="Pareto front")
        if not points.learned.astype(bool).all():
            handles.append(axes[0].scatter([], [], color="white", marker="o", edgecolor="grey",
                                           label="did not learn its task"))
        axes[0].legend(handles=handles, loc="best", frameon=True, fontsize=7 if remedies else 8)
        fig.supxlabel("Gain: FR mean pair-set accuracy, MAD mean D-EER, PAD HTER (lower error = positive gain)",
                      fontsize=9)
        return save_figure(fig, out_stem)


# Remedy colours, apart from the task colours (the first three of PALETTE)
REMEDY_PALETTE = ("#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000", "#8C564B", "#7F7F7F")


def _remedy_label(remedy: str, strength: str) -> str:
    """``weight=10``, ``freeze_blocks=2`` (a bare value gets its remedy's name), ``plain`` for the reference."""
    if not strength:
        return "plain" if remedy in ("", "none") else remedy
    return strength if "=" in strength else f"{remedy}={strength}"


def _with_remedy_columns(points: pd.DataFrame) -> pd.DataFrame:
    """Points made without remedy information (older callers): no group, every model learned."""
    defaults = {"learned": True, "reference": "", "remedy": "", "strength": "", "front": False}
    return points.assign(**{k: v for k, v in defaults.items() if k not in points.columns})


def plot_capacity(
    gelo: pd.DataFrame, out_stem: str | os.PathLike, backbone_order: Sequence[str] | None = None
) -> dict[str, Path]:
    """GELO of each adaptation across backbones (small to large), one panel per protocol.

    Only adaptations fine-tuned on two or more backbones appear. ``backbone_order`` lists
    backbones from smallest to largest (default: alphabetical).
    """
    tuned = _tuned_gelo(gelo)
    spread = tuned.groupby("adaptation").backbone.nunique()
    shown = tuned[tuned.adaptation.isin(spread[spread >= 2].index)]
    order = list(backbone_order) if backbone_order else sorted(set(shown.backbone))
    shown = shown[shown.backbone.isin(order)]
    protocols = [p for p in GELO_PROTOCOLS if p in set(shown.protocol)]
    with _style():
        fig = Figure(figsize=(3.4 * max(1, len(protocols)) + 0.6, 3.6))
        if shown.empty:
            _empty(fig, "No adaptation was fine-tuned on two backbones in this run.")
            return save_figure(fig, out_stem)
        axes = fig.subplots(1, len(protocols), sharey=True, squeeze=False)[0]
        adaptations = sorted(set(shown.adaptation))
        for ax, protocol in zip(axes, protocols):
            for i, adaptation in enumerate(adaptations):
                rows = shown[(shown.protocol == protocol) & (shown.adaptation == adaptation)]
                # one model per (adaptation, backbone) is the capacity comparison; ablations average
                by_backbone = rows.groupby("backbone").gelo.mean()
                xs = [order.index(b) for b in order if b in by_backbone.index]
                ys = [by_backbone[b] for b in order if b in by_backbone.index]
                ax.plot(
                    xs,
                    ys,
                    marker=MARKERS[i % len(MARKERS)],
                    color=PALETTE[i % len(PALETTE)],
                    linewidth=1.5,
                    markersize=7,
                    markeredgecolor="black",
                    label=adaptation,
                )
            ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
            ax.set_xticks(range(len(order)), order)
            ax.set_xlim(-0.4, len(order) - 0.6)
            ax.set_xlabel("Backbone (smaller to larger)")
            ax.set_title(PROTOCOL_LABELS[protocol])
        axes[0].set_ylabel("GELO (mean after / before)")
        axes[-1].legend(title="Adaptation", loc="lower right", frameon=True)
        return save_figure(fig, out_stem)


# -- per-dataset retention -------------------------------------------------------------------


def retention_frame(metrics: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Model primary / baseline primary per dataset (rows fine-tuned models, columns datasets)."""
    frame = check_metrics(metrics)
    primary = frame[(frame.protocol == protocol) & (frame.metric == PRIMARY)]
    baselines = baselines_by_backbone(frame)
    value = {(m, d): v for m, d, v in zip(primary.model, primary.dataset, primary.value)}
    datasets = sorted(set(primary.dataset), key=dataset_sort_key)
    tuned = primary[primary.adaptation != BASELINE]
    rows = {}
    for model in _model_order(tuned):
        backbone = tuned.loc[tuned.model == model, "backbone"].iloc[0]
        base = baselines.get(backbone)
        rows[model] = [
            value.get((model, d), np.nan) / value[(base, d)] if base and value.get((base, d)) else np.nan
            for d in datasets
        ]
    return pd.DataFrame.from_dict(rows, orient="index", columns=datasets)


def plot_retention_heatmap(
    metrics: pd.DataFrame, out_stem: str | os.PathLike, protocols: Sequence[str] = GELO_PROTOCOLS
) -> dict[str, Path]:
    """Heatmaps of per-dataset retention (model / baseline accuracy), one panel per protocol."""
    grids = [(p, retention_frame(metrics, p)) for p in protocols]
    grids = [(p, g) for p, g in grids if not g.empty]
    with _style():
        if not grids:
            fig = Figure(figsize=(5, 2.5))
            _empty(fig, "No fine-tuned model with zero-shot or linear-probe results in this run.")
            return save_figure(fig, out_stem)
        # one row order for every panel, so the model names on the left read across all of them
        models = list(dict.fromkeys(m for _, g in grids for m in g.index))
        grids = [(p, g.reindex(models)) for p, g in grids]
        n_cols = sum(g.shape[1] for _, g in grids)
        fig = Figure(figsize=(2.4 + 0.55 * n_cols + 1.0, 1.8 + 0.45 * len(models)))
        values = np.concatenate([g.to_numpy().ravel() for _, g in grids])
        finite = values[np.isfinite(values)]
        spread = max(0.05, float(np.max(np.abs(finite - 1.0)))) if finite.size else 0.5
        norm = TwoSlopeNorm(vcenter=1.0, vmin=1.0 - spread, vmax=1.0 + spread)
        axes = fig.subplots(
            1, len(grids), squeeze=False, sharey=True, gridspec_kw={"width_ratios": [g.shape[1] for _, g in grids]}
        )[0]
        image = None
        for ax, (protocol, grid) in zip(axes, grids):
            image = ax.imshow(grid.to_numpy(), cmap="RdBu", norm=norm, aspect="auto")
            ax.set_xticks(range(grid.shape[1]), [dataset_label(d) for d in grid.columns], rotation=60, ha="right")
            ax.set_yticks(range(grid.shape[0]), grid.index)
            ax.tick_params(axis="y", labelleft=ax is axes[0])
            ax.set_title(PROTOCOL_LABELS.get(protocol, protocol))
            ax.set_xlabel("Dataset")
            for (i, j), v in np.ndenumerate(grid.to_numpy()):
                if np.isfinite(v):
                    dark = abs(v - 1.0) > 0.6 * spread
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color="white" if dark else "black")
            for spine in ax.spines.values():
                spine.set_visible(False)
        axes[0].set_ylabel("Fine-tuned model")
        bar = fig.colorbar(image, ax=list(axes), fraction=0.04, pad=0.02)
        bar.set_label("Accuracy retained (model / baseline)")
        return save_figure(fig, out_stem)


# -- score curves ----------------------------------------------------------------------------


def read_scores(source: ScoreSource, score_column: str = "score", unit: str | None = None) -> pd.DataFrame:
    """A score table with at least ``label`` (0/1) and ``score_column``, which becomes ``score``.

    ``unit`` (e.g. ``video_id`` with ``score_column="video_score"``) keeps one row per unit, so
    PAD curves count videos, as PAD metrics do. Of a file, only the columns curves use are read
    (``label``, the score, ``unit``, ``subset``, ``attack_type``); a DataFrame keeps all of its.
    """
    if isinstance(source, pd.DataFrame):
        frame, name = source.copy(), "the score table"
    else:
        name = str(source)
        # only the columns a curve uses: an IJB-C score file has 15.7M rows
        wanted = {"label", score_column, unit, "subset", "attack_type"}
        try:
            frame = pd.read_csv(source, usecols=lambda column: column in wanted)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise UserError(
                f"Cannot read score file {name} ({error}); regenerate it with the evaluation step."
            ) from None
    missing = [c for c in ("label", score_column) if c not in frame.columns]
    if missing:
        raise UserError(
            f"Score file {name} lacks the columns {', '.join(missing)}; "
            f"it needs label (1 genuine, 0 not) and {score_column}."
        )
    if unit is not None and unit in frame.columns:
        frame = frame.drop_duplicates(unit).reset_index(drop=True)
    frame["score"] = frame[score_column]
    labels = pd.to_numeric(frame["label"], errors="coerce")
    scores = pd.to_numeric(frame["score"], errors="coerce")
    if not labels.isin([0, 1]).all() or not np.isfinite(scores.to_numpy(dtype=float)).all():
        raise UserError(f"Score file {name} has labels other than 0/1 or non-finite scores; regenerate it.")
    frame["label"], frame["score"] = labels.astype(int), scores.astype(float)
    return frame


def _curve_groups(
    sources: Mapping[str, ScoreSource], by: str | None, score_column: str = "score", unit: str | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, genuine scores, impostor scores) per curve.

    One source split ``by`` a column: ``attack_type`` pools every genuine sample against the
    impostors of each type; ``subset`` splits both classes. ``by="auto"`` takes attack_type,
    then subset, when the column has two or more values; several sources give one curve each.
    """
    frames = {name: read_scores(src, score_column, unit) for name, src in sources.items()}
    if len(frames) == 1:
        name, frame = next(iter(frames.items()))
        if by == "auto":
            by = next(
                (
                    c
                    for c in ("attack_type", "subset")
                    if c in frame.columns and frame.loc[frame.label == 0, c].nunique() >= 2
                ),
                None,
            )
        if by in ("attack_type", "subset") and by in frame.columns:
            curves = []
            for value in sorted(frame.loc[frame.label == 0, by].dropna().astype(str).unique()):
                impostor = frame[(frame.label == 0) & (frame[by].astype(str) == value)]
                genuine = frame[frame.label == 1]
                if by == "subset":
                    genuine = genuine[genuine[by].astype(str) == value]
                if len(genuine) and len(impostor):
                    curves.append((value, genuine.score.to_numpy(), impostor.score.to_numpy()))
            if curves:
                return curves
    curves = []
    for name, frame in frames.items():
        genuine, impostor = frame.score[frame.label == 1].to_numpy(), frame.score[frame.label == 0].to_numpy()
        if len(genuine) == 0 or len(impostor) == 0:
            raise UserError(f"Scores for {name!r} need both genuine (label 1) and impostor/attack (label 0) samples.")
        curves.append((name, genuine, impostor))
    return curves


def _thin(x: np.ndarray, y: np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most ~max_points points, keeping both ends (curves from millions of scores plot fast)."""
    if len(x) <= max_points:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(int))
    return x[keep], y[keep]


_PROBIT = NormalDist()
_DET_TICKS = np.array([0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95])


def _probit(rates: np.ndarray, floor: float) -> np.ndarray:
    clipped = np.clip(rates, floor, 1.0 - floor)
    return np.array([_PROBIT.inv_cdf(float(r)) for r in clipped])


def plot_attack_curves(
    sources: Mapping[str, ScoreSource] | ScoreSource,
    out_stem: str | os.PathLike,
    *,
    title: str = "Attack detection",
    by: str | None = "auto",
    score_column: str = "score",
    unit: str | None = None,
) -> dict[str, Path]:
    """ROC (APCER vs 1 - BPCER) and DET (APCER vs BPCER, normal-deviate axes) for MAD or PAD.

    ``sources`` maps a curve label (e.g. a model) to a score CSV or DataFrame; a single source
    is split into one curve per attack type or subset where the file has them. For PAD video
    scores pass ``score_column="video_score", unit="video_id"``.
    """
    if not isinstance(sources, Mapping):
        sources = {Path(sources).stem if not isinstance(sources, pd.DataFrame) else "scores": sources}
    curves = _curve_groups(sources, by, score_column, unit)
    floor = min(0.001, 0.5 / max(len(i) for _, _, i in curves))
    with _style():
        fig = Figure(figsize=(8.4, 3.9))
        roc_ax, det_ax = fig.subplots(1, 2)
        for k, (label, genuine, impostor) in enumerate(curves):
            roc = roc_curve(genuine, impostor)
            apcer, bpcer = _thin(roc.far, roc.frr)
            style = {
                "color": PALETTE[k % len(PALETTE)],
                "linewidth": 1.5,
                "linestyle": ("-", "--", "-.", ":")[k // 8 % 4],
            }
            roc_ax.plot(apcer, 1.0 - bpcer, label=label, **style)
            det_ax.plot(_probit(apcer, floor), _probit(bpcer, floor), label=label, **style)
        roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
        roc_ax.set_xlim(0, 1)
        roc_ax.set_ylim(0, 1.01)
        roc_ax.set_xlabel("APCER (attacks accepted)")
        roc_ax.set_ylabel("1 - BPCER (bona fide accepted)")
        roc_ax.set_title("ROC")
        ticks = _DET_TICKS[_DET_TICKS >= floor]
        positions = _probit(ticks, floor)
        labels = [f"{100 * t:g}" for t in ticks]
        for axis in (det_ax.xaxis, det_ax.yaxis):
            axis.set_ticks(positions, labels)
        det_ax.set_xlim(positions[0], positions[-1])
        det_ax.set_ylim(positions[0], positions[-1])
        det_ax.plot(positions, positions, color="grey", linestyle=":", linewidth=0.8)
        det_ax.set_xlabel("APCER (%)")
        det_ax.set_ylabel("BPCER (%)")
        det_ax.set_title("DET")
        det_ax.legend(loc="upper right", frameon=True)
        fig.suptitle(title)
        return save_figure(fig, out_stem)


def plot_tar_far(
    sources: Mapping[str, ScoreSource] | ScoreSource,
    out_stem: str | os.PathLike,
    *,
    title: str = "IJB verification",
    by: str | None = "auto",
) -> dict[str, Path]:
    """TAR against FAR (log scale) per model or per subset, e.g. IJB-B / IJB-C template pairs."""
    if not isinstance(sources, Mapping):
        sources = {Path(sources).stem if not isinstance(sources, pd.DataFrame) else "scores": sources}
    curves = _curve_groups(sources, by)
    with _style():
        fig = Figure(figsize=(5.2, 4.0))
        ax = fig.add_subplot()
        lowest = 1.0
        for k, (label, genuine, impostor) in enumerate(curves):
            roc = roc_curve(genuine, impostor)
            far, tar = roc.far[1:], roc.tar[1:]  # point 0 (nothing accepted) has FAR 0: not on a log axis
            positive = far > 0
            # log-spaced thinning keeps the low-FAR end, which is what IJB results are read at
            grid = np.unique(
                np.searchsorted(far[positive], np.geomspace(far[positive][0], 1.0, 400)).clip(0, positive.sum() - 1)
            )
            x, y = far[positive][grid], tar[positive][grid]
            lowest = min(lowest, float(x[0]))
            ax.plot(x, y, label=label, color=PALETTE[k % len(PALETTE)], linewidth=1.5)
        ax.set_xscale("log")
        ax.set_xlim(max(lowest, 1e-7), 1.0)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("False accept rate (FAR)")
        ax.set_ylabel("True accept rate (TAR)")
        ax.set_title(title)
        ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
        ax.legend(loc="lower right", frameon=True)
        return save_figure(fig, out_stem)


# -- training curves -------------------------------------------------------------------------


def read_training_log(source: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        frame, name = source, "the training log"
    else:
        name = str(source)
        try:
            frame = pd.read_csv(source)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise UserError(f"Cannot read training log {name} ({error}); rerun the fine-tuning step.") from None
    if "step" not in frame.columns or "loss" not in frame.columns:
        raise UserError(f"Training log {name} lacks a 'step' or 'loss' column; it needs step, loss, ...")
    return frame


LOSS_LABELS = {"cosface": "CosFace loss", "arcface": "ArcFace loss", "binary": "Binary cross-entropy"}
LOG_LABELS = {"lr_encoder": "Encoder learning rate", "lr_head": "Head learning rate", "grad_norm": "Encoder gradient norm",
              "grad_norm_head": "Head gradient norm", "accuracy": "Training accuracy"}


def plot_training_curves(
    logs: Mapping[str, str | os.PathLike | pd.DataFrame],
    out_stem: str | os.PathLike,
    loss_kinds: Mapping[str, str] | None = None,
    columns: Sequence[str] | None = None,
    max_panels: int = 9,
) -> dict[str, Path]:
    """One loss panel per loss kind, then one panel per other logged quantity (e.g. accuracy, lr).

    ``loss_kinds`` maps each fine-tune to its head type (``cosface``, ``binary``...): a CosFace loss
    (tens) and a binary cross-entropy (below 1) on one axis would flatten the latter, so each kind
    gets its own panel. One line per fine-tune; panels wrap to rows of three.
    """
    frames = {name: read_training_log(src) for name, src in sorted(logs.items())}
    kinds = {name: (loss_kinds or {}).get(name, "loss") for name in frames}
    if columns is None:
        numeric = []
        for frame in frames.values():
            numeric += [c for c in frame.columns if c not in numeric and pd.api.types.is_numeric_dtype(frame[c])]
        columns = [c for c in numeric if c not in ("step", "loss", "epoch")]
    panels = [("loss", kind) for kind in sorted(set(kinds.values()))]
    panels += [(column, None) for column in columns if column != "loss"][: max(0, max_panels - len(panels))]
    ncols = min(3, max(1, len(panels)))
    nrows = -(-len(panels) // ncols) if panels else 1
    with _style():
        fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained")
        if not frames:
            _empty(fig, "No training logs in this run.")
            return save_figure(fig, out_stem)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        colour = {name: PALETTE[k % len(PALETTE)] for k, name in enumerate(frames)}
        for ax, (column, kind) in zip(axes, panels):
            shown = {n: f for n, f in frames.items() if column in f.columns and (kind is None or kinds[n] == kind)}
            for name, frame in shown.items():
                x, y = _thin(frame.step.to_numpy(dtype=float), frame[column].to_numpy(dtype=float), 4000)
                ax.plot(x, y, color=colour[name], linewidth=1.2, label=name)
            ax.set_gid(f"training-{kind or column}")  # names the panel in the SVG
            ax.set_xlabel("Step")
            label = LOSS_LABELS.get(kind, "Loss") if kind else LOG_LABELS.get(column, column.replace("_", " "))
            ax.set_ylabel(label)
            ax.set_title(label)
            # learning-rate schedules span decades: a log axis shows warm-up and decay alike
            positive = all((f[column] > 0).all() for f in shown.values())
            if column.endswith("lr") or column.startswith("lr_"):
                if shown and positive:
                    ax.set_yscale("log")
            if shown:
                ax.legend(loc="best", frameon=True, fontsize=8)
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        fig.suptitle("Fine-tuning curves")
        return save_figure(fig, out_stem)


__all__ = [
    "PALETTE",
    "plot_attack_curves",
    "plot_capacity",
    "plot_gelo",
    "plot_retention_heatmap",
    "plot_retention_scatter",
    "plot_tar_far",
    "plot_tradeoff",
    "plot_training_curves",
    "read_scores",
    "read_training_log",
    "retention_frame",
    "save_figure",
]
