"""Pure-numpy metrics: classification, ROC/EER, verification and attack-detection error rates.

Score orientation everywhere: the positive class (genuine pair, bona fide presentation) scores
higher, and a score is accepted when score >= threshold. Each module's docstring states its
conventions.
"""

from overspec.metrics.attack import (
    MAD_OPERATING_POINTS,
    AttackErrorRates,
    AttackOperatingPoint,
    acer,
    apcer_at_bpcer,
    apcer_bpcer_at_threshold,
    bpcer_at_apcer,
    detection_eer,
)
from overspec.metrics.classification import (
    PRIMARY_METRICS,
    accuracy,
    bootstrap_ci,
    bootstrap_indices,
    mean_per_class_recall,
    primary_metric,
    topk_accuracy,
)
from overspec.metrics.roc import (
    EqualErrorRate,
    ErrorRates,
    Roc,
    auc,
    equal_error_rate,
    error_rates_at_threshold,
    hter,
    hter_at_oracle_threshold,
    roc_curve,
)
from overspec.metrics.verification import (
    IJB_FAR_TARGETS,
    INSIGHTFACE_THRESHOLDS,
    KFoldAccuracy,
    TarAtFar,
    kfold_verification_accuracy,
    tar_at_far,
)

__all__ = [
    "IJB_FAR_TARGETS",
    "INSIGHTFACE_THRESHOLDS",
    "MAD_OPERATING_POINTS",
    "PRIMARY_METRICS",
    "AttackErrorRates",
    "AttackOperatingPoint",
    "EqualErrorRate",
    "ErrorRates",
    "KFoldAccuracy",
    "Roc",
    "TarAtFar",
    "accuracy",
    "acer",
    "apcer_at_bpcer",
    "apcer_bpcer_at_threshold",
    "auc",
    "bootstrap_ci",
    "bootstrap_indices",
    "bpcer_at_apcer",
    "detection_eer",
    "equal_error_rate",
    "error_rates_at_threshold",
    "hter",
    "hter_at_oracle_threshold",
    "kfold_verification_accuracy",
    "mean_per_class_recall",
    "primary_metric",
    "roc_curve",
    "tar_at_far",
    "topk_accuracy",
]
