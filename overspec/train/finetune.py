"""Fine-tune the image encoder of an open_clip model for FR, MAD or PAD (the published recipes).

One code path for a single process and for torchrun (DDP; NCCL on GPUs, gloo on CPU): every rank
seeds identically, so LoRA and head initialise identically, and the batches come from a batch
source (`overspec.train.batches`: the real data path, or on-device tensors for a benchmark) whose
sampling and augmentation do not depend on the number of ranks or workers.

The embedding fed to the head is `F.normalize(model.encode_image(x))`. AdamW with separate
learning rates for encoder and head, the published schedule (warm-up, cosine with warm restarts),
gradient clipping of encoder and head separately, autocast (bf16/fp16) on GPU only, fused AdamW
kernels on GPU. The host reads each step's figures (loss, accuracy, gradient norms) after queuing
the next step, so a GPU never waits for the host in the middle of training.

Three recipe options limit forgetting (each recorded in the card): `freeze_blocks` leaves the first
blocks without LoRA or gradient (`overspec.train.freeze`), `lp_ft` trains the head alone first
(`overspec.train.lp_ft`), `l2sp` pulls the adapted weights back after each AdamW step
(`overspec.train.l2sp`).

Rank 0 writes the per-step CSV log and then the model file: LoRA merged into the weights, the
head as `head.*` tensors, and a card with architecture, preprocessing, base digest, recipe,
training-data digest, seed and final metrics. A NaN/inf loss stops every rank with a UserError
before anything is written as a finished model.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from overspec.data.train_sets import TrainSet, TrainSubset, open_train_set
from overspec.errors import UserError
from overspec.models.checkpoint import load_model, save_model
from overspec.models.factory import preprocessing_of
from overspec.models.heads import build_head, head_tensors
from overspec.models.lora import apply_lora, lora_parameters, merge_lora
from overspec.provenance import atomic_path, sha256_file
from overspec.train.batches import BatchPlan, BatchSource, LoaderBatches, build_transform, to_model_input
from overspec.train.ddp import DistContext, barrier, init_distributed, shutdown
from overspec.train.early_stopping import (EarlyStopping, carve_validation, check_validation_split,
                                           validation_metric, verification_scores)
from overspec.train.freeze import encoder_depth, freeze_below, freeze_card, lora_for
from overspec.train.l2sp import L2SP
from overspec.train.lp_ft import probe_head, probe_seed
from overspec.train.recipe import AugmentConfig, FinetuneConfig, plan_steps
from overspec.train.schedule import lr_at
from overspec.train.step_figures import read_figures, step_figures

# phase: "finetune", or "probe" for LP-FT's head-only steps (numbered -probe_steps+1 .. 0)
LOG_COLUMNS = ("step", "epoch", "loss", "lr_encoder", "lr_head", "grad_norm", "grad_norm_head", "accuracy", "phase")


# ---------------------------------------------------------------------------------------------
# Model


class Student(nn.Module):
    """Image encoder + head, the only part that trains (and the only part DDP wraps)."""

    def __init__(self, visual: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.visual, self.head = visual, head

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = F.normalize(self.visual(images).float(), dim=-1)
        with torch.autocast(device_type=images.device.type, enabled=False):  # margins need fp32 cosines
            return embeddings, self.head(embeddings, labels)


def frozen_digest(model: nn.Module) -> str:
    """sha256 of every tensor outside the image encoder (the text tower must come back untouched)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if not name.startswith("visual."):
            h.update(name.encode() + tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _prepare_encoder(model: nn.Module, config: FinetuneConfig, where: str) -> list[nn.Parameter]:
    """Freeze the model, then make the recipe's part of the image encoder trainable (below
    `freeze_blocks` nothing is); the encoder parameters that train."""
    for p in model.parameters():
        p.requires_grad_(False)
    if config.freeze_blocks:
        config.check_freeze_blocks(where, encoder_depth(model, where))
    if config.method == "lora":
        apply_lora(model, lora_for(config, encoder_depth(model, where)) if config.freeze_blocks else config.lora)
        return list(lora_parameters(model))
    for p in model.visual.parameters():
        p.requires_grad_(True)
    freeze_below(model.visual, config.freeze_blocks)
    return [p for p in model.visual.parameters() if p.requires_grad]


def build_student(model: nn.Module, config: FinetuneConfig, num_classes: int,
                  device: torch.device, where: str = "recipe") -> tuple[Student, list[nn.Parameter]]:
    """The recipe's trainable part of `model` (LoRA or full encoder, plus head) on `device`, in
    training mode, and the encoder parameters it trains. Seed torch first for a reproducible start."""
    encoder_params = _prepare_encoder(model, config, where)
    head = build_head(config.head, int(model.visual.output_dim), num_classes)
    student = Student(model.visual, head).to(device)
    model.train()
    return student, encoder_params


def make_optimizer(config: FinetuneConfig, encoder_params: Sequence[nn.Parameter], head: nn.Module,
                   device: torch.device) -> torch.optim.AdamW:
    """AdamW with the recipe's two learning rates; on a GPU its fused kernels (one launch per step)."""
    return torch.optim.AdamW(
        [{"params": list(encoder_params), "lr": config.lr_encoder}, {"params": list(head.parameters()), "lr": config.lr_head}],
        betas=config.betas, weight_decay=config.weight_decay, fused=device.type == "cuda" or None,
    )


def autocast_for(config: FinetuneConfig, device: torch.device):
    if device.type != "cuda" or config.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if config.precision == "bf16" else torch.float16)


