"""``results/summary.md``: one readable page on what this run found.

The study's question is a trade-off, so the page starts with what each fine-tune bought: its gain
on its own task's headline metric over its baseline, with the paired bootstrap interval where
``bootstrap_significance`` ran (``task_gain.csv``). A fine-tune whose gain is not significant (or,
without intervals, not positive) "did not learn its task": what it kept of its general ability
shows nothing about forgetting, so it is left out of the findings. Then the headline GELO numbers
and the study's three findings over the fine-tunes that learned, each marked supported / not
supported by this run's numbers (every comparison states both sides: own-task gain and GELO) or
"not tested on this run" when the models it needs are missing:

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

SUPPORTED, NOT_SUPPORTED, NOT_TESTED = "supported", "not supported", "not tested on this run"
# What a fine-tune's own-task gain says; only the first two enter the findings.
LEARNED = "learned its task"
LEARNED_UNTESTED = "learned its task (point gain, no interval)"
NOT_LEARNED = "did not learn its task"
NOT_EVALUATED = "own task not evaluated on this run"
# The headline of each task's own-task gain: (protocol, metric) rows of metrics.csv, averaged.
HEADLINE_ROWS = {"fr": ("face_verification", "accuracy"), "mad": ("mad", "eer"), "pad": ("pad", "hter")}


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


def _gain(model: str, gains: Mapping[str, str] | None) -> str:
    """`` (+14.20 pp pair accuracy)``: what the model gained on its own task, where known."""
    return f" ({gains[model]})" if gains and model in gains else ""


def task_complexity_finding(
    gelo: pd.DataFrame, info: Mapping[str, Adaptation], gains: Mapping[str, str] | None = None
) -> Finding:
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
                        f"{backbone}, {PROTOCOL_LABELS[protocol].lower()}: FR {a.model}{_gain(a.model, gains)} "
                        f"GELO {_fmt(a.gelo)} {'<' if ok else '>='} {TASK_NAMES[other]} {b.model}"
                        f"{_gain(b.model, gains)} GELO {_fmt(b.gelo)} ({'holds' if ok else 'fails'})"
                    )
    present = sorted({TASK_NAMES[t] for t in native.task.dropna()})
    return _verdict(
        finding,
        f"it needs an FR and a MAD or PAD fine-tune on one backbone; this run has {', '.join(present) or 'none'}.",
    )


def head_design_finding(
    gelo: pd.DataFrame, info: Mapping[str, Adaptation], gains: Mapping[str, str] | None = None
) -> Finding:
    finding = Finding(
        "Head design",
        "Models fine-tuned with a multi-class head keep less general ability than those with a binary head.",
        NOT_TESTED,
    )
    tuned = _tuned(gelo, info)
    tuned = tuned[tuned.head_kind.isin(["multiclass", "binary"])]
    controlled = 0

    def members(rows: pd.DataFrame) -> str:
        return "; ".join(f"{m}{_gain(m, gains)}" for m in rows.model)

    for (protocol, backbone), rows in _groups(tuned):
        multi, binary = rows[rows.head_kind == "multiclass"], rows[rows.head_kind == "binary"]
        if multi.empty or binary.empty:
            continue
        m, b = math.fsum(multi.gelo) / len(multi), math.fsum(binary.gelo) / len(binary)
        ok = m < b
        finding.total += 1
        finding.holds += ok
        finding.lines.append(
            f"{backbone}, {PROTOCOL_LABELS[protocol].lower()}: mean multi-class GELO {_fmt(m)} ({members(multi)}) "
            f"{'<' if ok else '>='} mean binary GELO {_fmt(b)} ({members(binary)}) ({'holds' if ok else 'fails'})"
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
                        f"multi-class {a.model}{_gain(a.model, gains)} GELO {_fmt(a.gelo)} {'<' if ok else '>='} "
                        f"binary {c.model}{_gain(c.model, gains)} GELO {_fmt(c.gelo)} ({'holds' if ok else 'fails'})"
                    )
    if finding.total and not controlled:
        finding.note = (
            "No two models of one task differ only in their head here, so head design and task are confounded."
        )
    return _verdict(finding, "it needs a multi-class-head and a binary-head fine-tune on one backbone.")


def capacity_finding(
    gelo: pd.DataFrame, backbone_sizes: Mapping[str, float] | None = None, gains: Mapping[str, str] | None = None
) -> Finding:
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
                bought = "; ".join(f"{m}{_gain(m, gains)}" for m in rows[rows.backbone.isin([large, small])].model
                                   if gains and m in gains)
                finding.lines.append(
                    f"{adaptation}, {PROTOCOL_LABELS[protocol].lower()}: {large} {_fmt(means[large])} "
                    f"{'>=' if ok else '<'} {small} {_fmt(means[small])} ({'holds' if ok else 'fails'})"
                    + (f"; own-task gains: {bought}" if bought else "")
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
                        (model, backbone, TASK_NAMES[task], protocol, benchmark, metric, metric_label(metric), mine,
                         base, theirs, gain)
                    )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "backbone",
            "task",
            "protocol",
            "benchmark",
            "metric_name",
            "metric",
            "fine_tuned",
            "baseline",
            "baseline_value",
            "gain_pp",
        ],
    )


def own_task_gains(
    metrics: pd.DataFrame, info: Mapping[str, Adaptation], task_gain: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per fine-tune: its own task's headline gain (pp, positive = better) and what it says.

    With ``task_gain`` (``task_gain.csv``, the paired bootstrap) the gain and its interval come from
    there and a fine-tune learned its task when the interval excludes 0 on the better side; without
    it the headline rows of ``metrics`` give the point gain alone (FR: mean pair-set accuracy, MAD:
    mean D-EER, PAD: HTER, averaged over benchmarks).
    """
    frame = check_metrics(metrics)
    points = biometric_gains(frame, info)
    tested = {} if task_gain is None else {r.model: r for r in task_gain.itertuples(index=False)}
    rows = []
    models = frame[frame.adaptation != BASELINE][["model", "backbone", "adaptation"]].drop_duplicates()
    for model, backbone, adaptation in sorted(models.itertuples(index=False, name=None),
                                              key=lambda t: model_sort_key(t[2], t[1], t[0])):
        task = info.get(adaptation, Adaptation(None, None)).task
        row = {"model": model, "backbone": backbone, "task": TASK_NAMES.get(task, adaptation), "metric": "",
               "fine_tuned": math.nan, "baseline_value": math.nan, "gain_pp": math.nan, "ci_low": math.nan,
               "ci_high": math.nan, "verdict": NOT_EVALUATED}
        if model in tested:
            t = tested[model]
            row.update(metric=t.metric, fine_tuned=100 * t.model_value, baseline_value=100 * t.baseline_value,
                       gain_pp=100 * t.gain, ci_low=100 * t.ci_low, ci_high=100 * t.ci_high,
                       verdict=LEARNED if t.significant and t.gain > 0 else NOT_LEARNED)
        elif task in HEADLINE_ROWS:
            protocol, metric = HEADLINE_ROWS[task]
            mine = points[(points.model == model) & (points.protocol == protocol) & (points.metric_name == metric)]
            if len(mine):
                row.update(metric=mine.metric.iloc[0], fine_tuned=mine.fine_tuned.mean(),
                           baseline_value=mine.baseline_value.mean(), gain_pp=mine.gain_pp.mean())
                row["verdict"] = LEARNED_UNTESTED if row["gain_pp"] > 0 else NOT_LEARNED
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "backbone", "task", "metric", "fine_tuned", "baseline_value",
                                       "gain_pp", "ci_low", "ci_high", "verdict"])


