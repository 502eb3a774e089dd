"""``results/summary.md``: one readable page on what this run found.

It gives the headline GELO numbers, each fine-tuned model's gain on its own biometric task over
its baseline, and the study's three findings, each marked supported / not supported by this
run's numbers (with the comparisons) or "not tested in this run" when the models it needs are
missing:

1. Task complexity: FR fine-tuning keeps less generality than MAD and PAD (GELO_FR < GELO_MAD
   and GELO_FR < GELO_PAD on each backbone and protocol).
2. Head design: models with a multi-class head keep less than models with a binary head (mean
   GELO per backbone and protocol, plus every pair that differs only in its head).
3. Capacity: for each adaptation, the larger backbone keeps at least as much (GELO_large >=
   GELO_small per protocol).

What task and head an adaptation has is read from its name (``fr``/``mad``/``pad``, ``cosface``,
``binary``...) unless ``adaptations`` says so; backbone sizes come from ``backbone_sizes`` or
from names such as ``ViT-B/16`` < ``ViT-L/14`` or ``toy-clip-s`` < ``toy-clip-m``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from overspec.report.names import (
    AVERAGE_DATASET,
    BASELINE,
    GELO_PROTOCOLS,
    PROTOCOL_LABELS,
    dataset_label,
    dataset_sort_key,
    lower_is_better,
    metric_label,
    metric_sort_key,
    operating_point,
)
from overspec.report.schema import baselines_by_backbone, check_metrics, ci_rows, model_sort_key
from overspec.report.tables import write_text_file

TASKS = ("fr", "mad", "pad")
TASK_NAMES = {"fr": "FR", "mad": "MAD", "pad": "PAD"}
TASK_PROTOCOLS = {"fr": ("face_verification", "ijb"), "mad": ("mad",), "pad": ("pad",)}
NATIVE_HEAD = {"fr": "multiclass", "mad": "binary", "pad": "binary"}
_TASK_TOKENS = {
    "fr": {"fr", "froundation", "facerec", "recognition"},
    "mad": {"mad", "madation", "morph", "morphing"},
    "pad": {"pad", "foundpad", "spoof", "antispoof", "antispoofing"},
}
_HEAD_TOKENS = {"multiclass": {"cosface", "arcface", "multiclass", "softmax"}, "binary": {"binary", "bce"}}
# ViT widths (OpenCLIP/OpenAI names) and toy-size suffixes, smallest first.
_VIT_SIZES = {"ti": 0, "s": 1, "m": 2, "b": 3, "l": 4, "h": 5, "g": 6, "bigg": 7}
_SUFFIX_SIZES = {"xs": 0, "s": 1, "m": 2, "l": 3, "xl": 4}

SUPPORTED, NOT_SUPPORTED, NOT_TESTED = "supported", "not supported", "not tested in this run"


@dataclass(frozen=True)
class Adaptation:
    """What an adaptation is for the findings: its task, its head, and whether it is a main model."""

    task: str | None
    head: str | None
    primary: bool = True


@dataclass
class Finding:
    title: str
    claim: str
    verdict: str
    holds: int = 0
    total: int = 0
    lines: list[str] = field(default_factory=list)
    note: str = ""


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower())) - {""}


def describe_adaptation(name: str, override: Mapping[str, object] | None = None) -> Adaptation:
    """Task and head from ``override`` (keys task, head, primary) or else from the name's tokens."""
    tokens = _tokens(name)
    tasks = [t for t, words in _TASK_TOKENS.items() if tokens & words]
    heads = [h for h, words in _HEAD_TOKENS.items() if tokens & words]
    override = dict(override or {})
    task = override.get("task", tasks[0] if len(tasks) == 1 else None)
    head = override.get("head", heads[0] if len(heads) == 1 else NATIVE_HEAD.get(task))
    return Adaptation(task=task, head=head, primary=bool(override.get("primary", True)))


def describe_adaptations(
    names: Sequence[str], adaptations: Mapping[str, Mapping[str, object]] | None = None
) -> dict[str, Adaptation]:
    return {a: describe_adaptation(a, (adaptations or {}).get(a)) for a in sorted(set(names)) if a != BASELINE}


