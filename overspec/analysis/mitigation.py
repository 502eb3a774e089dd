"""Remedies against forgetting on the trade-off plane: own-task gain (x) against GELO (y).

Every model of a remedy group (`overspec.analysis.remedies`: a plain reference fine-tune, the
fine-tunes that change its recipe, its WiSE-FT models) gets one row: its remedy and strength, its
own-task gain with the paired-bootstrap interval (`task_gain.csv`, else the point gain of the
tables), whether it learned its task, its zero-shot and linear-probe GELO, the share of the
reference's gain it keeps, and whether it is on the Pareto front of its group (no other model of
the group that learned its task has at least its gain and at least its GELO, one of them higher).
Only models that learned their task are on a front or can be the best remedy.

The summary's two answers per group (`best_remedies`):
- at zero-shot GELO >= `min_gelo`: the remedy keeping the largest gain, and its share of the
  reference's gain;
- at the reference's gain: among remedies whose gain is at least the reference's, the one with the
  highest zero-shot GELO, and the GELO it saves; when none reaches that gain, the closest one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from overspec.report.gelo import read_gelo
from overspec.report.names import GELO_PROTOCOLS
from overspec.report.schema import read_metrics
from overspec.report.study import write_sidecars
from overspec.report.summary import LEARNED, LEARNED_UNTESTED, describe_adaptations, own_task_gains
from overspec.report.tables import float_csv, write_text_file

TABLE_COLUMNS = ("backbone", "task", "reference", "model", "remedy", "strength", "metric", "gain_pp", "ci_low",
                 "ci_high", "verdict", "learned", "gelo_zeroshot", "gelo_linear_probe", "share_of_gain",
                 "front_zeroshot", "front_linear_probe")
FLOATS = ("gain_pp", "ci_low", "ci_high", "gelo_zeroshot", "gelo_linear_probe", "share_of_gain")


def pareto_front(gain: Sequence[float], gelo: Sequence[float]) -> np.ndarray:
    """True where no other point has gain >= and GELO >= with one of them strictly greater (both
    maximised); a point with a NaN coordinate is never on the front. Equal points are both on it."""
    x, y = np.asarray(gain, dtype=float), np.asarray(gelo, dtype=float)
    valid = ~(np.isnan(x) | np.isnan(y))
    on = valid.copy()
    for i in np.flatnonzero(valid):
        others = valid & (x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i]))
        on[i] = not others.any()
    return on


def mitigation_table(metrics: pd.DataFrame, gelo: pd.DataFrame, remedies: Mapping[str, Mapping[str, Any]],
                     task_gain: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model of every remedy group present in the tables (columns `TABLE_COLUMNS`)."""
    info = describe_adaptations(list(metrics.adaptation) + list(gelo.adaptation))
    gains = own_task_gains(metrics, info, task_gain).set_index("model")
    values = {(r.model, r.protocol): float(r.gelo) for r in gelo.itertuples(index=False)}
    rows = []
    for model, spec in remedies.items():
        if model not in gains.index:
            continue
        g = gains.loc[model]
        rows.append({"backbone": spec["backbone"], "task": spec["task"], "reference": spec["reference"],
                     "model": model, "remedy": spec["remedy"], "strength": spec["strength"], "metric": g.metric,
                     "gain_pp": g.gain_pp, "ci_low": g.ci_low, "ci_high": g.ci_high, "verdict": g.verdict,
                     "learned": g.verdict in (LEARNED, LEARNED_UNTESTED),
                     **{f"gelo_{p}": values.get((model, p), math.nan) for p in GELO_PROTOCOLS}})
    table = pd.DataFrame(rows, columns=[c for c in TABLE_COLUMNS if not c.startswith(("share", "front"))])
    table["share_of_gain"] = math.nan
    for protocol in GELO_PROTOCOLS:
        table[f"front_{protocol}"] = False
    for reference, group in table.groupby("reference", sort=False):
        ref = group[group.model == reference]
        if len(ref) and ref.learned.iloc[0] and ref.gain_pp.iloc[0] > 0:  # a share of nothing learned is no share
            table.loc[group.index, "share_of_gain"] = group.gain_pp / ref.gain_pp.iloc[0]
        learned = group[group.learned]
        for protocol in GELO_PROTOCOLS:
            front = pareto_front(learned.gain_pp, learned[f"gelo_{protocol}"])
            table.loc[learned.index[front], f"front_{protocol}"] = True
    order = {"none": 0, "wiseft": 2}
    table["_order"] = table.remedy.map(lambda r: order.get(r, 1))
    table = table.sort_values(["backbone", "task", "_order", "remedy", "gain_pp"], ascending=[True, True, True, True, False])
    return table.drop(columns="_order").reset_index(drop=True)[list(TABLE_COLUMNS)]


def best_remedies(table: pd.DataFrame, min_gelo: float = 0.95) -> list[dict[str, Any]]:
    """Per remedy group, the two answers of the module docstring as data (rows are `table` rows or None)."""
    answers = []
    for reference, group in table.groupby("reference", sort=False):
        ref = group[group.model == reference]
        if ref.empty:
            continue
        ref = ref.iloc[0]
        remedies = group[(group.model != reference) & group.learned & group.gelo_zeroshot.notna()]
        above = remedies[remedies.gelo_zeroshot >= min_gelo]
        best_kept = above.sort_values(["gain_pp", "gelo_zeroshot"], ascending=False).head(1)
        reaching = remedies[remedies.gain_pp >= ref.gain_pp]
        best_equal = reaching.sort_values(["gelo_zeroshot", "gain_pp"], ascending=False).head(1)
        closest = remedies.sort_values(["gain_pp", "gelo_zeroshot"], ascending=False).head(1)
        answers.append({"reference": ref, "min_gelo": min_gelo,
                        "at_min_gelo": None if best_kept.empty else best_kept.iloc[0],
                        "at_equal_gain": None if best_equal.empty else best_equal.iloc[0],
                        "closest_gain": None if closest.empty else closest.iloc[0]})
    return answers


