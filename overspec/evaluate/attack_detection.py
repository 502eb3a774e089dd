"""Morphing (MAD) and presentation (PAD) attack detection: scoring protocols over per-sample scores.

Scores: higher = more bona fide (e.g. the probability of "bona fide"); labels 1 = bona fide,
0 = attack. Metrics come from `overspec.metrics` (ISO/IEC 30107-3 conventions documented there).

* **MAD** (`evaluate_mad`): one result per morphing-method test subset, each with its counts,
  D-EER, BPCER at APCER 1/10/20 %, APCER at BPCER 1/10/20 % and AUC, then the plain mean over
  subsets (the papers' "average" row). The bona fide set must be identical across subsets and no
  sample may appear twice (the padded-sampler bug behind MADation's 205/206 bona fides).
* **PAD** (`evaluate_pad`): frame scores are averaged per video; on the test videos AUC, EER,
  HTER/APCER/BPCER/ACER at the threshold chosen on the development (source) videos -- the EER
  threshold there -- and, labelled as such, the oracle HTER at the test set's own EER threshold
  (the SSDG/FoundPAD convention that literature tables report).
* **Probe** (`fit_probe`, `probe_bona_fide_scores`): for models without a native binary head, a
  logistic regression on frozen, L2-normalised embeddings fit on the task's training list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from overspec.data.biometric.attack_lists import check_same_bona_fide, listed_images
from overspec.errors import UserError
from overspec.evaluate.face_verification import EmbedFn, l2_normalise
from overspec.metrics import (
    MAD_OPERATING_POINTS,
    apcer_at_bpcer,
    apcer_bpcer_at_threshold,
    auc,
    bpcer_at_apcer,
    detection_eer,
    equal_error_rate,
    hter_at_oracle_threshold,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


def _split_scores(frame: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
    for column in ("id", "label", "score"):
        if column not in frame.columns:
            raise ValueError(f"{what} scores need columns id, label, score; missing {column!r}")
    if frame["id"].duplicated().any():
        raise UserError(
            f"{what}: sample {frame.loc[frame['id'].duplicated(), 'id'].iloc[0]!r} was scored twice; "
            "score every sample exactly once (de-duplicate gathered scores by sample id)."
        )
    labels = frame["label"].to_numpy().astype(int)
    scores = frame["score"].to_numpy(dtype=np.float64)
    bona_fide, attack = scores[labels == 1], scores[labels == 0]
    if bona_fide.size == 0 or attack.size == 0:
        raise UserError(f"{what} needs both bona fide and attack samples; check its list.")
    return bona_fide, attack


def _operating_points(points) -> list[dict[str, Any]]:
    return [
        {
            "target": p.target,
            "bpcer": p.rates.bpcer,
            "apcer": p.rates.apcer,
            "threshold": p.rates.threshold,
            "bona_fide_rejects": p.rates.bona_fide_rejects,
            "attack_accepts": sum(p.rates.attack_accepts_per_species.values()),
        }
        for p in points
    ]


def mad_subset_metrics(frame: pd.DataFrame, subset: str) -> dict[str, Any]:
    """Counts, D-EER (+ conventions), BPCER@APCER, APCER@BPCER and AUC for one test subset."""
    bona_fide, attack = _split_scores(frame, f"MAD subset {subset!r}")
    eer = detection_eer(bona_fide, attack)
    return {
        "n_bona_fide": int(bona_fide.size),
        "n_attack": int(attack.size),
        "d_eer": eer.eer,
        "d_eer_bracket": [eer.low, eer.high],
        "d_eer_nearest_point": eer.nearest_far,
        "bpcer_at_apcer": _operating_points(bpcer_at_apcer(bona_fide, attack, MAD_OPERATING_POINTS)),
        "apcer_at_bpcer": _operating_points(apcer_at_bpcer(bona_fide, attack, MAD_OPERATING_POINTS)),
        "auc": auc(bona_fide, attack),
    }


def evaluate_mad(subsets: Mapping[str, pd.DataFrame], benchmark: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """Per-method MAD metrics and their mean; `subsets` maps method name -> scores (id, label, score)."""
    if not subsets:
        raise UserError(f"MAD benchmark {benchmark!r} has no test subsets; list at least one morphing method.")
    shared = check_same_bona_fide(subsets)
    per_subset = {name: mad_subset_metrics(frame, name) for name, frame in sorted(subsets.items())}
    names = list(per_subset)
    mean = {
        "d_eer": float(np.mean([per_subset[n]["d_eer"] for n in names])),
        "auc": float(np.mean([per_subset[n]["auc"] for n in names])),
        "bpcer_at_apcer": {
            str(t): float(np.mean([per_subset[n]["bpcer_at_apcer"][k]["bpcer"] for n in names]))
            for k, t in enumerate(MAD_OPERATING_POINTS)
        },
        "apcer_at_bpcer": {
            str(t): float(np.mean([per_subset[n]["apcer_at_bpcer"][k]["apcer"] for n in names]))
            for k, t in enumerate(MAD_OPERATING_POINTS)
        },
    }
    result = {
        "benchmark": benchmark,
        "task": "mad",
        "protocol": "per morphing method: shared bona fides + that method's morphs; mean over methods",
        "n_bona_fide": len(shared),
        "subsets": per_subset,
        "mean_over_subsets": mean,
        "primary_metric": "mean_over_subsets.d_eer",
    }
    table = pd.concat(
        [frame[["id", "label", "score"]].assign(subset=name) for name, frame in sorted(subsets.items())], ignore_index=True
    )[["subset", "id", "label", "score"]]
    return result, table


def video_scores(frames: pd.DataFrame, what: str = "PAD") -> pd.DataFrame:
    """Mean frame score per video, with the video's label, attack type and frame count (sorted by video id)."""
    for column in ("id", "label", "score", "video_id"):
        if column not in frames.columns:
            raise ValueError(f"PAD frame scores need columns id, label, score, video_id; missing {column!r}")
    if frames["id"].duplicated().any():
        raise UserError(f"{what}: frame {frames.loc[frames['id'].duplicated(), 'id'].iloc[0]!r} was scored twice.")
    attack_type = frames["attack_type"] if "attack_type" in frames.columns else pd.Series("", index=frames.index)
    grouped = frames.assign(attack_type=attack_type).groupby("video_id", sort=True)
    if (grouped["label"].nunique() > 1).any():
        raise UserError(f"{what}: a video holds both bona fide and attack frames; fix the video ids.")
    return pd.DataFrame(
        {
            "video_id": grouped.size().index,
            "label": grouped["label"].first().to_numpy().astype(int),
            "attack_type": grouped["attack_type"].first().to_numpy(),
            "score": grouped["score"].mean().to_numpy(dtype=np.float64),
            "n_frames": grouped.size().to_numpy(),
        }
    )