def backbone_ranks(backbones: Sequence[str], backbone_sizes: Mapping[str, float] | None = None) -> dict[str, float]:
    """Size rank per backbone (larger = bigger) for those whose size is given or readable from the name."""
    ranks: dict[str, float] = {}
    for backbone in backbones:
        if backbone_sizes and backbone in backbone_sizes:
            ranks[backbone] = float(backbone_sizes[backbone])
            continue
        if backbone_sizes:
            continue  # an explicit table is complete by intent: never mix it with guesses
        name = backbone.lower()
        vit = re.search(r"vit[-_]?(bigg|ti|[smblhg])(?:[-_/]|\d|$)", name)
        suffix = re.search(r"[-_](xs|xl|s|m|l)$", name)
        if vit:
            ranks[backbone] = _VIT_SIZES[vit.group(1)]
        elif suffix:
            ranks[backbone] = _SUFFIX_SIZES[suffix.group(1)]
    return ranks


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _verdict(finding: Finding, reason: str) -> Finding:
    if finding.total == 0:
        finding.verdict = NOT_TESTED
        finding.note = reason
    elif finding.holds == finding.total:
        finding.verdict = SUPPORTED
    else:
        finding.verdict = NOT_SUPPORTED
    return finding


def _tuned(gelo: pd.DataFrame, info: Mapping[str, Adaptation]) -> pd.DataFrame:
    tuned = gelo[gelo.adaptation != BASELINE].copy()
    tuned["task"] = tuned.adaptation.map(lambda a: info[a].task)
    tuned["head_kind"] = tuned.adaptation.map(lambda a: info[a].head)
    # astype(bool): with no fine-tune the mapped column is an empty object Series, and indexing a
    # frame with that selects columns (none) instead of rows
    tuned["primary"] = tuned.adaptation.map(lambda a: info[a].primary).astype(bool)
    return tuned


def task_complexity_finding(gelo: pd.DataFrame, info: Mapping[str, Adaptation]) -> Finding:
    finding = Finding(
        "Task complexity",
        "FR fine-tuning keeps less general ability than MAD and PAD fine-tuning "
        "(FR GELO below MAD and PAD on each backbone).",
        NOT_TESTED,
    )
    tuned = _tuned(gelo, info)
    native = tuned[(tuned.primary & (tuned.head_kind == tuned.task.map(NATIVE_HEAD))).astype(bool)]
    for (protocol, backbone), rows in _groups(native):
        fr = rows[rows.task == "fr"]
        for other in ("mad", "pad"):
            for a in fr.itertuples(index=False):
                for b in rows[rows.task == other].itertuples(index=False):
                    ok = a.gelo < b.gelo
                    finding.total += 1
                    finding.holds += ok
                    finding.lines.append(
                        f"{backbone}, {PROTOCOL_LABELS[protocol].lower()}: FR {a.model} {_fmt(a.gelo)} "
                        f"{'<' if ok else '>='} {TASK_NAMES[other]} {b.model} {_fmt(b.gelo)} "
                        f"({'holds' if ok else 'fails'})"
                    )
    present = sorted({TASK_NAMES[t] for t in native.task.dropna()})
    return _verdict(
        finding,
        f"it needs an FR and a MAD or PAD fine-tune on one backbone; this run has {', '.join(present) or 'none'}.",
    )