def learned_models(gains: pd.DataFrame) -> set[str]:
    return set(gains[gains.verdict.isin([LEARNED, LEARNED_UNTESTED])].model)


def gain_phrases(gains: pd.DataFrame) -> dict[str, str]:
    """``{model: "FR +14.20 pp pair accuracy"}`` for the findings' lines."""
    return {r.model: f"{r.task} {r.gain_pp:+.2f} pp {r.metric}" for r in gains.itertuples(index=False)
            if not math.isnan(r.gain_pp)}


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


def _own_task_section(gains: pd.DataFrame) -> list[str]:
    out = ["## What each fine-tune bought: the gain on its own task\n"]
    if gains.empty:
        out.append("_No fine-tuned model in this run._\n")
        return out

    def cell(r) -> str:
        if math.isnan(r.gain_pp):
            return "n/a"
        interval = "" if math.isnan(r.ci_low) else f" [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        return f"{r.gain_pp:+.2f}{interval}"

    frame = pd.DataFrame(
        {
            "Model": gains.model,
            "Backbone": gains.backbone,
            "Task": gains.task,
            "Metric": gains.metric,
            "Verdict": gains.verdict,
            "Fine-tuned (%)": gains.fine_tuned.map(lambda v: "n/a" if math.isnan(v) else f"{v:.2f}"),
            "Baseline (%)": gains.baseline_value.map(lambda v: "n/a" if math.isnan(v) else f"{v:.2f}"),
            "Gain (pp) [95% CI]": [cell(r) for r in gains.itertuples(index=False)],
        }
    )
    out.append(
        "Headline metric per task: FR mean pair-set accuracy, MAD mean D-EER over the morphing methods, PAD HTER "
        "at the dev threshold. Gain is in percentage points, positive when the fine-tune is better (lower for "
        "error rates); the interval is the paired bootstrap over the benchmark's samples (`analysis/task_gain.csv`).\n"
    )
    out.append(_table(frame, 3))
    if (gains.verdict == LEARNED_UNTESTED).any():
        out.append("Where no interval is given, the gain was not tested: switch on `analyses.significance` to test it.\n")
    left_out = gains[~gains.model.isin(learned_models(gains))]
    if len(left_out):
        out.append(
            "Left out of the findings, because what they kept shows nothing about forgetting unless they learned "
            "their task: " + ", ".join(f"{r.model} ({r.verdict})" for r in left_out.itertuples(index=False)) + ".\n"
        )
    return out


