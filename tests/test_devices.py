"""GPU leasing: concurrent jobs get different GPUs, a killed job frees its slot, pins are respected.

The jobs are real subprocesses that lease through `overspec.devices` and hold their slots until
told to exit, so the locks are the kernel's, exactly as in a Snakemake run. The node's GPU count
is faked with OVERSPEC_GPU_COUNT; no GPU or torch CUDA is needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from overspec import devices
from overspec.errors import UserError

REPO = Path(__file__).resolve().parents[1]

# A job: lease n GPUs, print what it sees, hold the lease until stdin closes.
JOB = textwrap.dedent(
    """
    import os, sys
    from overspec.devices import lease_gpus
    lease = lease_gpus(int(sys.argv[1]))
    print("CVD=" + os.environ["CUDA_VISIBLE_DEVICES"], lease.source, flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def job_env(tmp_path: Path) -> dict[str, str]:
    drop = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "OVERSPEC_GPU_LIMIT_GIVEN")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        PYTHONPATH=str(REPO),
        OVERSPEC_GPU_COUNT="4",
        OVERSPEC_GPU_LOCK_DIR=str(tmp_path / "locks"),
        OVERSPEC_GPU_LEASE_TIMEOUT="30",
    )
    return env


class Job:
    def __init__(self, n: int, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", JOB, str(n)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def seen(self) -> str:
        """The CUDA_VISIBLE_DEVICES the job reported (blocks until it has leased)."""
        line = self.proc.stdout.readline()
        assert line.startswith("CVD="), self.proc.stderr.read()
        return line.split()[0][len("CVD="):]

    def finish(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


@pytest.fixture
def jobs():
    started: list[Job] = []
    yield started
    for job in started:
        if job.proc.poll() is None:
            job.proc.kill()
        job.proc.wait(timeout=10)


def start(jobs: list[Job], n: int, env: dict[str, str]) -> Job:
    job = Job(n, env)
    jobs.append(job)
    return job


def test_four_concurrent_jobs_get_four_different_gpus_and_a_fifth_waits_for_a_killed_ones_slot(job_env, jobs):
    four = [start(jobs, 1, job_env) for _ in range(4)]
    seen = [job.seen() for job in four]
    assert sorted(seen) == ["0", "1", "2", "3"]

    fifth = start(jobs, 1, job_env)
    time.sleep(1.0)  # long enough for the fifth to have leased, were a slot free
    assert fifth.proc.poll() is None
    victim = four[2]
    victim.proc.send_signal(signal.SIGKILL)  # no cleanup code runs: only the kernel frees the lock
    victim.proc.wait(timeout=10)
    assert fifth.seen() == seen[2]
    for job in four[:2] + four[3:] + [fifth]:
        job.finish()
        assert job.proc.returncode == 0


def test_a_job_that_finds_no_free_gpu_fails_with_a_clear_message(job_env, jobs):
    holders = [start(jobs, 1, job_env) for _ in range(4)]
    slots = [job.seen() for job in holders]
    late = subprocess.run(
        [sys.executable, "-c", JOB, "1"],
        env={**job_env, "OVERSPEC_GPU_LEASE_TIMEOUT": "0.5"},
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert late.returncode != 0
    assert "No 1 free GPU(s) after 0.5 s" in late.stderr
    assert "--resources gpu=4" in late.stderr
    # The message names each slot's holder, so a user can find the jobs in `ps`.
    assert all(f"gpu{slot}: pid {job.proc.pid}" in late.stderr for slot, job in zip(slots, holders))


def test_two_gpu_jobs_lease_two_disjoint_slots_each(job_env, jobs):
    first, second = start(jobs, 2, job_env), start(jobs, 2, job_env)
    a, b = first.seen().split(","), second.seen().split(",")
    assert len(a) == len(b) == 2
    assert sorted(a + b) == ["0", "1", "2", "3"]


def test_a_preset_cuda_visible_devices_is_respected_and_leases_nothing(job_env, jobs):
    pinned = start(jobs, 1, {**job_env, "CUDA_VISIBLE_DEVICES": "3"})
    assert pinned.seen() == "3"
    # All four slots are still free: four leasing jobs get them.
    assert sorted(start(jobs, 1, job_env).seen() for _ in range(4)) == ["0", "1", "2", "3"]


def test_slurm_allocation_is_respected(job_env, jobs):
    job = start(jobs, 1, {**job_env, "CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_ID": "42"})
    assert job.seen() == "0"
    job.finish()
    assert job.proc.returncode == 0


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """In-process tests: a fake 2-GPU node, no pin, environment restored afterwards."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "placeholder")  # recorded, so teardown restores it
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("OVERSPEC_GPU_LIMIT_GIVEN", raising=False)
    monkeypatch.setenv("OVERSPEC_GPU_COUNT", "2")
    monkeypatch.setenv("OVERSPEC_GPU_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path / "locks"


def test_release_frees_the_slots_and_lock_files_stay_in_the_lock_dir(clean_env):
    lease = devices.lease_gpus(2)
    assert lease.devices == ("0", "1") and lease.source == "lease"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert sorted(p.name for p in clean_env.iterdir()) == ["gpu0.lock", "gpu1.lock"]
    lease.release()
    del os.environ["CUDA_VISIBLE_DEVICES"]
    again = devices.lease_gpus(1)
    assert again.devices == ("0",)
    again.release()


def test_cpu_cases(clean_env, monkeypatch):
    lease = devices.lease_gpus(0)
    assert (lease.devices, lease.source) == ((), "cpu")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # a CPU job never touches a leased GPU
    assert devices.select_device(lease) == "cpu"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert devices.lease_gpus(1, n_devices=0).source == "cpu"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.setenv("SLURM_JOB_ID", "7")  # a SLURM job that was given no GPU
    assert devices.lease_gpus(1) == devices.Lease(1, (), "slurm")


def test_asking_for_more_gpus_than_the_node_has_is_a_user_error(clean_env):
    with pytest.raises(UserError, match="asks for 3 GPUs but the node has 2"):
        devices.lease_gpus(3)


def test_bad_gpu_count_variable_is_a_user_error(clean_env, monkeypatch):
    monkeypatch.setenv("OVERSPEC_GPU_COUNT", "four")
    with pytest.raises(UserError, match="OVERSPEC_GPU_COUNT='four'"):
        devices.device_count()


def test_leasing_after_cuda_initialised_is_refused(clean_env, monkeypatch):
    class FakeCuda:
        @staticmethod
        def is_initialized() -> bool:
            return True

    monkeypatch.setitem(sys.modules, "torch", type("FakeTorch", (), {"cuda": FakeCuda}))
    with pytest.raises(RuntimeError, match="before anything uses torch.cuda"):
        devices.lease_gpus(1)
    assert not any(clean_env.glob("*.lock"))  # refused before any slot was taken


def test_device_count_reads_nvidia_smi(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-a)'\n"
        "echo '  MIG 1g.10gb     Device  0: (UUID: MIG-b)'\n"
        "echo 'GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-c)'\n"
    )
    smi.chmod(0o755)
    monkeypatch.delenv("OVERSPEC_GPU_COUNT", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert devices.device_count() == 2


def test_setup_device_warns_without_a_gpu_limit_and_describes_the_device(clean_env):
    with pytest.warns(devices.GpuLimitWarning, match=r"snakemake --cores all --resources gpu=N"):
        # A fake GPU: torch sees no CUDA, so the job falls back to CPU and says so.
        with pytest.warns(RuntimeWarning, match="torch sees no CUDA device"):
            device, description = devices.setup_device(1, gpu_limit_given=False)
    assert device == "cpu"
    assert description == {"kind": "cpu", "name": "cpu", "count": 1}
    devices._HELD.pop().release()


@pytest.mark.parametrize("limit_given", [True, None])
def test_setup_device_is_quiet_with_a_limit_or_when_unknown(clean_env, monkeypatch, limit_given):
    monkeypatch.setenv("OVERSPEC_GPU_COUNT", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert devices.setup_device(1, gpu_limit_given=limit_given)[0] == "cpu"
    monkeypatch.setenv("OVERSPEC_GPU_COUNT", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", devices.GpuLimitWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        devices.setup_device(1, gpu_limit_given=limit_given)
    devices._HELD.pop().release()


def test_no_gpu_limit_warning_under_slurm_or_without_gpus(clean_env, monkeypatch):
    monkeypatch.setenv("OVERSPEC_GPU_COUNT", "0")
    assert not devices._gpu_limit_warning_needed(1, False)
    monkeypatch.setenv("OVERSPEC_GPU_COUNT", "2")
    assert devices._gpu_limit_warning_needed(1, False)
    assert not devices._gpu_limit_warning_needed(0, False)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert not devices._gpu_limit_warning_needed(1, False)


def test_the_gpu_limit_can_come_from_the_environment(clean_env, monkeypatch):
    monkeypatch.setenv("OVERSPEC_GPU_LIMIT_GIVEN", "0")
    assert devices._gpu_limit_warning_needed(1, None)
    assert not devices._gpu_limit_warning_needed(1, True)  # an explicit argument wins
    monkeypatch.setenv("OVERSPEC_GPU_LIMIT_GIVEN", "1")
    assert not devices._gpu_limit_warning_needed(1, None)
    assert devices._gpu_limit_warning_needed(1, False)
