"""Paired bootstrap over test samples: the same resampled test indices for every model in a replicate.

A replicate is a weight vector over the n test samples (how often each was drawn, summing to n);
every model's metric on that replicate is its weighted metric, so a difference between two models
is always measured on the same resampled samples. Resamples come from
``overspec.metrics.bootstrap_indices`` (fixed-size chunks: a seed gives the same replicates
whatever else is computed).

Interval: the percentile interval of the replicates. Two-sided p-value of "statistic = null":

    p = min(1, 2 * min(#{t* <= null} + 1, #{t* >= null} + 1) / (B + 1))

over the B replicates t* (the +1 keeps p away from 0 with finitely many replicates; replicates
within 1e-12 of the null count on both sides, so identical predictions give p = 1). A result is
significant when p < alpha, which agrees with the (1 - alpha) interval excluding the null up to
the +1 correction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

import os

import numpy as np
import pandas as pd

from overspec.errors import UserError
from overspec.metrics import PRIMARY_METRICS, bootstrap_indices

TIE = 1e-12
K = TypeVar("K")


def resample_weights(n: int, resamples: int, seed: int | Sequence[int]) -> Iterator[np.ndarray]:
    """Chunks [count, n] of per-sample draw counts (float64), ``resamples`` rows in all."""
    for indices in bootstrap_indices(n, resamples, seed):
        count = indices.shape[0]
        flat = (indices + (np.arange(count) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=count * n).reshape(count, n).astype(np.float64)


def weighted_primary(name: str, weights: np.ndarray, labels: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """A primary metric (``top1`` or ``mean_per_class_recall``) under each row of ``weights`` [B, n].

    Unit weights give ``overspec.metrics.primary_metric`` exactly. Mean per-class recall averages
    over the classes present in the replicate (nonzero total weight), as the metric does over the
    classes present in the labels.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    labels, pred = np.asarray(labels), np.asarray(pred)
    if not (weights.shape[1] == labels.shape[0] == pred.shape[0]):
        raise ValueError(f"weights {weights.shape}, labels {labels.shape} and pred {pred.shape} disagree on n")
    correct = (pred == labels).astype(np.float64)
    if name == "top1":
        return (weights @ correct) / weights.sum(axis=1)
    if name == "mean_per_class_recall":
        order = np.argsort(labels, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
        ordered = weights[:, order]
        support = np.add.reduceat(ordered, starts, axis=1)
        hits = np.add.reduceat(ordered * correct[order], starts, axis=1)
        present = support > 0
        recall = np.divide(hits, support, out=np.zeros_like(hits), where=present)
        return recall.sum(axis=1) / present.sum(axis=1)
    raise UserError(f"Unknown primary metric {name!r}; use one of {', '.join(PRIMARY_METRICS)} in the dataset table.")


def p_value(replicates: np.ndarray, null: float) -> float:
    """Two-sided bootstrap p-value of ``statistic = null`` (see the module docstring)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    below = int(np.count_nonzero(replicates <= null + TIE))
    above = int(np.count_nonzero(replicates >= null - TIE))
    return min(1.0, 2.0 * (min(below, above) + 1) / (replicates.size + 1))


def summarize(estimate: float, replicates: np.ndarray, null: float, alpha: float = 0.05) -> dict[str, float | bool]:
    """The estimate, its percentile ``1 - alpha`` interval, the p-value against ``null`` and the flag."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    low, high = np.quantile(np.asarray(replicates, dtype=np.float64), [alpha / 2.0, 1.0 - alpha / 2.0])
    p = p_value(replicates, null)
    return {"estimate": float(estimate), "ci_low": float(low), "ci_high": float(high), "p_value": p,
            "significant": bool(p < alpha)}


def primary_replicates(metric: str, labels: np.ndarray, preds: Mapping[K, np.ndarray], resamples: int,
                       seed: int | Sequence[int]) -> dict[K, tuple[float, np.ndarray]]:
    """Each model's metric on the test set and on ``resamples`` bootstrap replicates of it.

    ``preds`` maps any key (a model, a (protocol, model) pair) to that model's predicted classes for
    the same test samples as ``labels``; every model is scored on the same replicates, so
    ``values[a] - values[b]`` is the paired bootstrap distribution of the difference a - b.
    """
    labels = np.asarray(labels)
    keys = list(preds)
    values = {key: np.empty(resamples, dtype=np.float64) for key in keys}
    done = 0
    for weights in resample_weights(labels.size, resamples, seed):
        for key in keys:
            values[key][done : done + weights.shape[0]] = weighted_primary(metric, weights, labels, preds[key])
        done += weights.shape[0]
    unit = np.ones((1, labels.size))
    return {key: (float(weighted_primary(metric, unit, labels, preds[key])[0]), values[key]) for key in keys}


def read_tested_table(path: str | os.PathLike, columns: Sequence[str], text_columns: Sequence[str]) -> pd.DataFrame:
    """A CSV of bootstrap tests (``bootstrap_significance``'s outputs), ``significant`` as bool."""
    try:
        frame = pd.read_csv(path, dtype={c: str for c in text_columns})
    except (OSError, pd.errors.ParserError) as error:
        raise UserError(f"Cannot read {path} ({error}); rerun the bootstrap_significance rule.") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks the columns {', '.join(missing)}; rerun the bootstrap_significance rule.")
    frame["significant"] = frame["significant"].astype(str).str.lower().eq("true")
    return frame