def _gains_section(gains: pd.DataFrame) -> list[str]:
    out = ["## Biometric results on each model's own task, per benchmark\n"]
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
        status = f"**Not tested on this run**: {finding.note}"
    else:
        status = f"**{finding.verdict.capitalize()}** ({finding.holds} of {finding.total} comparisons hold)."
        if finding.note:
            status += f" {finding.note}"
    lines = [f"{number}. **{finding.title}.** {finding.claim} {status}"]
    lines += [f"   - {line}" for line in finding.lines]
    return ["\n".join(lines) + "\n"]


def _remedies_section(remedies: pd.DataFrame, min_gelo: float) -> list[str]:
    from overspec.analysis.mitigation import remedy_lines

    out = ["## Remedies against forgetting\n",
           "Each plain fine-tune against the fine-tunes that change its recipe to forget less (L2-SP, LP-FT, "
           "frozen blocks, ...) and its WiSE-FT models, over those that learned their task (table: "
           "`analysis/mitigation/table.md`; the Pareto fronts are on the trade-off figure).\n"]
    lines = remedy_lines(remedies, min_gelo)
    out.append("\n".join(f"- {line}" for line in lines) + "\n" if lines else "_No remedy group has results in this run._\n")
    return out


def summary_text(
    metrics: pd.DataFrame,
    gelo: pd.DataFrame,
    *,
    task_gain: pd.DataFrame | None = None,
    adaptations: Mapping[str, Mapping[str, object]] | None = None,
    backbone_sizes: Mapping[str, float] | None = None,
    remedies: pd.DataFrame | None = None,
    min_gelo: float = 0.95,
) -> str:
    """The page. ``remedies`` (``overspec.analysis.mitigation.mitigation_table``) adds the Remedies
    section; its models other than the plain references stay out of the findings, which are about
    the fine-tunes as recipes make them, not about remedies against their forgetting."""
    frame = check_metrics(metrics)
    info = describe_adaptations(list(frame.adaptation) + list(gelo.adaptation), adaptations)
    gains = own_task_gains(frame, info, task_gain)
    models = frame.model.nunique()
    parts = [
        "# Summary of this run\n",
        f"{models} model(s), {frame.dataset.nunique()} dataset(s), protocols: "
        f"{', '.join(sorted(set(frame.protocol)))}. Full tables: `tables/`.\n",
    ]
    parts += _own_task_section(gains)
    if remedies is not None:
        parts += _remedies_section(remedies, min_gelo)
    parts += _gelo_section(gelo)
    parts += _gains_section(biometric_gains(frame, info))
    parts.append("## The study's findings, checked on this run (fine-tunes that learned their task)\n")
    learned = learned_models(gains)
    if remedies is not None:
        learned -= set(remedies.model[remedies.model != remedies.reference])
    checked = findings(gelo[(gelo.adaptation == BASELINE) | gelo.model.isin(learned)], adaptations=adaptations,
                       backbone_sizes=backbone_sizes, gains=gain_phrases(gains))
    for number, finding in enumerate(checked, start=1):
        parts += _finding_section(number, finding)
    return "\n".join(parts)


def findings(
    gelo: pd.DataFrame,
    *,
    adaptations: Mapping[str, Mapping[str, object]] | None = None,
    backbone_sizes: Mapping[str, float] | None = None,
    gains: Mapping[str, str] | None = None,
) -> list[Finding]:
    """The three findings as data (verdict, comparisons held, lines), for tests and other reports.

    ``gains`` (``gain_phrases``) puts each model's own-task gain beside its GELO in the lines.
    """
    info = describe_adaptations(list(gelo.adaptation), adaptations)
    return [
        task_complexity_finding(gelo, info, gains),
        head_design_finding(gelo, info, gains),
        capacity_finding(gelo, backbone_sizes, gains),
    ]


def write_summary(
    metrics: pd.DataFrame,
    gelo: pd.DataFrame,
    out_path: str | os.PathLike,
    *,
    task_gain: pd.DataFrame | None = None,
    adaptations: Mapping[str, Mapping[str, object]] | None = None,
    backbone_sizes: Mapping[str, float] | None = None,
    remedies: pd.DataFrame | None = None,
    min_gelo: float = 0.95,
) -> Path:
    """Write the one-page Markdown summary to ``out_path`` (atomically)."""
    return write_text_file(
        out_path,
        summary_text(metrics, gelo, task_gain=task_gain, adaptations=adaptations, backbone_sizes=backbone_sizes,
                     remedies=remedies, min_gelo=min_gelo),
    )
