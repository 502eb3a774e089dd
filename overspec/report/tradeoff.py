"""The study's trade-off: what each fine-tune gained on its own task (x) against what it kept of its
general ability (GELO, y), zero-shot and linear probe; WiSE-FT models drawn along their fine-tune's
line of alphas. The points come from the aggregated tables (``metrics.csv``, ``gelo.csv``); the
gains are the summary's headline own-task gains (``overspec.report.summary.own_task_gains``, with
their verdicts from ``task_gain.csv`` where given). Models of a remedy group
(``overspec.analysis.remedies``) carry their remedy, strength and reference, and ``front`` marks
the Pareto front of each group and protocol over its models that learned their task."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from overspec.analysis.mitigation import pareto_front
from overspec.report.names import BASELINE, GELO_PROTOCOLS
from overspec.report.summary import LEARNED, LEARNED_UNTESTED, describe_adaptations, own_task_gains

POINT_COLUMNS = ("model", "backbone", "task", "metric", "gain_pp", "protocol", "gelo", "finetune", "alpha",
                 "learned", "reference", "remedy", "strength", "front")


def tradeoff_points(metrics: pd.DataFrame, gelo: pd.DataFrame,
                    wiseft: Mapping[str, Mapping[str, Any]] | None = None, *,
                    remedies: Mapping[str, Mapping[str, Any]] | None = None,
                    task_gain: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (fine-tuned model, GELO protocol) with an own-task gain and a GELO.

    ``wiseft`` maps each WiSE-FT model to ``{"finetune": its fine-tune, "alpha": ...}``; a fine-tune
    with WiSE-FT models is its own line's alpha-1 point (``finetune`` = itself, ``alpha`` = 1).
    ``remedies`` maps models of remedy groups to ``{"reference", "remedy", "strength"}``.
    """
    wiseft = dict(wiseft or {})
    remedies = dict(remedies or {})
    parents = {row["finetune"] for row in wiseft.values()}
    info = describe_adaptations(list(metrics.adaptation) + list(gelo.adaptation))
    gains = own_task_gains(metrics, info, task_gain).dropna(subset=["gain_pp"]).set_index("model")
    rows = []
    tuned = gelo[(gelo.adaptation != BASELINE) & gelo.protocol.isin(GELO_PROTOCOLS)]
    for r in tuned.itertuples(index=False):
        if r.model not in gains.index:
            continue
        gain = gains.loc[r.model]
        line = wiseft.get(r.model) or ({"finetune": r.model, "alpha": 1.0} if r.model in parents else None)
        group = remedies.get(r.model, {})
        rows.append((r.model, r.backbone, gain.task, gain.metric, float(gain.gain_pp), r.protocol, float(r.gelo),
                     line["finetune"] if line else "", float(line["alpha"]) if line else math.nan,
                     gain.verdict in (LEARNED, LEARNED_UNTESTED), group.get("reference", ""),
                     group.get("remedy", ""), group.get("strength", ""), False))
    points = pd.DataFrame(rows, columns=list(POINT_COLUMNS))
    for _, rows_ in points[(points.reference != "") & points.learned].groupby(["reference", "protocol"]):
        points.loc[rows_.index[pareto_front(rows_.gain_pp, rows_.gelo)], "front"] = True
    return points
