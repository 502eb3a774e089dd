"""The published numbers (Tables A, B, C and GELO of arXiv 2509.14921), and this run beside them.

``overspec/data/reference/paper_tables.csv`` holds every printed cell in long form: ``table,
approach, arch, protocol, dataset, metric, value``, with ``value`` exactly as printed (percent
for accuracies and error rates; GELO as a ratio). Avg. and GELO cells have dataset ``avg``.
Dataset and metric names are the ones this package's evaluations write (see ``report.names``);
MAD values are the paper's mean over its six test sets (dataset ``average``), PAD is
O&C&M -> CelebA-Spoof (``celeba_spoof``), and IJB is read as TAR at FAR = 1e-4 (the paper does
not say; see the reference notes).
"""

from __future__ import annotations

import html
import math
import os
from importlib import resources
from pathlib import Path
from typing import Mapping

import pandas as pd

from overspec.errors import UserError
from overspec.report.gelo import PRIMARY, gelo_table
from overspec.report.names import (
    BASELINE,
    GELO_PROTOCOLS,
    canonical_metric,
    dataset_sort_key,
    metric_sort_key,
    protocol_sort_key,
)
from overspec.report.schema import check_metrics
from overspec.report.tables import float_csv, write_text_file

PAPER_COLUMNS = ("table", "approach", "arch", "protocol", "dataset", "metric", "value")
# The paper's approaches and the adaptation each stands for in this package's vocabulary.
PAPER_ADAPTATIONS = {"CLIP": BASELINE, "FRoundation": "fr", "MADation": "mad", "FoundPAD": "pad"}
SUMMARY_DATASET = "avg"
COMPARISON_COLUMNS = ("model", "approach", "arch", "protocol", "dataset", "metric", "run", "paper", "difference")


def load_paper_tables(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The shipped table (or ``path``) with ``printed`` (the text) and ``value`` (its float)."""
    source = resources.files("overspec") / "data/reference/paper_tables.csv" if path is None else Path(path)
    with source.open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    missing = [c for c in PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"{source} lacks the columns {', '.join(missing)}; a paper table needs {', '.join(PAPER_COLUMNS)}."
        )
    frame["printed"] = frame["value"]
    frame["value"] = pd.to_numeric(frame["value"]).astype(float)
    frame["metric"] = frame["metric"].map(canonical_metric)
    return frame


def paper_model_name(approach: str, arch: str) -> str:
    return f"{approach} {arch}"


def paper_as_metrics(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's per-dataset cells as a ``metrics`` table (fractions; zs/lp accuracy -> ``primary``).

    Models are named "<approach> <arch>", backbones are the arch, CLIP is the baseline.
    """
    cells = paper[paper.dataset != SUMMARY_DATASET]
    unknown = sorted(set(cells.approach) - set(PAPER_ADAPTATIONS))
    if unknown:
        raise UserError(f"Paper table has unknown approaches {unknown}; known: {sorted(PAPER_ADAPTATIONS)}.")
    general = cells.protocol.isin(GELO_PROTOCOLS)
    return check_metrics(
        pd.DataFrame(
            {
                "model": [paper_model_name(a, b) for a, b in zip(cells.approach, cells.arch)],
                "backbone": cells.arch.to_numpy(),
                "adaptation": cells.approach.map(PAPER_ADAPTATIONS).to_numpy(),
                "protocol": cells.protocol.to_numpy(),
                "dataset": cells.dataset.to_numpy(),
                "metric": cells.metric.where(~general, PRIMARY).to_numpy(),
                "value": (cells.value / 100.0).to_numpy(),
                "n": pd.NA,
            }
        ),
        source="the paper table",
    )


def paper_row_labels(paper: pd.DataFrame) -> dict[str, tuple[str, str]]:
    pairs = paper[["approach", "arch"]].drop_duplicates().itertuples(index=False, name=None)
    return {paper_model_name(a, b): (a, b) for a, b in pairs}


def compare_with_paper(
    metrics: pd.DataFrame,
    paper: pd.DataFrame,
    model_map: Mapping[str, tuple[str, str]],
    dataset_map: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """This run beside the published value, per cell, for models mapped to (approach, arch).

    Columns ``model, approach, arch, protocol, dataset, metric, run, paper, difference`` in the
    paper's units (percent; GELO as a ratio); ``difference = run - paper``. Every published cell
    of a mapped model appears; one this run lacks has ``run`` NaN. Avg. rows average the run over
    the paper's datasets (NaN unless the run has them all); GELO rows divide by this run's
    baseline of the same backbone over those datasets (NaN if it cannot). ``dataset_map`` renames
    this run's datasets to the paper's names.
    """
    frame = check_metrics(metrics)
    unknown = sorted(set(model_map) - set(frame.model))
    if unknown:
        raise UserError(f"The paper mapping names models {unknown} that this run has no results for; fix the mapping.")
    frame["dataset"] = frame.dataset.map(lambda d: (dataset_map or {}).get(d, d))
    run = {(r.model, r.protocol, r.dataset, r.metric): r.value for r in frame.itertuples(index=False)}
    published = {(r.approach, r.arch, r.protocol, r.dataset, r.metric): r.value for r in paper.itertuples(index=False)}
    rows = []
    for model, (approach, arch) in sorted(model_map.items()):
        cells = paper[(paper.approach == approach) & (paper.arch == arch)]
        if cells.empty:
            raise UserError(f"Model {model!r} is mapped to {approach} {arch}, which the paper table does not have.")
        for r in cells.itertuples(index=False):
            if r.dataset == SUMMARY_DATASET:
                continue
            metric = PRIMARY if r.protocol in GELO_PROTOCOLS else r.metric
            value = 100.0 * run.get((model, r.protocol, r.dataset, metric), math.nan)
            rows.append((model, approach, arch, r.protocol, r.dataset, r.metric, value, r.value))
        for protocol in GELO_PROTOCOLS:
            datasets = sorted(set(cells[(cells.protocol == protocol) & (cells.dataset != SUMMARY_DATASET)].dataset))
            key = (approach, arch, protocol, SUMMARY_DATASET)
            if key + ("accuracy",) in published:
                got = [run.get((model, protocol, d, PRIMARY), math.nan) for d in datasets]
                average = 100.0 * math.fsum(got) / len(got) if datasets else math.nan
                rows.append(
                    (
                        model,
                        approach,
                        arch,
                        protocol,
                        SUMMARY_DATASET,
                        "accuracy",
                        average,
                        published[key + ("accuracy",)],
                    )
                )
            if key + ("gelo",) in published:
                rows.append(
                    (
                        model,
                        approach,
                        arch,
                        protocol,
                        SUMMARY_DATASET,
                        "gelo",
                        _run_gelo(frame, model, protocol, datasets),
                        published[key + ("gelo",)],
                    )
                )
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS[:-1]))
    table["difference"] = table["run"] - table["paper"]
    order = sorted(
        range(len(table)),
        key=lambda i: (
            protocol_sort_key(table.protocol[i]),
            table.model[i],
            dataset_sort_key(table.dataset[i]) if table.dataset[i] != SUMMARY_DATASET else (10**6, ""),
            metric_sort_key(table.metric[i]),
        ),
    )
    return table.iloc[order].reset_index(drop=True)


