"""Tables in the paper's layout (models x datasets, Avg., GELO; biometrics; GELO summary).

A :class:`LayoutTable` holds numbers in display units (percent for accuracies and error rates,
a ratio for GELO) and renders them four ways: CSV (plain numbers at the printed precision),
Markdown, LaTeX (booktabs) and HTML (what the workflow report shows), where the best value of each
column within each backbone is bold, as in the paper. Ties at the printed precision are all bold.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd

from overspec.report.gelo import PRIMARY, gelo_table
from overspec.report.names import (
    AVERAGE_DATASET,
    BASELINE,
    BIOMETRIC_PROTOCOLS,
    PROTOCOL_LABELS,
    dataset_label,
    dataset_sort_key,
    lower_is_better,
    metric_label,
    metric_sort_key,
    protocol_sort_key,
)
from overspec.report.schema import add_dataset_average, check_metrics, ci_rows, model_sort_key, models_in_order

Column = tuple[str, str]  # (group header, column header); group "" when the table has no groups
RowLabels = Mapping[str, tuple[str, str]]  # model -> (approach, arch) to print instead of (model, backbone)

MISSING = "n/a"
PERCENT_DECIMALS = 2
GELO_DECIMALS = 3


@dataclass
class LayoutTable:
    """Numbers in display units plus what decides formatting and bold."""

    title: str
    labels: pd.DataFrame  # label columns (strings), one row per table row
    values: pd.DataFrame  # floats, columns are Column tuples
    decimals: dict[Column, int]
    lower_better: set[Column] = field(default_factory=set)
    groups: pd.Series | None = None  # rows compared for bold together (the backbone); None: all rows
    ci_low: pd.DataFrame | None = None
    ci_high: pd.DataFrame | None = None
    text: dict[tuple[int, Column], str] = field(default_factory=dict)  # fixed cell text, e.g. '-' for a baseline's GELO

    @property
    def grouped_header(self) -> bool:
        return any(group for group, _ in self.values.columns)

    def flat_columns(self) -> list[str]:
        return [f"{g} {c}" if g else c for g, c in self.values.columns]

    def number(self, row: int, column: Column) -> str:
        value = self.values.iloc[row][column]
        if (row, column) in self.text:
            return self.text[(row, column)]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        return f"{value:.{self.decimals[column]}f}"

    def cell(self, row: int, column: Column, with_ci: bool) -> str:
        text = self.number(row, column)
        if with_ci and self.ci_low is not None and (row, column) not in self.text:
            low, high = self.ci_low.iloc[row][column], self.ci_high.iloc[row][column]
            if not (math.isnan(low) or math.isnan(high)):
                d = self.decimals[column]
                text += f" [{low:.{d}f}, {high:.{d}f}]"
        return text

    def best_mask(self) -> pd.DataFrame:
        """True where a cell is the best of its column among rows of its group (2+ candidates)."""
        mask = pd.DataFrame(False, index=self.values.index, columns=self.values.columns)
        groups = self.groups if self.groups is not None else pd.Series("", index=self.values.index)
        for column in self.values.columns:
            for _, rows in groups.groupby(groups, sort=True):
                shown = {
                    i: float(self.number(i, column))
                    for i in rows.index
                    if (i, column) not in self.text and self.number(i, column) != MISSING
                }
                if len(shown) < 2:
                    continue
                best = (min if column in self.lower_better else max)(shown.values())
                for i, value in shown.items():
                    mask.loc[i, column] = value == best
        return mask

    # -- renderers -----------------------------------------------------------------------------

    def to_csv(self, with_ci: bool = False) -> str:
        frame = self.labels.copy()
        for column, name in zip(self.values.columns, self.flat_columns()):
            frame[name] = [self.number(i, column) for i in range(len(frame))]
            if with_ci and self.ci_low is not None and self.ci_low[column].notna().any():
                d = self.decimals[column]
                for bound, source in (("ci_low", self.ci_low), ("ci_high", self.ci_high)):
                    frame[f"{name} {bound}"] = [_fixed(source.iloc[i][column], d) for i in range(len(frame))]
        return frame.to_csv(index=False, lineterminator="\n")

    def to_markdown(self, with_ci: bool = False, bold: bool = True) -> str:
        if self.labels.empty:
            return "_No results in this run._\n"
        mask = self.best_mask() if bold else None
        frame = self.labels.copy()
        for column, name in zip(self.values.columns, self.flat_columns()):
            cells = [self.cell(i, column, with_ci) for i in range(len(frame))]
            if mask is not None:
                cells = [f"**{c}**" if mask.iloc[i][column] else c for i, c in enumerate(cells)]
            frame[name] = cells
        align = ["left"] * self.labels.shape[1] + ["right"] * self.values.shape[1]
        return frame.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"

    def _styler(self, with_ci: bool, bold: bool, bold_css: str, escape: str) -> pd.io.formats.style.Styler:
        """Cells as shown (grouped headers as a column MultiIndex), best per column styled ``bold_css``."""
        grouped = self.grouped_header
        label_keys = [("", name) if grouped else name for name in self.labels.columns]
        value_keys = list(self.values.columns) if grouped else [c for _, c in self.values.columns]
        cells = {key: list(self.labels[name]) for key, name in zip(label_keys, self.labels.columns)}
        for key, column in zip(value_keys, self.values.columns):
            cells[key] = [self.cell(i, column, with_ci) for i in range(len(self.labels))]
        frame = pd.DataFrame(cells)
        if grouped:
            frame.columns = pd.MultiIndex.from_tuples(label_keys + value_keys)
        props = pd.DataFrame("", index=frame.index, columns=frame.columns)
        if bold:
            mask = self.best_mask()
            for key, column in zip(value_keys, self.values.columns):
                props[key] = [bold_css if b else "" for b in mask[column]]
        return (
            frame.style.hide(axis="index")
            .format(escape=escape)
            .format_index(escape=escape, axis=1)
            .apply(lambda _: props, axis=None)
        )

    def to_latex(self, with_ci: bool = False, bold: bool = True) -> str:
        """A booktabs ``tabular`` (toprule/midrule/bottomrule); grouped headers become multicolumns."""
        if self.labels.empty:
            return "% No results in this run.\n"
        styler = self._styler(with_ci, bold, "textbf:--rwrap;", "latex")
        column_format = "l" * self.labels.shape[1] + "r" * self.values.shape[1]
        return styler.to_latex(hrules=True, column_format=column_format, multicol_align="c")

    def to_html(self, with_ci: bool = False, bold: bool = True) -> str:
        """An HTML fragment (title and table; what ``snakemake --report`` shows), best per column in bold.

        Byte-stable: the element ids come from a fixed name, not pandas' random one.
        """
        title = f'<p class="overspec-title"><strong>{html.escape(self.title)}</strong></p>\n'
        if self.labels.empty:
            return title + "<p><em>No results in this run.</em></p>\n"
        styler = self._styler(with_ci, bold, "font-weight: bold;", "html")
        labels, numbers = styler.data.columns[: self.labels.shape[1]], styler.data.columns[self.labels.shape[1]:]
        styler = styler.set_uuid("overspec").set_table_styles(_HTML_STYLES)
        styler = styler.set_properties(subset=list(labels), **{"text-align": "left"})
        styler = styler.set_properties(subset=list(numbers), **{"text-align": "right"})
        return title + styler.to_html(table_attributes='class="overspec-table"')


# Readable without a stylesheet: ruled header and footer like booktabs (cells are aligned one by
# one in to_html: labels left, numbers right).
_HTML_STYLES = [
    {"selector": "", "props": "border-collapse: collapse; font-family: sans-serif; font-size: 0.9em;"},
    {"selector": "th, td", "props": "padding: 0.2em 0.6em;"},
    {"selector": "th", "props": "text-align: center;"},
    {"selector": "thead", "props": "border-top: 2px solid black; border-bottom: 1px solid black;"},
    {"selector": "tbody", "props": "border-bottom: 2px solid black;"},
]


def _fixed(value: float, decimals: int) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{decimals}f}"


def _row_labels(rows: list[tuple[str, str, str]], row_labels: RowLabels | None) -> pd.DataFrame:
    if row_labels:
        pairs = [row_labels.get(model, (model, backbone)) for model, backbone, _ in rows]
        return pd.DataFrame(pairs, columns=["Approach", "Arch"], dtype=str)
    return pd.DataFrame([(m, b) for m, b, _ in rows], columns=["Model", "Backbone"], dtype=str)


def _lookup(frame: pd.DataFrame, protocol: str, metric: str) -> dict[tuple[str, str], float]:
    rows = frame[(frame.protocol == protocol) & (frame.metric == metric)]
    return {(m, d): v for m, d, v in zip(rows.model, rows.dataset, rows.value)}


def general_table(
    metrics: pd.DataFrame,
    protocol: str,
    *,
    gelo: pd.DataFrame | None = None,
    row_labels: RowLabels | None = None,
    datasets: Sequence[str] | None = None,
) -> LayoutTable:
    """Zero-shot or linear-probe table: models x datasets (primary metric, %), Avg. and GELO.

    Avg. is the mean of the shown datasets (n/a if a row lacks one); GELO comes from ``gelo``
    (computed over the shown datasets when not given); a baseline's GELO prints '-'.
    """
    frame = check_metrics(metrics)
    primary = frame[(frame.protocol == protocol) & (frame.metric == PRIMARY)]
    rows = models_in_order(primary)
    if datasets is None:
        datasets = sorted(set(primary.dataset), key=dataset_sort_key)
    values = _lookup(frame, protocol, PRIMARY)
    lows, highs = _lookup(frame, protocol, PRIMARY + "_ci_low"), _lookup(frame, protocol, PRIMARY + "_ci_high")
    if gelo is None and rows:
        gelo = gelo_table(frame, {protocol: list(datasets)})
    gelo_of = {} if gelo is None else {m: g for m, p, g in zip(gelo.model, gelo.protocol, gelo.gelo) if p == protocol}

    columns: list[Column] = [("", dataset_label(d)) for d in datasets] + [("", "Avg."), ("", "GELO")]
    table, low, high, text = [], [], [], {}
    for i, (model, _, adaptation) in enumerate(rows):
        cells = [100.0 * values.get((model, d), math.nan) for d in datasets]
        average = math.fsum(cells) / len(cells) if cells and not any(math.isnan(c) for c in cells) else math.nan
        table.append(cells + [average, gelo_of.get(model, math.nan)])
        low.append([100.0 * lows.get((model, d), math.nan) for d in datasets] + [math.nan, math.nan])
        high.append([100.0 * highs.get((model, d), math.nan) for d in datasets] + [math.nan, math.nan])
        if adaptation == BASELINE:
            text[(i, ("", "GELO"))] = "-"
    decimals = {c: PERCENT_DECIMALS for c in columns}
    decimals[("", "GELO")] = GELO_DECIMALS
    return LayoutTable(
        title=f"{PROTOCOL_LABELS.get(protocol, protocol)} accuracy (%)",
        labels=_row_labels(rows, row_labels),
        values=pd.DataFrame(table, columns=pd.MultiIndex.from_tuples(columns), dtype=float),
        decimals=decimals,
        groups=pd.Series([b for _, b, _ in rows], dtype=str),
        ci_low=pd.DataFrame(low, columns=pd.MultiIndex.from_tuples(columns), dtype=float),
        ci_high=pd.DataFrame(high, columns=pd.MultiIndex.from_tuples(columns), dtype=float),
        text=text,
    )


def _biometric_columns(frame: pd.DataFrame, protocol: str) -> list[tuple[str, str, Column]]:
    rows = frame[(frame.protocol == protocol) & ~ci_rows(frame)]
    datasets = sorted(set(rows.dataset), key=dataset_sort_key)
    metrics = sorted(set(rows.metric), key=metric_sort_key)
    group = PROTOCOL_LABELS.get(protocol, protocol)
    found = set(zip(rows.dataset, rows.metric))
    out = []
    for dataset in datasets:
        for metric in metrics:
            if (dataset, metric) not in found:
                continue
            if len(metrics) == 1:
                header = dataset_label(dataset)
            elif len(datasets) == 1 and dataset == AVERAGE_DATASET:
                header = metric_label(metric)
            else:
                header = f"{dataset_label(dataset)} {metric_label(metric)}"
            out.append((dataset, metric, (group, header)))
    return out


def biometric_table(
    metrics: pd.DataFrame,
    *,
    row_labels: RowLabels | None = None,
    protocols: Sequence[str] = BIOMETRIC_PROTOCOLS,
    collapse: Sequence[str] = ("mad",),
) -> LayoutTable:
    """FR pair sets and IJB, PAD and MAD metrics (%), one column per (protocol, dataset, metric).

    Protocols in ``collapse`` with several datasets show only their per-metric mean over datasets
    (dataset ``average``), as the paper prints MAD: the mean over its six test sets.
    """
    frame = check_metrics(metrics)
    for protocol in collapse:
        frame = add_dataset_average(frame, protocol)
        averaged = (frame.protocol == protocol) & (frame.dataset == AVERAGE_DATASET)
        if averaged.any():
            frame = frame[~((frame.protocol == protocol) & ~averaged)]
    protocols = sorted(protocols, key=protocol_sort_key)
    frame = frame[frame.protocol.isin(protocols)]
    spec = [(p, d, m, c) for p in protocols for d, m, c in _biometric_columns(frame, p)]
    rows = models_in_order(frame[~ci_rows(frame)])
    lookup = {(r.model, r.protocol, r.dataset, r.metric): r.value for r in frame.itertuples(index=False)}
    columns = [c for *_, c in spec]

    def grid(suffix: str) -> pd.DataFrame:
        data = [[100.0 * lookup.get((m, p, d, k + suffix), math.nan) for p, d, k, _ in spec] for m, _, _ in rows]
        return pd.DataFrame(data, columns=pd.MultiIndex.from_tuples(columns) if columns else None, dtype=float)

    return LayoutTable(
        title="Biometric benchmarks (%)",
        labels=_row_labels(rows, row_labels),
        values=grid(""),
        decimals={c: PERCENT_DECIMALS for c in columns},
        lower_better={c for p, d, k, c in spec if lower_is_better(k)},
        groups=pd.Series([b for _, b, _ in rows], dtype=str),
        ci_low=grid("_ci_low"),
        ci_high=grid("_ci_high"),
    )


def gelo_summary_table(gelo: pd.DataFrame, *, row_labels: RowLabels | None = None) -> LayoutTable:
    """GELO of each fine-tuned model: rows adaptations, columns (protocol, backbone), like §4.4.

    Rows are adaptations when each has one model per backbone, else models.
    """
    tuned = gelo[gelo.adaptation != BASELINE]
    by_adaptation = not tuned.duplicated(["adaptation", "backbone", "protocol"]).any()
    key = "adaptation" if by_adaptation else "model"
    order = sorted(
        {(r.adaptation, r.backbone, r.model) for r in tuned.itertuples(index=False)},
        key=lambda t: model_sort_key(t[0], t[1], t[2]),
    )
    row_keys = list(dict.fromkeys(t[0] if by_adaptation else t[2] for t in order))
    names = []
    for row_key in row_keys:
        models = [t[2] for t in order if (t[0] if by_adaptation else t[2]) == row_key]
        names.append(row_labels[models[0]][0] if row_labels and models[0] in row_labels else row_key)
    protocols = sorted(set(tuned.protocol), key=protocol_sort_key)
    backbones = sorted(set(tuned.backbone))
    columns = [(PROTOCOL_LABELS.get(p, p), b) for p in protocols for b in backbones]
    value = {(getattr(r, key), r.protocol, r.backbone): r.gelo for r in tuned.itertuples(index=False)}
    data = [[value.get((k, p, b), math.nan) for p in protocols for b in backbones] for k in row_keys]
    header = "Approach" if row_labels else key.capitalize()
    return LayoutTable(
        title="GELO (mean accuracy after fine-tuning / before)",
        labels=pd.DataFrame({header: names}, dtype=str),
        values=pd.DataFrame(data, columns=pd.MultiIndex.from_tuples(columns) if columns else None, dtype=float),
        decimals={c: GELO_DECIMALS for c in columns},
    )


__all__ = ["LayoutTable", "biometric_table", "gelo_summary_table", "general_table"]