def _grad_norm(params: Sequence[nn.Parameter], max_norm: float | None, like: torch.Tensor) -> torch.Tensor:
    """Clip to `max_norm` and return the norm before clipping, a float32 scalar on `like`'s device (no host sync)."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return torch.zeros_like(like, dtype=torch.float32)
    return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else math.inf).float()


# ---------------------------------------------------------------------------------------------
# The loop


def finetune(
    config: FinetuneConfig,
    base_model_path: str | Path,
    train_data: str | Path | TrainSet,
    out_path: str | Path,
    log_csv: str | Path,
    device: str = "cpu",
    num_workers: int = 0,
    card_extra: dict[str, Any] | None = None,
    progress: bool = True,
    batches: BatchSource | None = None,
    where: str = "recipe",
) -> dict[str, Any]:
    """Run one fine-tune; rank 0 writes the log and the model file and returns the card (other ranks: {}).

    `batches` replaces the data path (default: `LoaderBatches(num_workers)`, decoding in that many workers).
    `where` names the recipe in user errors (the config key, e.g. recipes.toy-mad-s).
    """
    ctx = init_distributed(device)
    try:
        return _finetune(config, Path(base_model_path), train_data, Path(out_path), Path(log_csv), ctx,
                         batches or LoaderBatches(num_workers), card_extra or {}, progress, where)
    finally:
        shutdown(ctx)


def _finetune(config: FinetuneConfig, base_path: Path, train_data, out_path: Path, log_csv: Path,
              ctx: DistContext, batches: BatchSource, card_extra: dict[str, Any], progress: bool,
              where: str) -> dict[str, Any]:
    if config.batch_size % ctx.world_size:
        raise UserError(f"batch_size={config.batch_size} is not divisible by the {ctx.world_size} processes; change one of them.")
    train_set = train_data if isinstance(train_data, TrainSet) else open_train_set(train_data)
    fit_set, validation = _split_for_early_stopping(train_set, config, where)
    loaded = load_model(base_path)
    model, base_card = loaded.model.cpu(), loaded.card
    preprocessing = base_card.get("preprocessing") or preprocessing_of(model)
    steps, steps_per_epoch = plan_steps(len(fit_set), config)

    torch.manual_seed(config.seed)  # identical LoRA / head initialisation on every rank
    text_before = frozen_digest(model)
    student, encoder_params = build_student(model, config, train_set.num_classes, ctx.device, where)
    head, embed_dim = student.head, int(model.visual.output_dim)
    trainer: nn.Module = student
    if ctx.distributed:
        trainer = DistributedDataParallel(student, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    l2sp = L2SP(model, encoder_params, config.l2sp.weight) if config.l2sp is not None else None

    rows: list[dict[str, Any]] = []
    if config.lp_ft is not None:  # LP-FT's phase 1: the head alone, on batches of their own
        probe_config = dataclasses.replace(config, seed=probe_seed(config.seed))
        probe_batches = batches(BatchPlan(fit_set, build_transform(preprocessing, config), probe_config,
                                          config.lp_ft.probe_steps, steps_per_epoch, ctx))
        rows += probe_head(student.visual, head, probe_batches, config, preprocessing, ctx,
                           lambda: autocast_for(config, ctx.device), steps_per_epoch)
    probe_rows = len(rows)

    optimizer = make_optimizer(config, encoder_params, head, ctx.device)
    scaler = torch.amp.GradScaler("cuda", enabled=ctx.device.type == "cuda" and config.precision == "fp16")
    loader = batches(BatchPlan(fit_set, build_transform(preprocessing, config), config, steps, steps_per_epoch, ctx))

    stopper = EarlyStopping(config.early_stopping, steps) if validation is not None else None
    val_transform = build_transform(preprocessing, dataclasses.replace(
        config, augment=AugmentConfig(hflip=False, rand_augment=False)))
    best_state: dict[str, torch.Tensor] = {}

    stopped_by = "budget"
    started = time.monotonic()
    bar = tqdm(total=steps, desc=f"finetune {config.task}", disable=not (progress and ctx.is_main),
               file=sys.stderr, dynamic_ncols=True)

    def log_step(step: int, epoch: int, lrs: tuple[float, float], figures: torch.Tensor) -> None:
        """Read one step's figures (a host sync) and log them; a NaN/inf loss ends training unsaved."""
        try:
            loss, accuracy, norm_encoder, norm_head = read_figures(figures, lambda value: (
                f"Fine-tuning diverged at step {step + 1} (loss {value}); nothing was saved: lower "
                f"lr_encoder/lr_head ({config.lr_encoder}/{config.lr_head}) or use precision fp32."))
        except UserError:
            _write_log(log_csv, rows, ctx)  # the steps before the divergence, for diagnosis
            raise
        rows.append({"step": step + 1, "epoch": epoch, "loss": loss, "lr_encoder": lrs[0], "lr_head": lrs[1],
                     "grad_norm": norm_encoder, "grad_norm_head": norm_head, "accuracy": accuracy, "phase": "finetune"})
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}", refresh=False)

    # Each step's figures are read after the next step is queued, so a GPU never idles while the host
    # waits for a number (the divergence check stops training one step later, still before any saving).
    pending: tuple | None = None
    for step, (images, labels) in enumerate(loader):
        epoch = step // steps_per_epoch
        t_sched = epoch if config.schedule.unit == "epoch" else step
        lrs = (lr_at(t_sched, config.lr_encoder, config.schedule), lr_at(t_sched, config.lr_head, config.schedule))
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        images = to_model_input(images.to(ctx.device, non_blocking=True), preprocessing)
        labels = labels.to(ctx.device, non_blocking=True)
        with autocast_for(config, ctx.device):
            embeddings, logits = trainer(images, labels)
        loss = head.loss(logits.float(), labels)
        loss_accuracy = step_figures(ctx, head, embeddings, logits, labels, loss)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        norm_encoder = _grad_norm(encoder_params, config.grad_clip, loss)
        norm_head = _grad_norm(list(head.parameters()), config.grad_clip, loss)
        scaler.step(optimizer)
        scaler.update()
        if l2sp is not None:
            l2sp.step(lrs[0])
        figures = torch.cat([loss_accuracy, torch.stack([norm_encoder, norm_head])])
        if pending is not None:
            log_step(*pending)
        pending = (step, epoch, lrs, figures)
        if stopper is not None and stopper.due(step + 1):
            # every rank scores the whole split, so all reach the same decision without communicating
            value = _validate(student, head, validation, val_transform, preprocessing, config, ctx.device)
            if stopper.update(step + 1, value):
                best_state = {n: p.detach().clone() for n, p in student.named_parameters() if p.requires_grad}
            if stopper.should_stop:
                stopped_by = "early_stopping"
                break
        if config.max_seconds is not None and _time_is_up(ctx, started, config.max_seconds):
            stopped_by = "max_seconds"
            break
    if pending is not None:
        log_step(*pending)
    bar.close()
    if best_state:  # the model keeps the best validation step's weights
        with torch.no_grad():
            for name, parameter in student.named_parameters():
                if name in best_state:
                    parameter.copy_(best_state[name])

    if frozen_digest(model) != text_before:
        raise RuntimeError("The text encoder changed during fine-tuning; this is a bug in overspec.train.")
    barrier(ctx)  # training is over on every rank; only rank 0 digests the data and writes (may take minutes)
    if not ctx.is_main:
        return {}
    l2sp_distance = l2sp.distance() if l2sp is not None else None  # before merging: LoRA's updates still apart
    if config.method == "lora":
        merge_lora(model)
    model.eval()
    card = _card(config, base_card, base_path, preprocessing, train_set, head, embed_dim, rows[probe_rows:],
                 steps_per_epoch, stopped_by, ctx, card_extra)
    card["training"].update(_mitigation_card(config, model, rows[:probe_rows], l2sp_distance, where))
    if stopper is not None:
        card["training"]["early_stopping"] = stopper.card(
            {"samples": len(validation), "training_samples": len(fit_set),
             "grouped_by": "none" if train_set.groups is None else ("identity" if config.task == "fr" else "video"),
             "counts": check_validation_split(config.task, validation.labels, train_set.class_names, where)})
    _write_log(log_csv, rows, ctx)
    save_model(out_path, model.cpu(), card, head=head_tensors(head))
    return card