def head_design_finding(gelo: pd.DataFrame, info: Mapping[str, Adaptation]) -> Finding:
    finding = Finding(
        "Head design",
        "Models fine-tuned with a multi-class head keep less general ability than those with a binary head.",
        NOT_TESTED,
    )
    tuned = _tuned(gelo, info)
    tuned = tuned[tuned.head_kind.isin(["multiclass", "binary"])]
    controlled = 0
    for (protocol, backbone), rows in _groups(tuned):
        multi, binary = rows[rows.head_kind == "multiclass"], rows[rows.head_kind == "binary"]
        if multi.empty or binary.empty:
            continue
        m, b = math.fsum(multi.gelo) / len(multi), math.fsum(binary.gelo) / len(binary)
        ok = m < b
        finding.total += 1
        finding.holds += ok
        finding.lines.append(
            f"{backbone}, {PROTOCOL_LABELS[protocol].lower()}: mean multi-class {_fmt(m)} ({len(multi)} model(s)) "
            f"{'<' if ok else '>='} mean binary {_fmt(b)} ({len(binary)} model(s)) ({'holds' if ok else 'fails'})"
        )
        for task in sorted(set(rows.task.dropna())):
            same_task = rows[rows.task == task]
            for a in same_task[same_task.head_kind == "multiclass"].itertuples(index=False):
                for c in same_task[same_task.head_kind == "binary"].itertuples(index=False):
                    ok = a.gelo < c.gelo
                    controlled += 1
                    finding.total += 1
                    finding.holds += ok
                    finding.lines.append(
                        f"{backbone}, {PROTOCOL_LABELS[protocol].lower()}, same task {TASK_NAMES.get(task, task)}: "
                        f"multi-class {a.model} {_fmt(a.gelo)} {'<' if ok else '>='} binary {c.model} {_fmt(c.gelo)} "
                        f"({'holds' if ok else 'fails'})"
                    )
    if finding.total and not controlled:
        finding.note = (
            "No two models of one task differ only in their head here, so head design and task are confounded."
        )
    return _verdict(finding, "it needs a multi-class-head and a binary-head fine-tune on one backbone.")


def capacity_finding(gelo: pd.DataFrame, backbone_sizes: Mapping[str, float] | None = None) -> Finding:
    finding = Finding(
        "Capacity",
        "The larger backbone keeps at least as much general ability as the smaller one, for each adaptation.",
        NOT_TESTED,
    )
    tuned = gelo[gelo.adaptation != BASELINE]
    ranks = backbone_ranks(sorted(set(tuned.backbone)), backbone_sizes)
    unknown = sorted(set(tuned.backbone) - set(ranks))
    for protocol in GELO_PROTOCOLS:
        for adaptation, rows in tuned[tuned.protocol == protocol].groupby("adaptation", sort=True):
            means = rows[rows.backbone.isin(ranks)].groupby("backbone").gelo.mean()
            ordered = sorted(means.index, key=lambda b: (ranks[b], b))
            for small, large in zip(ordered, ordered[1:]):
                ok = means[large] >= means[small]
                finding.total += 1
                finding.holds += ok
                finding.lines.append(
                    f"{adaptation}, {PROTOCOL_LABELS[protocol].lower()}: {large} {_fmt(means[large])} "
                    f"{'>=' if ok else '<'} {small} {_fmt(means[small])} ({'holds' if ok else 'fails'})"
                )
    reason = "it needs one adaptation fine-tuned on two backbones of known size"
    if unknown:
        reason += f"; sizes unknown for {', '.join(unknown)} (pass backbone_sizes)"
    return _verdict(finding, reason + ".")


def _groups(frame: pd.DataFrame):
    for protocol in GELO_PROTOCOLS:
        rows = frame[frame.protocol == protocol]
        for backbone in sorted(set(rows.backbone)):
            yield (protocol, backbone), rows[rows.backbone == backbone].sort_values("model")


# -- biometric gains -------------------------------------------------------------------------


def _headline_metrics(protocol: str, metrics: set[str]) -> list[str]:
    preferred = {"face_verification": ["accuracy"], "ijb": ["tar@far=0.0001"], "mad": ["eer"], "pad": ["hter", "auc"]}
    chosen = [m for m in preferred.get(protocol, []) if m in metrics]
    if not chosen and protocol == "ijb":
        chosen = sorted((m for m in metrics if (operating_point(m) or ("",))[0] == "tar"), key=metric_sort_key)[:1]
    return chosen or sorted(metrics, key=metric_sort_key)[:1]


