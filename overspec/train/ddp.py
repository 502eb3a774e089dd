"""One code path for single-process and torchrun (DDP) training.

Under torchrun the environment carries RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; the process
group then uses NCCL on GPUs and gloo on CPU. Without them everything runs as rank 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from overspec.errors import UserError


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # this process created the group and must destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "cpu") -> DistContext:
    """Join the torchrun process group if the environment names one; pick this rank's device.

    `device` is "cpu", "cuda" or "cuda:N"; under DDP on GPUs each rank takes cuda:LOCAL_RANK.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = str(device).startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise UserError(f"Device '{device}' was requested but no CUDA GPU is visible; use device cpu.")
    if use_cuda:
        dev = torch.device("cuda", local if world > 1 else torch.device(device).index or 0)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
        owns = True
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev, owns_group=owns)


def all_reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