def _species(videos: pd.DataFrame) -> dict[str, np.ndarray]:
    attacks = videos[videos["label"] == 0]
    return {str(t) or "attack": attacks.loc[attacks["attack_type"] == t, "score"].to_numpy() for t in sorted(attacks["attack_type"].unique())}


def evaluate_pad(
    test_frames: pd.DataFrame, dev_frames: pd.DataFrame | None, benchmark: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Video-level PAD metrics on the test set; the operating threshold comes from the dev set's EER point."""
    test = video_scores(test_frames, f"PAD test {benchmark!r}")
    bona_fide = test.loc[test["label"] == 1, "score"].to_numpy()
    attack = test.loc[test["label"] == 0, "score"].to_numpy()
    if bona_fide.size == 0 or attack.size == 0:
        raise UserError(f"PAD test set {benchmark!r} needs both bona fide and attack videos; check its list.")
    eer = equal_error_rate(bona_fide, attack)
    oracle = hter_at_oracle_threshold(bona_fide, attack)
    result: dict[str, Any] = {
        "benchmark": benchmark,
        "task": "pad",
        "protocol": "video score = mean of frame scores; threshold = EER point of the dev videos",
        "n_videos": len(test),
        "n_frames": int(test["n_frames"].sum()),
        "n_bona_fide_videos": int(bona_fide.size),
        "n_attack_videos": int(attack.size),
        "n_attack_videos_per_type": {k: int(v.size) for k, v in _species(test).items()},
        "auc": auc(bona_fide, attack),
        "eer": eer.eer,
        "eer_bracket": [eer.low, eer.high],
        "oracle_hter": {"hter": oracle.hter, "apcer": oracle.far, "bpcer": oracle.frr, "threshold": oracle.threshold,
                        "note": "threshold chosen on the test scores themselves (SSDG/FoundPAD convention)"},
        "primary_metric": "hter",
    }
    if dev_frames is not None:
        dev = video_scores(dev_frames, f"PAD dev {benchmark!r}")
        dev_bf, dev_attack = dev.loc[dev["label"] == 1, "score"].to_numpy(), dev.loc[dev["label"] == 0, "score"].to_numpy()
        if dev_bf.size == 0 or dev_attack.size == 0:
            raise UserError(f"The PAD dev set for {benchmark!r} needs both bona fide and attack videos; check its list.")
        threshold = equal_error_rate(dev_bf, dev_attack).threshold
        rates = apcer_bpcer_at_threshold(bona_fide, _species(test), threshold)
        pooled = apcer_bpcer_at_threshold(bona_fide, attack, threshold)
        result.update(
            {
                "dev_threshold": threshold,
                "n_dev_videos": len(dev),
                "hter": pooled.acer,  # (pooled APCER + BPCER) / 2 at the dev threshold
                "apcer": pooled.apcer,
                "bpcer": pooled.bpcer,
                "acer": rates.acer,  # with APCER = worst attack type (ISO/IEC 30107-3, OULU-NPU)
                "apcer_worst_type": rates.apcer,
                "apcer_per_type": rates.apcer_per_species,
            }
        )
    else:
        result["primary_metric"] = "auc"
    frames = test_frames[["id", "video_id", "label", "score"]].copy()
    frames["attack_type"] = test_frames["attack_type"] if "attack_type" in test_frames.columns else ""
    frames = frames.merge(test[["video_id", "score"]].rename(columns={"score": "video_score"}), on="video_id")
    return result, frames[["id", "video_id", "label", "attack_type", "score", "video_score"]]


# ---------------------------------------------------------------------------------------------
# Cross-task scoring: a linear probe on frozen embeddings


def fit_probe(features: np.ndarray, labels: np.ndarray, c: float = 1.0, seed: int = 0) -> Pipeline:
    """Logistic regression (class-balanced, standardised L2-normalised features) predicting bona fide (1)."""
    labels = np.asarray(labels).astype(int)
    if set(np.unique(labels)) != {0, 1}:
        raise UserError("The attack-detection training list needs both bona fide and attack samples.")
    # Imported here: the FR jobs import this module too and never fit a probe (sklearn costs ~1 s).
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed),
    )
    return probe.fit(l2_normalise(features), labels)