def _split_for_early_stopping(train_set: TrainSet, config: FinetuneConfig,
                              where: str) -> tuple[TrainSet, TrainSet | None]:
    """(the samples to train on, the validation split or None): whole identities / videos, stratified, seeded."""
    if config.early_stopping is None:
        return train_set, None
    fit, held = carve_validation(train_set.labels, train_set.groups, config.early_stopping.fraction,
                                 config.seed, stratify=config.task != "fr")
    validation = TrainSubset(train_set, held)
    check_validation_split(config.task, validation.labels, train_set.class_names, where)
    return TrainSubset(train_set, fit), validation


@torch.no_grad()
def _validate(student: Student, head: nn.Module, validation: TrainSet, transform, preprocessing: dict[str, Any],
              config: FinetuneConfig, device: torch.device, batch_size: int = 256) -> float:
    """The early-stopping metric of the current weights on the validation split (dropout off, no augmentation)."""
    student.eval()
    chunks = []
    for start in range(0, len(validation), batch_size):
        pixels = torch.stack([torch.as_tensor(transform(validation[i][0]))
                              for i in range(start, min(start + batch_size, len(validation)))])
        with autocast_for(config, device):
            images = to_model_input(pixels.to(device), preprocessing)
            chunks.append(F.normalize(student.visual(images).float(), dim=-1))
    student.train()
    embeddings, labels = torch.cat(chunks), validation.labels
    if config.task == "fr":
        genuine, impostor = verification_scores(embeddings.cpu().numpy(), labels)
        return validation_metric(config.early_stopping.metric, genuine, impostor)
    logits = head(embeddings).float()  # plain logits (a margin head adds no margin without labels)
    loss = float(head.loss(logits, torch.as_tensor(labels, device=logits.device)))
    bona_fide = logits.softmax(dim=1)[:, 1].double().cpu().numpy()
    return validation_metric(config.early_stopping.metric, bona_fide[labels == 1], bona_fide[labels == 0], loss)


