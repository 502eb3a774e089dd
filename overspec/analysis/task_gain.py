"""Did each fine-tune learn its own task? Its headline biometric metric against its baseline's, with a
paired bootstrap interval over the benchmark's own scoring units.

Headline metric per task (the one the published papers report):

* FR: 10-fold pair-set accuracy (insightface's threshold grid), the mean over the pair sets;
* MAD: D-EER per morphing method (shared bona fides + that method's morphs), the mean over methods;
* PAD: HTER at the development set's EER threshold, per video, the mean over PAD benchmarks.

Replicates resample the scored units of each benchmark within strata that the protocol keeps fixed:
pairs within their fold (FR), bona fides once for all methods and each method's morphs (MAD), bona
fide and attack videos (PAD; the dev threshold is held fixed, as the dev scores are not in the
scores file). Model and baseline are scored on the same replicates (their units are matched by id
and checked), so the difference is paired. Each benchmark is seeded by ``[seed, crc32(benchmark)]``;
a task's replicate is the mean over its benchmarks, like its headline. ``gain`` is signed so that
positive means better (lower error rates count as gains), in the metric's own units (fractions).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from overspec.analysis.bootstrap import read_tested_table, resample_weights, summarize
from overspec.errors import UserError
from overspec.metrics import apcer_bpcer_at_threshold, detection_eer
from overspec.metrics.verification import INSIGHTFACE_THRESHOLDS
from overspec.provenance import read_json, sha256_file

TASK_GAIN_COLUMNS = ("model", "backbone", "adaptation", "baseline", "task", "metric", "benchmarks", "model_value",
                     "baseline_value", "gain", "ci_low", "ci_high", "p_value", "significant", "resamples", "seed")
TASK_GAIN_FLOATS = ("model_value", "baseline_value", "gain", "ci_low", "ci_high", "p_value")
# The headline metric of each task, its name in the table, and whether lower is better.
HEADLINE = {"fr": ("pair accuracy", False), "mad": ("mean D-EER", True), "pad": ("HTER", True)}


@dataclass(frozen=True)
class Scored:
    """One model's scores on one benchmark of a task, read from a result JSON and its scores file."""

    task: str
    benchmark: str
    model: str
    result: dict[str, Any]
    scores: pd.DataFrame
    source: str


def read_scored(json_path: str | os.PathLike) -> Scored:
    """A biometric result and its per-sample scores (checked against the digest the JSON records).

    The model and task come from the path the evaluation jobs write: ``.../{model}/{task}/{benchmark}.json``.
    """
    result = read_json(json_path)
    entry = result.get("scores_file") or {}
    csv_path = Path(json_path).with_name(entry.get("path", ""))
    if not entry or not csv_path.is_file() or sha256_file(csv_path) != entry.get("sha256"):
        raise UserError(f"The scores beside {json_path} are missing or differ from its recorded digest: delete the "
                        "result and rerun its evaluation.")
    task, model = Path(json_path).parent.name, Path(json_path).parent.parent.name
    return Scored(task, str(result["benchmark"]), model, result, pd.read_csv(csv_path, dtype={"id": str}),
                  str(json_path))


def stratified_weights(strata: np.ndarray, resamples: int, seed: Sequence[int],
                       rows: int = 64) -> Iterator[np.ndarray]:
    """Chunks [<= rows, n] of draw counts that resample each stratum's units within it (sizes kept).

    Stratum ``k`` (in sorted order of the values) draws from ``resample_weights(..., [*seed, k])``.
    """
    strata = np.asarray(strata)
    groups = [np.flatnonzero(strata == value) for value in np.unique(strata)]
    streams = [_rows(resample_weights(len(g), resamples, [*seed, k])) for k, g in enumerate(groups)]
    for start in range(0, resamples, rows):
        count = min(rows, resamples - start)
        weights = np.zeros((count, strata.size))
        for group, stream in zip(groups, streams):
            weights[:, group] = np.stack([next(stream) for _ in range(count)])
        yield weights