def probe_bona_fide_scores(probe: Pipeline, features: np.ndarray) -> np.ndarray:
    """P(bona fide) under the probe."""
    column = list(probe.classes_).index(1)
    return probe.predict_proba(l2_normalise(features))[:, column]


def unchanged(image):
    """The geometric transform of images that already have the model's input size."""
    return image


def embed_paths(frames: Sequence[pd.DataFrame], embed_fn: EmbedFn, batch_size: int = 256,
                fit: Callable = unchanged, num_workers: int = 0) -> dict[str, np.ndarray]:
    """Embeddings of each distinct image path of the lists (shared bona fides are embedded once).

    `fit` is the model's geometric preprocessing (resize, crop), applied to each image as it is loaded
    (`overspec.embed.loader.fitted_batches`), so lists of images of any size batch and stream.
    """
    from overspec.embed.loader import fitted_batches

    images = listed_images(frames)
    batches = fitted_batches(images, fit, batch_size, num_workers)
    features = np.concatenate([np.asarray(embed_fn(b), dtype=np.float32) for b in batches])
    return dict(zip(images.paths, features))


def probe_score_lists(
    train: pd.DataFrame, tests: Mapping[str, pd.DataFrame], embed_fn: EmbedFn, batch_size: int = 256, c: float = 1.0,
    fit: Callable = unchanged, num_workers: int = 0,
) -> dict[str, pd.DataFrame]:
    """Fit the probe on `train`'s embeddings and add a 'score' column to each test list."""
    features = embed_paths([train, *tests.values()], embed_fn, batch_size, fit, num_workers)
    probe = fit_probe(np.stack([features[p] for p in train["path"]]), train["label"].to_numpy())
    return {
        name: frame.assign(score=probe_bona_fide_scores(probe, np.stack([features[p] for p in frame["path"]])))
        for name, frame in tests.items()
    }