def _time_is_up(ctx: DistContext, started: float, limit: float) -> bool:
    """Rank 0's clock decides, so every rank stops after the same step."""
    flag = torch.tensor([1.0 if time.monotonic() - started > limit else 0.0], device=ctx.device)
    if ctx.distributed:
        torch.distributed.broadcast(flag, src=0)
    return bool(flag.item())


def _final_metrics(rows: list[dict[str, Any]], steps_per_epoch: int) -> dict[str, Any]:
    tail = rows[-min(len(rows), steps_per_epoch):]
    return {"loss": float(np.mean([r["loss"] for r in tail])), "accuracy": float(np.mean([r["accuracy"] for r in tail])),
            "steps_averaged": len(tail)}


def _card(config: FinetuneConfig, base_card: dict, base_path: Path, preprocessing: dict, train_set: TrainSet,
          head: nn.Module, embed_dim: int, rows: list, steps_per_epoch: int, stopped_by: str,
          ctx: DistContext, card_extra: dict) -> dict[str, Any]:
    head_card = config.head.to_card(embed_dim, train_set.num_classes)
    if config.head.type != "binary":
        head_card["class_names_digest"] = hashlib.sha256("\n".join(train_set.class_names).encode()).hexdigest()
    card = {
        "architecture": base_card["architecture"],
        "preprocessing": preprocessing,
        "base_model": {"sha256": sha256_file(base_path), "name": base_card.get("name"),
                       "architecture": base_card["architecture"]},
        "method": config.method,
        "lora": config.lora.to_dict() if config.method == "lora" else None,
        "lora_merged": config.method == "lora",
        "head": head_card,
        "training": {
            "task": config.task,
            "recipe": config.to_dict(),
            "data": train_set.summary(),
            "seed": config.seed,
            "world_size": ctx.world_size,
            "device": ctx.device.type,
            "precision": config.precision if ctx.device.type == "cuda" else "fp32",
            "steps": len(rows),
            "steps_per_epoch": steps_per_epoch,
            "epochs": len(rows) / steps_per_epoch,
            "samples_seen": len(rows) * config.batch_size,
            "stopped_by": stopped_by,
            "final_metrics": _final_metrics(rows, steps_per_epoch) if rows else {},
        },
    }
    card.update(card_extra)
    return card


