"""Early stopping of a fine-tune on a validation split carved from its own training list.

Torch-free (numpy only), so recipes are checked at workflow parse. Three parts:

- `EarlyStoppingConfig`: the recipe's `early_stopping` entry. With it the run takes at most
  `max_steps` optimiser steps (this replaces the recipe's epochs / max_steps budget), scores the
  validation split every `every` steps and stops after `patience` scores without improvement;
  the model keeps the weights of the best-scoring step.
- `carve_validation`: a seeded split that keeps groups whole (an identity of an identity-folder
  set, a video of a PAD list; else each sample is its own group), stratified by class for the
  binary tasks, so no person or video is both trained on and validated on.
- `validation_metric` and `EarlyStopping`: the score of one validation pass and the bookkeeping
  (best step, the curve, when to stop) that goes into the model card.

Validation metrics, per task (the scores are "higher = more genuine"):
fr: `eer`, `auc` of cosine similarities over every pair of validation images (the validation
identities are unseen by the head, as the test identities are); mad, pad: `eer`, `auc` of the
binary head's P(bona fide) and `loss`, the head's training loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from overspec.errors import UserError
from overspec.metrics.roc import auc, equal_error_rate

HIGHER_IS_BETTER = {"eer": False, "auc": True, "loss": False}
TASK_METRICS = {"fr": ("eer", "auc"), "mad": ("eer", "auc", "loss"), "pad": ("eer", "auc", "loss")}
MIN_PER_CLASS = 10  # fewer validation samples (FR: pairs) of a class cannot rank steps reliably


@dataclass(frozen=True)
class EarlyStoppingConfig:
    metric: str
    max_steps: int
    patience: int = 3  # validation scores without improvement before stopping
    every: int = 10  # optimiser steps between validation scores
    fraction: float = 0.2  # share of the training groups held out

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.patience < 1 or self.every < 1:
            raise UserError("early_stopping.max_steps, patience and every must each be at least 1.")
        if not 0.0 < self.fraction < 1.0:
            raise UserError(f"early_stopping.fraction is {self.fraction}; it must lie strictly between 0 and 1.")

    def check_task(self, task: str, where: str) -> None:
        """Stop with one sentence naming the key when the metric does not exist for `task`."""
        known = TASK_METRICS[task]
        if self.metric not in known:
            raise UserError(f"{where}.early_stopping.metric is {self.metric!r}, which does not exist for task {task}: "
                            f"use one of {', '.join(known)}.")

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]


def carve_validation(labels: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int,
                     stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), both sorted: whole groups, `fraction` of them (per class if `stratify`)."""
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    if len(groups) != len(labels):
        raise ValueError("one group per sample is needed")
    names, first = np.unique(groups, return_index=True)
    group_label = labels[first]
    rng = np.random.default_rng([seed, 0xE5])
    strata = np.unique(group_label) if stratify else [None]
    held: list[np.ndarray] = []
    for stratum in strata:
        members = names if stratum is None else names[group_label == stratum]
        take = int(round(fraction * len(members)))
        held.append(rng.permutation(members)[:take])
    val_mask = np.isin(groups, np.concatenate(held) if held else np.array([], dtype=groups.dtype))
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask)


def check_validation_split(task: str, labels: np.ndarray, class_names: list[str], where: str) -> dict[str, int]:
    """Counts per scored class of the validation split; one sentence naming the key if any is below 10."""
    labels = np.asarray(labels)
    if task == "fr":
        sizes = np.unique(labels, return_counts=True)[1].astype(np.int64)
        genuine = int((sizes * (sizes - 1) // 2).sum())
        counts = {"genuine_pairs": genuine, "impostor_pairs": int(len(labels) * (len(labels) - 1) // 2 - genuine),
                  "identities": len(sizes), "images": len(labels)}
        scored = ("genuine_pairs", "impostor_pairs")
    else:
        counts = {name: int((labels == k).sum()) for k, name in enumerate(class_names)}
        scored = tuple(class_names)
    short = next((name for name in scored if counts[name] < MIN_PER_CLASS), None)
    if short is not None:
        raise UserError(f"{where}.early_stopping: the validation split has {counts[short]} {short.replace('_', ' ')} "
                        f"(fewer than {MIN_PER_CLASS}), too few to score; raise early_stopping.fraction or train on more data.")
    return counts


def verification_scores(embeddings: np.ndarray, identities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) cosine similarities over every pair of L2-normalised embeddings."""
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    upper = np.triu_indices(len(e), k=1)
    similarity = (e @ e.T)[upper]
    same = (identities[:, None] == identities[None, :])[upper]
    return similarity[same], similarity[~same]


def validation_metric(metric: str, genuine: np.ndarray, impostor: np.ndarray, loss: float | None = None) -> float:
    """One validation score from genuine / impostor scores (or the head's loss)."""
    if metric == "loss":
        if loss is None:
            raise ValueError("metric loss needs the validation loss")
        return float(loss)
    if metric == "eer":
        return equal_error_rate(genuine, impostor).eer
    if metric == "auc":
        return auc(genuine, impostor)
    raise ValueError(f"unknown validation metric {metric!r}")


class EarlyStopping:
    """Which steps to score, the best one so far, and when patience has run out."""

    def __init__(self, config: EarlyStoppingConfig, last_step: int) -> None:
        self.config, self.last_step = config, last_step
        self.curve: list[dict[str, Any]] = []
        self.best_step: int | None = None
        self.best_value: float | None = None
        self.waited = 0

    def due(self, step: int) -> bool:
        """Score after optimiser step `step` (1-based): every `every` steps and after the last one."""
        return step % self.config.every == 0 or step == self.last_step

    def update(self, step: int, value: float) -> bool:
        """Record a score; True when it is the best so far (the caller keeps that step's weights)."""
        self.curve.append({"step": step, "value": float(value)})
        better = self.best_value is None or (value > self.best_value if self.config.higher_is_better
                                             else value < self.best_value)
        if better:
            self.best_step, self.best_value, self.waited = step, float(value), 0
        else:
            self.waited += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.waited >= self.config.patience

    def card(self, validation: dict[str, Any]) -> dict[str, Any]:
        """The model card's record: settings, the step chosen, its score and the whole curve."""
        c = self.config
        return {"metric": c.metric, "higher_is_better": c.higher_is_better, "every": c.every, "patience": c.patience,
                "max_steps": c.max_steps, "fraction": c.fraction, "best_step": self.best_step,
                "best_value": self.best_value, "stopped_early": self.should_stop, "curve": self.curve,
                "validation": validation}
