"""Choosing a job's device, and leasing GPUs through lock files when jobs share a node.

Snakemake's `--resources gpu=N` only counts GPU jobs; it never tells a job which GPU to use.
So a local GPU job leases free device slots itself: it takes non-blocking `flock`s on
`gpu{i}.lock` files in a node-local directory and sets `CUDA_VISIBLE_DEVICES` before torch
initialises CUDA. The locks live as long as the process (open file descriptors), so the kernel
releases them however the job ends, SIGKILL included. Under SLURM, or when the user pinned
`CUDA_VISIBLE_DEVICES`, that choice is respected and nothing is leased.

Call `setup_device` first thing in a workflow script, before anything touches `torch.cuda`, in
the job's own process (a `script:` or `shell:` rule, never a `run:` block, which would set the
variable in the Snakemake process itself and so for every later job). This module imports torch
only inside the functions that need it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import random
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from overspec.errors import UserError

ENV_GPU_COUNT = "OVERSPEC_GPU_COUNT"  # overrides the detected number of GPUs (tests, odd systems)
ENV_LOCK_DIR = "OVERSPEC_GPU_LOCK_DIR"  # where the slot lock files live; must be node-local
ENV_LEASE_TIMEOUT = "OVERSPEC_GPU_LEASE_TIMEOUT"  # seconds to wait for free slots
ENV_GPU_LIMIT_GIVEN = "OVERSPEC_GPU_LIMIT_GIVEN"  # "1"/"0", set by the Snakefile for its jobs
DEFAULT_LEASE_TIMEOUT_S = 1800.0
POLL_INTERVAL_S = 0.25

log = logging.getLogger(__name__)


class GpuLimitWarning(UserWarning):
    """A GPU job runs locally while Snakemake was given no `gpu` limit."""


@dataclass(frozen=True)
class Lease:
    """The devices a job may use.

    requested: GPUs the job asked for. devices: the `CUDA_VISIBLE_DEVICES` entries it uses
    (empty: CPU). source: "lease" (slots locked here), "preset" (a user pin), "slurm" (the
    scheduler's allocation) or "cpu". fds: the held lock files (empty unless leased); pass them
    to child processes with `subprocess.Popen(pass_fds=...)` if the children outlive this one.
    """

    requested: int
    devices: tuple[str, ...]
    source: str
    fds: tuple[int, ...] = ()

    def release(self) -> None:
        """Give the slots back now (otherwise they go when the process exits)."""
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError as exc:
                if exc.errno != errno.EBADF:
                    raise


def default_lock_dir() -> Path:
    """$OVERSPEC_GPU_LOCK_DIR, else a per-user directory in $TMPDIR (or /tmp)."""
    if os.environ.get(ENV_LOCK_DIR):
        return Path(os.environ[ENV_LOCK_DIR])
    base = os.environ.get("TMPDIR") or "/tmp"
    return Path(base) / f"overspec-gpu-locks-{os.getuid()}"


def device_count() -> int:
    """GPUs on this node, found without initialising CUDA in this process.

    $OVERSPEC_GPU_COUNT wins; then `nvidia-smi -L` (which sees what a container was given),
    then /proc/driver/nvidia/gpus; 0 when none of them finds a GPU.
    """
    raw = os.environ.get(ENV_GPU_COUNT)
    if raw is not None:
        try:
            count = int(raw)
        except ValueError:
            count = -1
        if count < 0:
            raise UserError(f"{ENV_GPU_COUNT}={raw!r} is not a whole number >= 0; set it to the number of GPUs or unset it.")
        return count
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
            return sum(1 for line in listing.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            pass  # a broken driver install: fall through to /proc, then CPU
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return sum(1 for _ in proc.iterdir())
    return 0


def _cuda_initialised() -> bool:
    torch = sys.modules.get("torch")  # never import it here: importing is the caller's choice
    return torch is not None and torch.cuda.is_initialized()


def _ensure_cuda_not_initialised() -> None:
    # CUDA reads CUDA_VISIBLE_DEVICES once, when it initialises; setting it later changes nothing.
    if _cuda_initialised():
        raise RuntimeError(
            "CUDA was initialised before overspec.devices chose the job's GPUs; "
            "call overspec.devices.setup_device() before anything uses torch.cuda."
        )


def _lock_holders(lock_dir: Path, count: int) -> list[str]:
    holders = []
    for i in range(count):
        try:
            pid = (lock_dir / f"gpu{i}.lock").read_text().strip()
        except OSError:
            continue
        if pid:
            holders.append(f"gpu{i}: pid {pid}")
    return holders


def _try_lock_slots(lock_dir: Path, n: int, count: int) -> list[tuple[int, int]]:
    """One pass over the slots: the (slot, fd) pairs locked, all n of them or none."""
    held: list[tuple[int, int]] = []
    for slot in range(count):
        fd = os.open(lock_dir / f"gpu{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        # The holder's pid, only for the "who has it" message of a waiting job.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        held.append((slot, fd))
        if len(held) == n:
            return held
    for _, fd in held:  # not enough free: hand back the partial set so no two jobs deadlock
        os.close(fd)
    return []


def _acquire(lock_dir: Path, n: int, count: int, timeout_s: float) -> list[tuple[int, int]]:
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + timeout_s
    waiting_logged = False
    while True:
        held = _try_lock_slots(lock_dir, n, count)
        if held:
            return held
        if time.monotonic() >= deadline:
            holders = ", ".join(_lock_holders(lock_dir, count)) or "unknown"
            raise UserError(
                f"No {n} free GPU(s) after {timeout_s:g} s: the {count} GPU slots in {lock_dir} are held "
                f"by other jobs ({holders}); run `snakemake --cores all --resources gpu={count}` so that "
                f"Snakemake never starts more GPU jobs than the node has GPUs."
            )
        if not waiting_logged:
            log.warning("waiting for %d free GPU slot(s) of %d in %s", n, count, lock_dir)
            waiting_logged = True
        time.sleep(POLL_INTERVAL_S * (1 + random.random()))  # jitter: waiting jobs do not retry in step


def _lease_timeout() -> float:
    raw = os.environ.get(ENV_LEASE_TIMEOUT)
    if raw is None:
        return DEFAULT_LEASE_TIMEOUT_S
    try:
        return float(raw)
    except ValueError:
        raise UserError(f"{ENV_LEASE_TIMEOUT}={raw!r} is not a number of seconds; fix or unset it.") from None


def lease_gpus(
    n: int,
    *,
    lock_dir: str | os.PathLike | None = None,
    n_devices: int | None = None,
    timeout_s: float | None = None,
) -> Lease:
    """Decide which GPUs this process uses, leasing `n` free slots when it must.

    - CUDA_VISIBLE_DEVICES set (SLURM or a user pin): used as is, nothing leased.
    - Inside a SLURM job without it: SLURM allocated no GPU, so CPU.
    - n == 0: CPU, and CUDA_VISIBLE_DEVICES="" so the job never touches a GPU others leased.
    - No GPU on the node: CPU.
    - Otherwise: lock n of the `n_devices` (default: `device_count()`) slot files, waiting up to
      `timeout_s` (default $OVERSPEC_GPU_LEASE_TIMEOUT or 1800 s), and set CUDA_VISIBLE_DEVICES.
    """
    if n < 0:
        raise ValueError(f"cannot lease {n} GPUs")
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    under_slurm = "SLURM_JOB_ID" in os.environ
    if preset is not None:
        devices = tuple(d.strip() for d in preset.split(",") if d.strip())
        return Lease(n, devices if n > 0 else (), "slurm" if under_slurm else "preset")
    if under_slurm:
        if n > 0:
            log.warning("this SLURM job asked for %d GPU(s) but SLURM allocated none; running on CPU", n)
        return Lease(n, (), "slurm")
    if n == 0:
        if not _cuda_initialised():
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return Lease(0, (), "cpu")
    count = device_count() if n_devices is None else n_devices
    if count == 0:
        log.info("no GPU on this node; running on CPU")
        return Lease(n, (), "cpu")
    if n > count:
        raise UserError(
            f"This job asks for {n} GPUs but the node has {count}; lower the rule's `gpu` resource "
            f"(or the fine-tuning recipe's GPU count) to at most {count}."
        )
    _ensure_cuda_not_initialised()
    held = _acquire(Path(lock_dir) if lock_dir else default_lock_dir(), n, count,
                    _lease_timeout() if timeout_s is None else timeout_s)
    devices = tuple(str(slot) for slot, _ in held)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    log.info("leased GPU(s) %s", ",".join(devices))
    return Lease(n, devices, "lease", tuple(fd for _, fd in held))


def select_device(lease: Lease) -> str:
    """"cuda" when the lease holds GPUs that torch can use, else "cpu"."""
    if lease.requested == 0 or not lease.devices:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    warnings.warn(
        f"GPU(s) {','.join(lease.devices)} were assigned but torch sees no CUDA device "
        "(a CPU-only torch build, or a driver problem); running on CPU.",
        RuntimeWarning,
        stacklevel=2,
    )
    return "cpu"


def _gpu_limit_warning_needed(gpus_requested: int, gpu_limit_given: bool | None) -> bool:
    if gpu_limit_given is None and os.environ.get(ENV_GPU_LIMIT_GIVEN) in ("0", "1"):
        gpu_limit_given = os.environ[ENV_GPU_LIMIT_GIVEN] == "1"
    if gpus_requested == 0 or gpu_limit_given is not False or "SLURM_JOB_ID" in os.environ:
        return False
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if preset is not None:
        return bool(preset.strip())
    return device_count() > 0


def setup_device(gpus_requested: int, gpu_limit_given: bool | None = None) -> tuple[str, dict]:
    """Lease GPUs for this job and return (torch device string, provenance description).

    gpu_limit_given: whether Snakemake was given a `gpu` limit (`--resources gpu=N`); False
    warns, when GPUs are present and the job runs outside SLURM, that concurrent GPU jobs may
    outnumber the GPUs. None means: read $OVERSPEC_GPU_LIMIT_GIVEN ("1"/"0", which the Snakefile
    sets for its jobs), and never warn if that is unset too. The description holds the device kind,
    name and count, nothing about which slots or lock files were used, so a CPU run records
    the same bytes everywhere. The lease lasts until the process exits.
    """
    if _gpu_limit_warning_needed(gpus_requested, gpu_limit_given):
        warnings.warn(
            "This GPU job runs locally but Snakemake was given no `gpu` limit, so it may start more "
            "GPU jobs than there are GPUs; run `snakemake --cores all --resources gpu=N` with N the "
            "number of GPUs on this node.",
            GpuLimitWarning,
            stacklevel=2,
        )
    lease = lease_gpus(gpus_requested)
    _HELD.append(lease)
    device = select_device(lease)
    if device == "cpu":
        return device, {"kind": "cpu", "name": "cpu", "count": 1}
    import torch

    return device, {"kind": "cuda", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count()}


# Leases made by setup_device, referenced for the process lifetime (the fds are what matter).
_HELD: list[Lease] = []


def announce_gpu_limit(limit: object) -> None:
    """Tell this process's jobs whether Snakemake was given a `gpu` limit (called by the Snakefile,
    which passes `workflow.global_resources.get("gpu")`: a Resource whose value is None without one)."""
    value = getattr(limit, "value", limit)
    os.environ[ENV_GPU_LIMIT_GIVEN] = "1" if value is not None else "0"