def biometric_gains(metrics: pd.DataFrame, info: Mapping[str, Adaptation]) -> pd.DataFrame:
    """Each fine-tuned model against its baseline on its own task's benchmarks (percent, gain > 0 = better).

    Face verification and MAD are summarised by their mean over test sets (as the paper reports
    MAD); IJB and PAD are given per benchmark.
    """
    frame = check_metrics(metrics)
    frame = frame[~ci_rows(frame)]
    baselines = baselines_by_backbone(frame)
    value = {(r.model, r.protocol, r.dataset, r.metric): r.value for r in frame.itertuples(index=False)}
    rows = []
    models = frame[["model", "backbone", "adaptation"]].drop_duplicates().itertuples(index=False, name=None)
    for model, backbone, adaptation in sorted(models, key=lambda t: model_sort_key(t[2], t[1], t[0])):
        task = info.get(adaptation, Adaptation(None, None)).task if adaptation != BASELINE else None
        base = baselines.get(backbone)
        if task is None or base is None:
            continue
        for protocol in TASK_PROTOCOLS.get(task, ()):
            own = frame[(frame.model == model) & (frame.protocol == protocol)]
            for metric in _headline_metrics(protocol, set(own.metric)):
                datasets = sorted(set(own[own.metric == metric].dataset), key=dataset_sort_key)
                paired = [d for d in datasets if (base, protocol, d, metric) in value]
                if not paired:
                    continue
                groups = [(f"mean of {len(paired)} sets" if len(paired) > 1 else dataset_label(paired[0]), paired)]
                if AVERAGE_DATASET in paired and len(paired) > 1:  # MAD: the per-method rows and their average
                    groups = [(f"mean of {len(paired) - 1} sets", [AVERAGE_DATASET])]
                if protocol in ("ijb", "pad"):
                    groups = [(dataset_label(d), [d]) for d in paired]
                for benchmark, chosen in groups:
                    mine = 100 * math.fsum(value[(model, protocol, d, metric)] for d in chosen) / len(chosen)
                    theirs = 100 * math.fsum(value[(base, protocol, d, metric)] for d in chosen) / len(chosen)
                    gain = theirs - mine if lower_is_better(metric) else mine - theirs
                    rows.append(
                        (model, backbone, TASK_NAMES[task], benchmark, metric_label(metric), mine, base, theirs, gain)
                    )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "backbone",
            "task",
            "benchmark",
            "metric",
            "fine_tuned",
            "baseline",
            "baseline_value",
            "gain_pp",
        ],
    )


# -- the page --------------------------------------------------------------------------------


def _table(frame: pd.DataFrame, right: int) -> str:
    align = ["left"] * (frame.shape[1] - right) + ["right"] * right
    return frame.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def _gelo_section(gelo: pd.DataFrame) -> list[str]:
    out = ["## Generalization retained (GELO)\n"]
    tuned = gelo[gelo.adaptation != BASELINE]
    if tuned.empty:
        out.append("_No fine-tuned model with zero-shot or linear-probe results in this run._\n")
        return out
    out.append(
        "GELO = mean accuracy over the general datasets after fine-tuning / the same mean for the untouched "
        "model of the same backbone; 1 means nothing was lost.\n"
    )
    protocols = [p for p in GELO_PROTOCOLS if p in set(gelo.protocol)]
    rows = []
    order = tuned[["model", "backbone", "adaptation"]].drop_duplicates().itertuples(index=False, name=None)
    for model, backbone, adaptation in sorted(order, key=lambda t: model_sort_key(t[2], t[1], t[0])):
        cells = []
        for protocol in protocols:
            hit = tuned[(tuned.model == model) & (tuned.protocol == protocol)]
            cells.append(
                f"{hit.gelo.iloc[0]:.3f} ({100 * hit.avg_model.iloc[0]:.2f}% vs {100 * hit.avg_baseline.iloc[0]:.2f}%)"
                if len(hit)
                else "n/a"
            )
        rows.append([model, backbone, adaptation] + cells)
    header = ["Model", "Backbone", "Adaptation"] + [f"{PROTOCOL_LABELS[p]} GELO (mean vs baseline)" for p in protocols]
    out.append(_table(pd.DataFrame(rows, columns=header), len(protocols)))
    worst = tuned.loc[tuned.gelo.idxmin()]
    out.append(
        f"Largest loss: {worst.model} ({worst.backbone}), {PROTOCOL_LABELS[worst.protocol].lower()} GELO "
        f"{worst.gelo:.3f}.\n"
    )
    return out


