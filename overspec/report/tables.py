"""Writing the study's tables: long-form CSV (metrics, GELO), wide Markdown, and paper-layout tables.

Every file is written atomically and byte-for-byte determined by its input: rows are sorted in
one fixed order and floats are written with ``repr`` (the shortest text that reads back to the
same float), so identical metrics give identical files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from overspec.provenance import atomic_path
from overspec.report.gelo import gelo_table
from overspec.report.layout import LayoutTable, RowLabels, biometric_table, gelo_summary_table, general_table
from overspec.report.names import GELO_PROTOCOLS, PROTOCOL_LABELS, protocol_sort_key
from overspec.report.schema import check_metrics, sort_metrics

PAPER_TABLES = ("zeroshot", "linear_probe", "biometrics", "gelo")


def write_text_file(path: str | os.PathLike, text: str) -> Path:
    """UTF-8, '\\n' line ends, via a temporary sibling renamed on success."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
    return path


def format_float(value: float) -> str:
    """Exact and stable: the shortest repr that round-trips; empty for NaN."""
    return "" if value is None or pd.isna(value) else repr(float(value))


def float_csv(frame: pd.DataFrame, floats: Iterable[str]) -> str:
    """``frame`` as CSV text with the ``floats`` columns written exactly (``format_float``)."""
    frame = frame.copy()
    for column in floats:
        frame[column] = frame[column].map(format_float)
    return frame.to_csv(index=False, lineterminator="\n")


def metrics_csv(metrics: pd.DataFrame) -> str:
    frame = sort_metrics(check_metrics(metrics))
    frame["value"] = frame["value"].map(format_float)
    frame["n"] = frame["n"].map(lambda n: "" if pd.isna(n) else str(int(n)))
    return frame.to_csv(index=False, lineterminator="\n")


def gelo_csv(gelo: pd.DataFrame) -> str:
    frame = gelo.copy()
    for column in ("avg_baseline", "avg_model", "gelo"):
        frame[column] = frame[column].map(format_float)
    return frame.to_csv(index=False, lineterminator="\n")


def gelo_markdown(gelo: pd.DataFrame) -> str:
    if gelo.empty:
        return "# GELO\n\n_No zero-shot or linear-probe results in this run._\n"
    frame = gelo.copy()
    for column in ("avg_baseline", "avg_model"):
        frame[column] = frame[column].map(lambda v: f"{100 * v:.2f}")
    frame["gelo"] = frame["gelo"].map(lambda v: f"{v:.3f}")
    frame = frame.rename(columns={"avg_baseline": "avg_baseline (%)", "avg_model": "avg_model (%)"})
    align = ["left"] * 4 + ["right"] * 3
    return (
        "# GELO\n\nMean primary metric over the same datasets, fine-tuned / baseline of the same backbone.\n\n"
        + frame.to_markdown(index=False, disable_numparse=True, colalign=align)
        + "\n"
    )


def metrics_markdown(
    metrics: pd.DataFrame, gelo: pd.DataFrame, datasets_by_protocol: Mapping[str, Sequence[str]] | None = None
) -> str:
    """One section per protocol: models x datasets (+ Avg. and GELO for zero-shot / linear probe)."""
    frame = check_metrics(metrics)
    parts = ["# Metrics\n", "Values in percent; [low, high] is a confidence interval where one was computed.\n"]
    for protocol in sorted(set(frame.protocol), key=protocol_sort_key):
        if protocol in GELO_PROTOCOLS:
            datasets = (datasets_by_protocol or {}).get(protocol)
            table = general_table(frame, protocol, gelo=gelo, datasets=datasets)
        else:
            table = biometric_table(frame, protocols=[protocol], collapse=())
        parts.append(f"## {PROTOCOL_LABELS.get(protocol, protocol)} ({protocol})\n")
        parts.append(table.to_markdown(with_ci=True))
    return "\n".join(parts)


def write_long_tables(
    metrics: pd.DataFrame,
    out_dir: str | os.PathLike,
    datasets_by_protocol: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.csv``, ``gelo.csv``, ``metrics.md`` and ``gelo.md`` into ``out_dir``."""
    out = Path(out_dir)
    frame = check_metrics(metrics)
    gelo = gelo_table(frame, datasets_by_protocol)
    return {
        "metrics_csv": write_text_file(out / "metrics.csv", metrics_csv(frame)),
        "gelo_csv": write_text_file(out / "gelo.csv", gelo_csv(gelo)),
        "metrics_md": write_text_file(out / "metrics.md", metrics_markdown(frame, gelo, datasets_by_protocol)),
        "gelo_md": write_text_file(out / "gelo.md", gelo_markdown(gelo)),
    }


def paper_layout_tables(
    metrics: pd.DataFrame,
    *,
    gelo: pd.DataFrame | None = None,
    row_labels: RowLabels | None = None,
    datasets_by_protocol: Mapping[str, Sequence[str]] | None = None,
    collapse: Sequence[str] = ("mad",),
) -> dict[str, LayoutTable]:
    """The four tables of the paper: zero-shot (A), linear probe (B), biometrics (C), GELO summary."""
    frame = check_metrics(metrics)
    if gelo is None:
        gelo = gelo_table(frame, datasets_by_protocol)
    datasets = datasets_by_protocol or {}
    return {
        "zeroshot": general_table(
            frame, "zeroshot", gelo=gelo, row_labels=row_labels, datasets=datasets.get("zeroshot")
        ),
        "linear_probe": general_table(
            frame, "linear_probe", gelo=gelo, row_labels=row_labels, datasets=datasets.get("linear_probe")
        ),
        "biometrics": biometric_table(frame, row_labels=row_labels, collapse=collapse),
        "gelo": gelo_summary_table(gelo, row_labels=row_labels),
    }


def write_paper_tables(
    metrics: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    gelo: pd.DataFrame | None = None,
    row_labels: RowLabels | None = None,
    with_ci: bool = False,
    datasets_by_protocol: Mapping[str, Sequence[str]] | None = None,
    collapse: Sequence[str] = ("mad",),
) -> dict[str, Path]:
    """Write ``table_{zeroshot,linear_probe,biometrics,gelo}.{csv,md,tex,html}`` (always all sixteen).

    A table with no results still gets its files, saying so, so a workflow's outputs are fixed.
    """
    out = Path(out_dir)
    tables = paper_layout_tables(
        metrics, gelo=gelo, row_labels=row_labels, datasets_by_protocol=datasets_by_protocol, collapse=collapse
    )
    written = {}
    for name in PAPER_TABLES:
        table = tables[name]
        stem = out / f"table_{name}"
        written[f"{name}_csv"] = write_text_file(stem.with_suffix(".csv"), table.to_csv(with_ci=with_ci))
        written[f"{name}_md"] = write_text_file(
            stem.with_suffix(".md"), f"## {table.title}\n\n" + table.to_markdown(with_ci=with_ci)
        )
        written[f"{name}_tex"] = write_text_file(
            stem.with_suffix(".tex"), f"% {table.title}\n" + table.to_latex(with_ci=with_ci)
        )
        written[f"{name}_html"] = write_text_file(stem.with_suffix(".html"), table.to_html(with_ci=with_ci))
    return written