def _run_gelo(frame: pd.DataFrame, model: str, protocol: str, datasets: list[str]) -> float:
    """GELO over the paper's datasets, or NaN when the run cannot give it (no baseline, missing data)."""
    backbone = frame.loc[frame.model == model, "backbone"].iloc[0]
    peers = frame[(frame.backbone == backbone) & ((frame.model == model) | (frame.adaptation == BASELINE))]
    if not (peers.adaptation == BASELINE).any():
        return math.nan
    try:
        gelo = gelo_table(peers, {protocol: datasets})
    except UserError:
        return math.nan
    found = gelo[gelo.model == model]
    return float(found.gelo.iloc[0]) if len(found) else math.nan


COMPARISON_TITLE = "This run vs the paper"
COMPARISON_NOTE = "Percent (GELO as a ratio); difference = this run - published."
NO_COMPARISON = "No model of this run is mapped to a published model."


def comparison_display(comparison: pd.DataFrame) -> pd.DataFrame:
    """The comparison as printed: 2 decimals (GELO 3), signed differences, ``n/a`` where missing."""
    frame = comparison.copy()
    is_gelo = frame.metric == "gelo"
    for column in ("run", "paper", "difference"):
        sign = "+" if column == "difference" else ""
        frame[column] = [
            "n/a" if math.isnan(v) else f"{v:{sign}.{3 if g else 2}f}" for v, g in zip(frame[column], is_gelo)
        ]
    frame["dataset"] = frame["dataset"].replace({SUMMARY_DATASET: "Avg."})
    return frame


def comparison_markdown(comparison: pd.DataFrame) -> str:
    if comparison.empty:
        return f"# {COMPARISON_TITLE}\n\n_{NO_COMPARISON}_\n"
    align = ["left"] * 6 + ["right"] * 3
    table = comparison_display(comparison).to_markdown(index=False, disable_numparse=True, colalign=align)
    return f"# {COMPARISON_TITLE}\n\n{COMPARISON_NOTE}\n\n{table}\n"


def comparison_html(comparison: pd.DataFrame) -> str:
    """An HTML fragment of the comparison (what ``snakemake --report`` shows)."""
    head = f"<p><strong>{COMPARISON_TITLE}</strong></p>\n"
    if comparison.empty:
        return head + f"<p><em>{NO_COMPARISON}</em></p>\n"
    table = comparison_display(comparison).to_html(index=False, border=0, classes="overspec-table")
    return head + f"<p>{html.escape(COMPARISON_NOTE)}</p>\n{table}\n"


def write_paper_comparison(
    metrics: pd.DataFrame,
    out_dir: str | os.PathLike,
    model_map: Mapping[str, tuple[str, str]],
    *,
    dataset_map: Mapping[str, str] | None = None,
    paper: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write ``paper_comparison.csv`` (exact floats), ``.md`` and ``.html`` into ``out_dir``."""
    paper = load_paper_tables() if paper is None else paper
    comparison = compare_with_paper(metrics, paper, model_map, dataset_map)
    out = Path(out_dir)
    return {
        "csv": write_text_file(out / "paper_comparison.csv", float_csv(comparison, ("run", "paper", "difference"))),
        "md": write_text_file(out / "paper_comparison.md", comparison_markdown(comparison)),
        "html": write_text_file(out / "paper_comparison.html", comparison_html(comparison)),
    }