def _gains_section(gains: pd.DataFrame) -> list[str]:
    out = ["## Biometric gains on each model's own task\n"]
    if gains.empty:
        out.append("_No fine-tuned model has results on its own task's benchmarks beside its baseline in this run._\n")
        return out
    frame = pd.DataFrame(
        {
            "Model": gains.model,
            "Backbone": gains.backbone,
            "Task": gains.task,
            "Benchmark": gains.benchmark,
            "Metric": gains.metric,
            "Fine-tuned (%)": gains.fine_tuned.map(lambda v: f"{v:.2f}"),
            "Baseline (%)": gains.baseline_value.map(lambda v: f"{v:.2f}"),
            "Gain (pp)": gains.gain_pp.map(lambda v: f"{v:+.2f}"),
        }
    )
    out.append("Gain is in percentage points, positive when the fine-tuned model is better (lower for error rates).\n")
    out.append(_table(frame, 3))
    return out


def _finding_section(number: int, finding: Finding) -> list[str]:
    if finding.verdict == NOT_TESTED:
        status = f"**Not tested in this run**: {finding.note}"
    else:
        status = f"**{finding.verdict.capitalize()}** ({finding.holds} of {finding.total} comparisons hold)."
        if finding.note:
            status += f" {finding.note}"
    lines = [f"{number}. **{finding.title}.** {finding.claim} {status}"]
    lines += [f"   - {line}" for line in finding.lines]
    return ["\n".join(lines) + "\n"]


def summary_text(
    metrics: pd.DataFrame,
    gelo: pd.DataFrame,
    *,
    adaptations: Mapping[str, Mapping[str, object]] | None = None,
    backbone_sizes: Mapping[str, float] | None = None,
) -> str:
    frame = check_metrics(metrics)
    info = describe_adaptations(list(frame.adaptation) + list(gelo.adaptation), adaptations)
    models = frame.model.nunique()
    parts = [
        "# Summary of this run\n",
        f"{models} model(s), {frame.dataset.nunique()} dataset(s), protocols: "
        f"{', '.join(sorted(set(frame.protocol)))}. Full tables: `tables/`.\n",
    ]
    parts += _gelo_section(gelo)
    parts += _gains_section(biometric_gains(frame, info))
    parts.append("## The study's findings, checked on this run\n")
    checked = [
        task_complexity_finding(gelo, info),
        head_design_finding(gelo, info),
        capacity_finding(gelo, backbone_sizes),
    ]
    for number, finding in enumerate(checked, start=1):
        parts += _finding_section(number, finding)
    return "\n".join(parts)


def findings(
    gelo: pd.DataFrame,
    *,
    adaptations: Mapping[str, Mapping[str, object]] | None = None,
    backbone_sizes: Mapping[str, float] | None = None,
) -> list[Finding]:
    """The three findings as data (verdict, comparisons held, lines), for tests and other reports."""
    info = describe_adaptations(list(gelo.adaptation), adaptations)
    return [
        task_complexity_finding(gelo, info),
        head_design_finding(gelo, info),
        capacity_finding(gelo, backbone_sizes),
    ]


def write_summary(
    metrics: pd.DataFrame,
    gelo: pd.DataFrame,
    out_path: str | os.PathLike,
    *,
    adaptations: Mapping[str, Mapping[str, object]] | None = None,
    backbone_sizes: Mapping[str, float] | None = None,
) -> Path:
    """Write the one-page Markdown summary to ``out_path`` (atomically)."""
    return write_text_file(
        out_path, summary_text(metrics, gelo, adaptations=adaptations, backbone_sizes=backbone_sizes)
    )