def _mitigation_card(config: FinetuneConfig, model: nn.Module, probe_rows: list, l2sp_distance: float | None,
                     where: str) -> dict[str, Any]:
    """The card's record of the recipe's options against forgetting, as they were applied."""
    out: dict[str, Any] = {}
    if config.l2sp is not None:
        out["l2sp"] = {"weight": config.l2sp.weight, "distance_sq": l2sp_distance,
                       "applied_as": "theta <- theta_0 + (theta - theta_0) / (1 + lr_encoder * weight) after each "
                                     "AdamW step (LoRA: the update B @ A scaled)"}
    if config.lp_ft is not None:
        out["lp_ft"] = {"probe_steps": config.lp_ft.probe_steps, "lr_head": config.lr_head,
                        "probe_final_metrics": _final_metrics(probe_rows, len(probe_rows)) if probe_rows else {}}
    if config.freeze_blocks:
        out["freeze_blocks"] = freeze_card(config, encoder_depth(model, where))
    return out


def _write_log(path: Path, rows: list[dict[str, Any]], ctx: DistContext) -> None:
    if not ctx.is_main:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


# ---------------------------------------------------------------------------------------------
# Command line (what torchrun launches for gpu > 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overspec.train.finetune", description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True, help="recipe as a JSON file or JSON text")
    parser.add_argument("--base", required=True, help="base model .safetensors")
    parser.add_argument("--data", required=True, help="identity folder, .rec or .csv list")
    parser.add_argument("--out", required=True, help="output model .safetensors")
    # --log-csv under torchrun: its own --log-dir/--log-line-prefix-template make a bare --log ambiguous there
    parser.add_argument("--log", "--log-csv", dest="log", required=True, help="per-step CSV log")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--card-extra", default=None, help="JSON object merged into the model card")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--where", default="recipe", help="the recipe's config key, named in user errors")
    args = parser.parse_args(argv)
    try:
        text = args.recipe if args.recipe.lstrip().startswith("{") else Path(args.recipe).read_text()
        config = FinetuneConfig.from_dict(json.loads(text), where=args.where)
        extra = json.loads(args.card_extra) if args.card_extra else None
        finetune(config, args.base, args.data, args.out, args.log, device=args.device, num_workers=args.workers,
                 card_extra=extra, progress=not args.no_progress, where=args.where)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
