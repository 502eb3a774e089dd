"""Running one fine-tune as a job: in this process, or under torchrun when it has several GPUs.

`run_finetune` is what the `finetune_model` rule calls. With one process it calls
`overspec.train.finetune.finetune` directly; with `processes > 1` it launches
``python -m torch.distributed.run --standalone --nproc_per_node=N -m overspec.train.finetune``
(the same code path under DDP: NCCL on GPUs, gloo on CPU) and waits for it. The child's
one-sentence user error ("error: ...") becomes this process's UserError. Every option passed
through torchrun must not be a prefix of one of torchrun's own (its argument parser would claim
it), hence ``--log-csv`` rather than ``--log``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from overspec.errors import UserError
from overspec.train.recipe import FinetuneConfig


def workers_per_process(threads: int, processes: int) -> int:
    """DataLoader workers for each training process of a job holding `threads` cores: the cores are
    shared by the processes, and each keeps one for its own loop (so 16 threads on 4 GPUs: 3 each)."""
    return max(0, threads // max(1, processes) - 1)


def torchrun_command(config: FinetuneConfig, base: str | Path, data: str | Path, out: str | Path, log_csv: str | Path,
                     processes: int, device: str, workers: int, card_extra: Mapping[str, Any] | None,
                     where: str = "recipe") -> list[str]:
    """The torchrun command line for a DDP fine-tune (recipe and card extras passed as JSON text)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "overspec.train.finetune",
               "--recipe", json.dumps(config.to_dict(), sort_keys=True),
               "--base", str(base), "--data", str(data), "--out", str(out), "--log-csv", str(log_csv),
               "--device", device, "--workers", str(workers), "--where", where]
    if card_extra:
        command += ["--card-extra", json.dumps(dict(card_extra), sort_keys=True)]
    return command


def run_finetune(recipe: Mapping[str, Any], base: str | Path, data: str | Path, out: str | Path,
                 log_csv: str | Path, *, processes: int = 1, device: str = "cpu", workers: int = 0,
                 card_extra: Mapping[str, Any] | None = None, progress: bool = True,
                 where: str = "recipe") -> dict[str, Any]:
    """Fine-tune `base` on `data` with `recipe` (a FinetuneConfig mapping); returns the card written.

    `where` is the recipe's config key (recipes.<name>), named in user errors."""
    config = FinetuneConfig.from_dict(recipe, where=where)
    if processes <= 1:
        from overspec.train.finetune import finetune

        return finetune(config, base, data, out, log_csv, device=device, num_workers=workers,
                        card_extra=dict(card_extra or {}), progress=progress, where=where)
    command = torchrun_command(config, base, data, out, log_csv, processes, device, workers, card_extra, where)
    if not progress:
        command.append("--no-progress")
    # The children's output goes to this job's log as it arrives; their user errors are kept.
    reasons = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
        for line in child.stdout:
            sys.stderr.write(line)
            if line.startswith("error: "):
                reasons.append(line[len("error: "):].strip())
    if child.returncode != 0:
        if reasons:
            raise UserError(reasons[-1])
        raise RuntimeError(f"torchrun fine-tuning with {processes} processes failed (exit {child.returncode}); see the log above.")
    from overspec.models.checkpoint import read_card

    return read_card(out)