def _rows(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    for chunk in chunks:
        yield from chunk


def grid_correct(distances: np.ndarray, same: np.ndarray) -> np.ndarray:
    """[n, thresholds]: 1 where insightface's grid threshold calls the pair right (genuine below it)."""
    below = distances[:, None] < INSIGHTFACE_THRESHOLDS[None, :]
    return np.where(same[:, None], below, ~below).astype(np.float64)


def fold_accuracy(correct: np.ndarray, folds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The k-fold grid accuracy of a ``grid_correct`` matrix under each row of ``weights`` [B, n]:
    per held-out fold, the threshold with the most (weighted) correct training pairs, the first of
    ties, as ``np.argmax`` picks."""
    weights = np.atleast_2d(weights)
    accuracies = []
    for fold in np.unique(folds):
        held = folds == fold
        best = np.argmax(weights[:, ~held] @ correct[~held], axis=1)
        held_counts = weights[:, held] @ correct[held]
        accuracies.append(held_counts[np.arange(len(best)), best] / weights[:, held].sum(axis=1))
    return np.mean(accuracies, axis=0)


def pair_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """insightface's k-fold pair accuracy on the grid under each row of ``weights`` [B, n].

    Unit weights give ``overspec.metrics.kfold_verification_accuracy(method="grid")``.
    """
    return fold_accuracy(grid_correct(distances, same), folds, weights)


def _repeat(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.repeat(values, weights.astype(np.int64))


def _check_units(tables: Mapping[str, pd.DataFrame], columns: Sequence[str], what: str) -> None:
    """Every model's scores list the same units with the same labels, in the same order."""
    first_model, first = next(iter(tables.items()))
    for model, table in tables.items():
        if len(table) != len(first) or not table[list(columns)].reset_index(drop=True).equals(
                first[list(columns)].reset_index(drop=True)):
            raise UserError(f"{what}: the scores of {model!r} and {first_model!r} do not list the same "
                            f"{'/'.join(columns)}; rerun the older evaluation.")


def _fr_replicates(found: Mapping[str, Scored], resamples: int, seed: Sequence[int]) -> dict[str, tuple[float, np.ndarray]]:
    tables = {m: s.scores.sort_values("pair", kind="stable") for m, s in found.items()}
    _check_units(tables, ("pair", "fold", "issame"), f"Pair set {next(iter(found.values())).benchmark}")
    first = next(iter(tables.values()))
    same, folds = first["issame"].to_numpy().astype(bool), first["fold"].to_numpy()
    # which pairs each grid threshold gets right: once per model, then only weights change
    correct = {m: grid_correct(table["squared_l2"].to_numpy(np.float64), same) for m, table in tables.items()}
    out = {m: [] for m in tables}
    for weights in stratified_weights(folds, resamples, seed):
        for m in tables:
            out[m].append(fold_accuracy(correct[m], folds, weights))
    values = {}
    for m, table in tables.items():
        observed = float(fold_accuracy(correct[m], folds, np.ones(len(table)))[0])
        reported = float(found[m].result["accuracy"])
        # the JSON's distances were summed in float32: a pair on a grid threshold may flip, never more
        if abs(observed - reported) > 2.0 / min(np.bincount(folds)):
            raise UserError(f"{found[m].source} reports accuracy {reported} but its scores give {observed}: delete it "
                            "and rerun the evaluation.")
        values[m] = (reported, np.concatenate(out[m]))
    return values


def _mad_replicates(found: Mapping[str, Scored], resamples: int, seed: Sequence[int]) -> dict[str, tuple[float, np.ndarray]]:
    tables = {m: s.scores.sort_values(["subset", "label", "id"], kind="stable") for m, s in found.items()}
    _check_units(tables, ("subset", "id", "label"), f"MAD benchmark {next(iter(found.values())).benchmark}")
    first = next(iter(tables.values()))
    subsets = sorted(set(first["subset"]))
    # units: the shared bona fides (once, from the first subset) and each subset's morphs
    bona = first[(first.subset == subsets[0]) & (first.label == 1)]
    units = [("bona fide", bona.id.to_numpy())] + [
        (s, first[(first.subset == s) & (first.label == 0)].id.to_numpy()) for s in subsets]
    strata = np.concatenate([np.full(len(ids), k) for k, (_, ids) in enumerate(units)])
    arrays = {}
    for m, table in tables.items():
        bf = table[(table.subset == subsets[0]) & (table.label == 1)]["score"].to_numpy(np.float64)
        morphs = [table[(table.subset == s) & (table.label == 0)]["score"].to_numpy(np.float64) for s in subsets]
        arrays[m] = (bf, morphs)
    bounds = np.cumsum([0] + [len(ids) for _, ids in units])

    def mean_eer(m: str, w: np.ndarray) -> float:
        bf, morphs = arrays[m]
        weighted_bf = _repeat(bf, w[bounds[0]:bounds[1]])
        return math.fsum(detection_eer(weighted_bf, _repeat(scores, w[bounds[k + 1]:bounds[k + 2]])).eer
                         for k, scores in enumerate(morphs)) / len(morphs)

    return _replicate_each(found, strata, resamples, seed, mean_eer, lambda r: r["mean_over_subsets"]["d_eer"])


def _pad_replicates(found: Mapping[str, Scored], resamples: int, seed: Sequence[int]) -> dict[str, tuple[float, np.ndarray]]:
    videos = {}
    for m, s in found.items():
        if "dev_threshold" not in s.result:
            raise UserError(f"{s.source} has no dev threshold, so no HTER: give the PAD benchmark a dev list.")
        videos[m] = (s.scores.drop_duplicates("video_id").sort_values("video_id", kind="stable")
                     [["video_id", "label", "video_score"]].reset_index(drop=True))
    _check_units(videos, ("video_id", "label"), f"PAD benchmark {next(iter(found.values())).benchmark}")
    labels = next(iter(videos.values()))["label"].to_numpy().astype(int)

    def hter(m: str, w: np.ndarray) -> float:
        score = videos[m]["video_score"].to_numpy(np.float64)
        bf, attack = _repeat(score[labels == 1], w[labels == 1]), _repeat(score[labels == 0], w[labels == 0])
        return apcer_bpcer_at_threshold(bf, attack, found[m].result["dev_threshold"]).acer

    return _replicate_each(found, labels, resamples, seed, hter, lambda r: r["hter"])


def _replicate_each(found: Mapping[str, Scored], strata: np.ndarray, resamples: int, seed: Sequence[int],
                    metric: Callable[[str, np.ndarray], float],
                    reported: Callable[[dict], float]) -> dict[str, tuple[float, np.ndarray]]:
    """The metric of every model on each replicate (a weight row over the units), and its observed value."""
    out = {m: [] for m in found}
    for weights in stratified_weights(strata, resamples, seed):
        for row in weights:
            for m in found:
                out[m].append(metric(m, row))
    values = {}
    for m, s in found.items():
        observed, recorded = metric(m, np.ones(len(strata))), float(reported(s.result))
        if not math.isclose(observed, recorded, rel_tol=0.0, abs_tol=1e-9):
            raise UserError(f"{s.source} reports {recorded} but its scores give {observed}: delete it and rerun the "
                            "evaluation.")
        values[m] = (recorded, np.asarray(out[m]))
    return values


REPLICATES = {"fr": _fr_replicates, "mad": _mad_replicates, "pad": _pad_replicates}


def benchmark_seed(seed: int, benchmark: str) -> list[int]:
    return [seed, zlib.crc32(benchmark.encode())]


def task_gain_table(result_paths: Iterable[str | os.PathLike], pairs: Mapping[str, str],
                    models: Mapping[str, Mapping[str, Any]], *, resamples: int, seed: int,
                    alpha: float = 0.05) -> pd.DataFrame:
    """One row per fine-tuned model: its own task's headline metric against its baseline's.

    ``result_paths`` lists the result JSONs of the fine-tunes and baselines on the fine-tunes' own
    tasks (``results/biometrics/{model}/{task}/{benchmark}.json``); ``pairs`` maps each fine-tuned model to its baseline; ``models`` is the study's model
    table (backbone label, adaptation).
    """
    found: dict[tuple[str, str], dict[str, Scored]] = {}
    for path in result_paths:
        scored = read_scored(path)
        found.setdefault((scored.task, scored.benchmark), {})[scored.model] = scored
    rows = []
    for model, baseline in sorted(pairs.items()):
        task = models[model]["adaptation"]
        if task not in HEADLINE:
            continue
        benchmarks = sorted(b for t, b in found if t == task and model in found[(t, b)])
        lacking = [b for b in benchmarks if baseline not in found[(task, b)]]
        if lacking:
            raise UserError(f"The baseline {baseline!r} of {model!r} lacks {task} results for {', '.join(lacking)}: "
                            "run those evaluations.")
        if not benchmarks:  # the study evaluates no benchmark of this task
            continue
        mine, base = [], []
        for benchmark in benchmarks:
            pair = {m: found[(task, benchmark)][m] for m in (model, baseline)}
            scored = REPLICATES[task](pair, resamples, benchmark_seed(seed, benchmark))
            mine.append(scored[model])
            base.append(scored[baseline])
        value, base_value = np.mean([v for v, _ in mine]), np.mean([v for v, _ in base])
        replicates = np.mean([r for _, r in mine], axis=0) - np.mean([r for _, r in base], axis=0)
        metric, lower_better = HEADLINE[task]
        sign = -1.0 if lower_better else 1.0
        test = summarize(sign * (value - base_value), sign * replicates, 0.0, alpha)
        rows.append({"model": model, "backbone": models[model]["backbone_label"], "adaptation": task,
                     "baseline": baseline, "task": task, "metric": metric, "benchmarks": " ".join(benchmarks),
                     "model_value": float(value), "baseline_value": float(base_value), "gain": test.pop("estimate"),
                     **test, "resamples": resamples, "seed": seed})
    return pd.DataFrame(rows, columns=list(TASK_GAIN_COLUMNS))


def task_gain_markdown(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """The table for reading: values and gains in percent (points), * where the interval excludes 0."""
    parts = ["## Own-task gain of each fine-tune (percentage points; positive = better)\n"]
    if table.empty:
        return "\n".join(parts + ["_No fine-tuned model with results on its own task in this run._\n"])
    frame = pd.DataFrame({
        "model": table.model, "task": table.task.str.upper(), "metric": table.metric,
        "fine-tune (%)": (100 * table.model_value).map("{:.2f}".format),
        "baseline (%)": (100 * table.baseline_value).map("{:.2f}".format),
        "gain [CI]": [f"{100 * g:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]" + (" *" if s else "")
                      for g, lo, hi, s in zip(table.gain, table.ci_low, table.ci_high, table.significant)],
        "p": table.p_value.map("{:.4f}".format),
    })
    parts.append(f"* marks p < {alpha:g}: the fine-tune learned its task.\n")
    parts.append(frame.to_markdown(index=False, disable_numparse=True) + "\n")
    return "\n".join(parts)


def read_task_gain(path: str | os.PathLike) -> pd.DataFrame:
    """``task_gain.csv`` for the report, ``significant`` as bool."""
    return read_tested_table(path, TASK_GAIN_COLUMNS, ("model", "baseline", "benchmarks"))
