"""A fine-tuning recipe: every hyperparameter of one `finetune` run, built from a config mapping.

Unknown keys stop with a UserError naming them, so a typo in a study config never silently falls
back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from overspec.errors import UserError
from overspec.models.head_config import HeadConfig
from overspec.models.lora_config import LoRAConfig
from overspec.train.early_stopping import EarlyStoppingConfig
from overspec.train.schedule import ScheduleConfig

TASKS = ("fr", "mad", "pad")
METHODS = ("lora", "full")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class AugmentConfig:
    hflip: bool = True
    rand_augment: bool = False
    rand_augment_ops: int = 4  # published FRoundation: RandAugment(num_ops=4, magnitude=16)
    rand_augment_magnitude: int = 16  # torchvision scale (31 bins)
    color_jitter: float = 0.0  # to half the images: brightness, contrast, saturation, hue jitter (published FoundPAD: 0.1)
    # The rest of published FoundPAD's augmentation (overspec.train.augment): crop side / resized side
    # (224 / 256), gamma range in percent (80, 180), RGB shift per channel in pixel levels (20).
    random_crop: float | None = None
    random_gamma: tuple[float, float] | None = None
    rgb_shift: int = 0

    def __post_init__(self) -> None:
        if self.random_crop is not None and not 0 < self.random_crop <= 1:
            raise UserError(f"augment.random_crop is {self.random_crop!r}; it must be in (0, 1] "
                            "(crop side / resized side, published FoundPAD 0.875), or null for none.")
        if self.random_gamma is not None:
            gamma = tuple(self.random_gamma)
            if len(gamma) != 2 or not 0 < gamma[0] <= gamma[1]:
                raise UserError(f"augment.random_gamma is {self.random_gamma!r}; it must be [low, high] in percent "
                                "with 0 < low <= high (published FoundPAD [80, 180]), or null for none.")
            object.__setattr__(self, "random_gamma", gamma)
        if not isinstance(self.rgb_shift, int) or isinstance(self.rgb_shift, bool) or not 0 <= self.rgb_shift <= 255:
            raise UserError(f"augment.rgb_shift is {self.rgb_shift!r}; it must be an integer from 0 (off) to 255 "
                            "(published FoundPAD 20).")


@dataclass(frozen=True)
class L2SPConfig:
    """L2-SP (Li et al., ICML 2018): pull the adapted encoder weights back towards the pretrained ones
    with strength `weight` (units of AdamW's weight_decay; `overspec.train.l2sp` says how)."""

    weight: float

    def __post_init__(self) -> None:
        if not isinstance(self.weight, (int, float)) or isinstance(self.weight, bool) or not self.weight >= 0:
            raise UserError(f"l2sp.weight is {self.weight!r}; it must be a number >= 0.")


@dataclass(frozen=True)
class LPFTConfig:
    """LP-FT (Kumar et al., ICLR 2022): train the head alone on the frozen encoder for `probe_steps`
    steps, then fine-tune as the recipe says, starting from that head (`overspec.train.lp_ft`)."""

    probe_steps: int

    def __post_init__(self) -> None:
        if not isinstance(self.probe_steps, int) or isinstance(self.probe_steps, bool) or self.probe_steps < 1:
            raise UserError(f"lp_ft.probe_steps is {self.probe_steps!r}; it must be an integer >= 1.")


# The recipe keys that exist to limit forgetting (configs/mitigation.yaml compares them).
MITIGATION_KEYS = ("l2sp", "lp_ft", "freeze_blocks")


@dataclass(frozen=True)
class FinetuneConfig:
    task: str = "fr"
    method: str = "lora"
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    lr_encoder: float = 1e-4
    lr_head: float = 1e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 512  # global, over all ranks
    epochs: float | None = 40
    max_steps: int | None = None  # caps the run; with epochs None it is the whole budget
    max_seconds: float | None = None  # wall-clock cap (a time-capped run is not reproducible)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    grad_clip: float | None = 5.0  # max L2 norm, applied to encoder and head separately (published)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    balanced_sampling: bool = False  # class-balanced sampling with replacement (FoundPAD)
    precision: str = "fp32"  # "bf16"/"fp16": autocast on GPU (published code: fp32); CPU always fp32
    early_stopping: EarlyStoppingConfig | None = None  # its max_steps replaces epochs / max_steps
    l2sp: L2SPConfig | None = None
    lp_ft: LPFTConfig | None = None
    freeze_blocks: int = 0  # the first N blocks of the image encoder stay as pretrained
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UserError(f"Fine-tuning task '{self.task}' is unknown: use one of {list(TASKS)}.")
        if self.method not in METHODS:
            raise UserError(f"Fine-tuning method '{self.method}' is unknown: use one of {list(METHODS)}.")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision '{self.precision}' is unknown: use one of {list(PRECISIONS)}.")
        if self.batch_size < 1:
            raise UserError(f"batch_size={self.batch_size} must be at least 1.")
        if self.epochs is None and self.max_steps is None and self.early_stopping is None:
            raise UserError("A fine-tuning recipe needs epochs or max_steps (or both).")
        if self.lr_encoder < 0 or self.lr_head < 0 or self.weight_decay < 0:
            raise UserError("Learning rates and weight_decay must not be negative.")
        object.__setattr__(self, "betas", tuple(self.betas))
        _check_freeze_count(self.freeze_blocks, "recipe")

    def check_freeze_blocks(self, where: str, depth: int | None = None, encoder: str = "the image encoder") -> None:
        """Stop with one sentence naming `where.freeze_blocks` when it cannot apply: more blocks than the
        image encoder has but one (`depth`, when known), or LoRA told to adapt a block it freezes."""
        n = self.freeze_blocks
        if depth is not None and n > depth - 1:
            raise UserError(f"{where}.freeze_blocks is {n}, but {encoder} has {depth} blocks: use 0 to "
                            f"{depth - 1} (at least the last block must be adapted).")
        frozen = sorted(b for b in (self.lora.blocks or ()) if b < n) if self.method == "lora" else []
        if frozen:
            raise UserError(f"{where}.freeze_blocks is {n}, which freezes block(s) {frozen} that {where}.lora.blocks "
                            f"adapts: list only blocks >= {n} in lora.blocks, or leave lora.blocks out.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "recipe") -> "FinetuneConfig":
        data = dict(data or {})
        nested = {"lora": LoRAConfig, "head": HeadConfig, "schedule": ScheduleConfig, "augment": AugmentConfig,
                  "early_stopping": EarlyStoppingConfig, "l2sp": L2SPConfig, "lp_ft": LPFTConfig}
        required = {"early_stopping": ("metric", "max_steps"), "l2sp": ("weight",), "lp_ft": ("probe_steps",)}
        kwargs: dict[str, Any] = {}
        _check_keys(cls, data, where)
        _check_freeze_count(data.get("freeze_blocks", 0), where)
        for key, value in data.items():
            if key in required and value is None:  # the option is off
                kwargs[key] = None
            elif key in nested:
                _check_keys(nested[key], value or {}, f"{where}.{key}")
                if key in required and not set(required[key]) <= set(value or {}):
                    raise UserError(f"{where}.{key} needs {' and '.join(required[key])}.")
                try:
                    kwargs[key] = nested[key](**(value or {}))
                except UserError as error:
                    raise UserError(f"{where}.{error}" if key in required or key == "augment" else str(error)) from None
            else:
                kwargs[key] = value
        config = cls(**kwargs)
        if config.early_stopping is not None:
            config.early_stopping.check_task(config.task, where)
        config.check_freeze_blocks(where)
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values; `from_dict(to_dict())` gives the same recipe."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _check_freeze_count(n: Any, where: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise UserError(f"{where}.freeze_blocks is {n!r}; it must be an integer >= 0 (0 adapts every block).")


def _check_keys(cls, data: Any, where: str) -> None:
    if not isinstance(data, Mapping):
        raise UserError(f"{where} must be a mapping of settings, got {type(data).__name__}.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {unknown}; known ones are {sorted(known)}.")


def plan_steps(num_samples: int, config: FinetuneConfig) -> tuple[int, int]:
    """(total steps, steps per epoch) for the recipe's budget; the last partial batch of an epoch is dropped."""
    steps_per_epoch = num_samples // config.batch_size
    if steps_per_epoch < 1:
        raise UserError(f"batch_size={config.batch_size} is larger than the {num_samples} training samples; lower it.")
    if config.early_stopping is not None:  # its max_steps is the budget; validation decides where to stop
        return config.early_stopping.max_steps, steps_per_epoch
    budget = [config.max_steps] if config.max_steps is not None else []
    if config.epochs is not None:
        budget.append(max(1, int(round(config.epochs * steps_per_epoch))))
    return min(budget), steps_per_epoch