def _name(row: pd.Series) -> str:
    return f"{row.model} ({row.remedy}{', ' + row.strength if row.strength else ''})"


def _point(row: pd.Series) -> str:
    return f"FR gain {row.gain_pp:+.2f} pp, zero-shot GELO {row.gelo_zeroshot:.3f}".replace(
        "FR", {"fr": "FR", "mad": "MAD", "pad": "PAD"}.get(row.task, row.task))


def remedy_lines(table: pd.DataFrame, min_gelo: float = 0.95) -> list[str]:
    """The summary's sentences: per group, the best remedy at GELO >= min_gelo and at equal gain."""
    lines = []
    for answer in best_remedies(table, min_gelo):
        ref = answer["reference"]
        head = f"{ref.backbone}, {ref.task.upper()}: the plain fine-tune {ref.model} ({_point(ref)})"
        if not ref.learned or not ref.gain_pp > 0:
            lines.append(f"{head} did not learn its task, so no remedy is measured against it.")
            continue
        kept = answer["at_min_gelo"]
        if kept is None:
            first = f"no remedy that learned its task keeps zero-shot GELO >= {min_gelo:g}"
        else:
            first = (f"at zero-shot GELO >= {min_gelo:g} the best remedy is {_name(kept)}, keeping "
                     f"{100 * kept.share_of_gain:.0f}% of the gain ({_point(kept)})")
        if ref.gelo_zeroshot >= min_gelo:
            first += f"; the plain fine-tune itself already keeps GELO {ref.gelo_zeroshot:.3f}"
        equal = answer["at_equal_gain"]
        if equal is not None:
            second = (f"at the plain fine-tune's gain the best is {_name(equal)}, saving "
                      f"{equal.gelo_zeroshot - ref.gelo_zeroshot:+.3f} zero-shot GELO ({_point(equal)})")
        elif answer["closest_gain"] is not None:
            close = answer["closest_gain"]
            second = (f"no remedy reaches the plain fine-tune's gain; the closest is {_name(close)} with "
                      f"{100 * close.share_of_gain:.0f}% of it ({_point(close)})")
        else:
            second = "no remedy learned its task"
        lines.append(f"{head}: {first}; {second}.")
    return lines


def _cell(value: float, digits: int) -> str:
    return "n/a" if pd.isna(value) else f"{value:.{digits}f}"


def mitigation_markdown(table: pd.DataFrame, min_gelo: float = 0.95) -> str:
    """The table as Markdown (percentage points, GELO, share kept, fronts), then the summary lines."""
    out = ["# Remedies against forgetting on the trade-off plane\n",
           "Gain: the own-task headline over the baseline in percentage points with its 95% paired-bootstrap "
           "interval; share: of the plain fine-tune's gain; front: on the Pareto front of own-task gain and "
           "GELO among the group's fine-tunes that learned their task (ZS zero-shot, LP linear probe).\n"]
    if table.empty:
        out.append("_No model of a remedy group has results in this run._\n")
        return "\n".join(out)

    def gain(r) -> str:
        interval = "" if pd.isna(r.ci_low) else f" [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        return "n/a" if pd.isna(r.gain_pp) else f"{r.gain_pp:+.2f}{interval}"

    frame = pd.DataFrame({
        "Backbone": table.backbone, "Model": table.model, "Remedy": table.remedy, "Strength": table.strength,
        "Learned": table.learned.map({True: "yes", False: "no"}),
        "Gain (pp) [95% CI]": [gain(r) for r in table.itertuples(index=False)],
        "Share": table.share_of_gain.map(lambda v: "n/a" if pd.isna(v) else f"{100 * v:.0f}%"),
        "ZS GELO": table.gelo_zeroshot.map(lambda v: _cell(v, 3)),
        "LP GELO": table.gelo_linear_probe.map(lambda v: _cell(v, 3)),
        "Front (ZS / LP)": [f"{'yes' if a else 'no'} / {'yes' if b else 'no'}"
                            for a, b in zip(table.front_zeroshot, table.front_linear_probe)],
    })
    out.append(frame.to_markdown(index=False, disable_numparse=True) + "\n")
    out += [f"- {line}" for line in remedy_lines(table, min_gelo)]
    return "\n".join(out) + "\n"


def write_mitigation(metrics_csv: str | os.PathLike, gelo_csv: str | os.PathLike,
                     remedies: Mapping[str, Mapping[str, Any]], outputs: Mapping[str, str | os.PathLike], *,
                     task_gain_csv: str | os.PathLike | None = None, min_gelo: float = 0.95,
                     provenance: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """`outputs['csv']` and `outputs['md']`: the table and its Markdown view."""
    from overspec.analysis.task_gain import read_task_gain

    task_gain = None if task_gain_csv is None else read_task_gain(task_gain_csv)
    table = mitigation_table(read_metrics(metrics_csv), read_gelo(gelo_csv), remedies, task_gain)
    written = [write_text_file(outputs["csv"], float_csv(table, FLOATS)),
               write_text_file(outputs["md"], mitigation_markdown(table, min_gelo))]
    write_sidecars([Path(p) for p in written], provenance)
    return table
