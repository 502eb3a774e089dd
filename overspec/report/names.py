"""Display names, orderings and directions for protocols, datasets and metrics in the report.

Keys are the names the evaluation steps write into ``metrics.csv`` (CLIP_benchmark dataset keys,
InsightFace pair-set names). Unknown keys are shown as they are and sorted after the known ones,
so a new dataset never breaks a table.

Operating-point metrics are named ``<rate>@<rate>=<fraction>``, e.g. ``apcer@bpcer=0.01`` or
``tar@far=0.0001``; :func:`canonical_metric` normalises other spellings of the number
(``0.10``, ``1e-4``, ``10%``) so results from different writers line up.
"""

from __future__ import annotations

import re

PROTOCOL_ORDER = ("zeroshot", "linear_probe", "face_verification", "ijb", "pad", "mad")
GELO_PROTOCOLS = ("zeroshot", "linear_probe")
BIOMETRIC_PROTOCOLS = ("face_verification", "ijb", "pad", "mad")
BASELINE = "none"

PROTOCOL_LABELS = {
    "zeroshot": "Zero-shot",
    "linear_probe": "Linear probe",
    "face_verification": "FR",
    "ijb": "FR",
    "pad": "PAD",
    "mad": "MAD",
}
PROTOCOL_SHORT = {"zeroshot": "ZS", "linear_probe": "LP"}

# The paper's column order (Tables A and B), then its biometric benchmarks (Table C).
AVERAGE_DATASET = "average"  # the row of a protocol's mean over its datasets (MAD, as the papers print it)
DATASET_LABELS = {
    "food101": "Food101",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "sun397": "SUN397",
    "cars": "Stanford Cars",
    "fgvc_aircraft": "FGVC Aircraft",
    "dtd": "DTD",
    "mnist": "MNIST",
    "flowers": "Flowers102",
    "stl10": "STL10",
    "gtsrb": "GTSRB",
    "country211": "Country211",
    "renderedsst2": "SST2",
    "imagenetv2": "ImageNet-v2",
    "lfw": "LFW",
    "cfp_fp": "CFP-FP",
    "agedb_30": "AgeDB-30",
    "calfw": "CALFW",
    "cplfw": "CPLFW",
    "ijbb": "IJB-B",
    "ijbc": "IJB-C",
    "celeba_spoof": "CA",
    AVERAGE_DATASET: "Avg.",
}
DATASET_ORDER = {name: rank for rank, name in enumerate(DATASET_LABELS)}

# Error rates: lower is better. Everything else (accuracy, TAR, AUC, GELO) is higher-is-better.
_LOWER_IS_BETTER = re.compile(r"^(eer|d-eer|hter|acer|apcer|bpcer|far|frr|error)(@|_|$)")
_OPERATING_POINT = re.compile(r"^([a-z]+)@([a-z]+)=([0-9.eE+-]+)(%?)$")
_METRIC_RANK = {"accuracy": 0, "tar": 1, "eer": 2, "hter": 3, "auc": 4, "apcer": 5, "bpcer": 6}
_METRIC_LABELS = {"accuracy": "Acc.", "hter": "HTER", "auc": "AUC", "eer": "EER", "acer": "ACER"}


def dataset_label(name: str) -> str:
    return DATASET_LABELS.get(name, name)


def dataset_sort_key(name: str) -> tuple[int, str]:
    return (DATASET_ORDER.get(name, len(DATASET_ORDER)), name)


def protocol_sort_key(name: str) -> tuple[int, str]:
    return (PROTOCOL_ORDER.index(name) if name in PROTOCOL_ORDER else len(PROTOCOL_ORDER), name)


def canonical_metric(name: str) -> str:
    """``APCER@BPCER=10%``, ``apcer@bpcer=0.10`` -> ``apcer@bpcer=0.1``; other names lower-cased."""
    name = name.strip().lower()
    match = _OPERATING_POINT.match(name)
    if not match:
        return name
    rate, at, number, percent = match.groups()
    value = float(number) / (100.0 if percent else 1.0)
    return f"{rate}@{at}={value:g}"


def operating_point(name: str) -> tuple[str, str, float] | None:
    """``apcer@bpcer=0.01`` -> ``("apcer", "bpcer", 0.01)``; None for other metrics."""
    match = _OPERATING_POINT.match(canonical_metric(name))
    return (match.group(1), match.group(2), float(match.group(3))) if match else None


def lower_is_better(metric: str) -> bool:
    return bool(_LOWER_IS_BETTER.match(canonical_metric(metric)))


def metric_label(metric: str) -> str:
    """``apcer@bpcer=0.01`` -> ``APCER@BPCER=1.00`` (the paper's header), ``tar@far=0.0001`` -> ``TAR@FAR=1e-4``."""
    point = operating_point(metric)
    if point is None:
        return _METRIC_LABELS.get(metric, metric)
    rate, at, value = point
    number = re.sub(r"e-0*", "e-", f"{value:.0e}") if value < 0.01 else f"{100 * value:.2f}"
    return f"{rate.upper()}@{at.upper()}={number}"


def metric_sort_key(metric: str) -> tuple[int, str, float, str]:
    point = operating_point(metric)
    head = point[0] if point else canonical_metric(metric)
    # FAR-style operating points read best from the strictest (smallest) target up.
    return (_METRIC_RANK.get(head, len(_METRIC_RANK)), point[1] if point else "", point[2] if point else 0.0, metric)
