"""GPU leasing inside a real local Snakemake run: `--cores 4 --resources gpu=4` on a 4-GPU node.

Snakemake only counts GPUs; the jobs' own leases must put four concurrent GPU jobs on four
different GPUs. The node's GPUs are faked with OVERSPEC_GPU_COUNT (no CUDA needed), and the jobs
of tests/slurm/Snakefile wait for each other while holding their GPUs, so all four overlap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "tests" / "slurm" / "Snakefile"
ITEMS = ["a", "b", "c", "d"]

pytestmark = pytest.mark.slow


def run(tmp_path: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_VISIBLE", "SLURM_", "OVERSPEC_"))}
    env.update(PYTHONPATH=str(REPO), OVERSPEC_GPU_COUNT="4", OVERSPEC_GPU_LOCK_DIR=str(tmp_path / "locks"))
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--workflow-profile", "none", *args]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_four_concurrent_gpu_jobs_run_on_four_different_gpus(tmp_path):
    seen = tmp_path / "seen"
    targets = [f"results/embeddings/{item}.json" for item in ITEMS]
    config = ["--config", f"items={ITEMS}", f"seen_dir={seen}", "barrier=4"]
    output = run(tmp_path, "--cores", "4", "--resources", "gpu=4", *config, "--", *targets)
    visible = [json.loads((seen / f"embed_images-item={item}.json").read_text())["CUDA_VISIBLE_DEVICES"] for item in ITEMS]
    assert sorted(visible) == ["0", "1", "2", "3"]
    assert "GpuLimitWarning" not in output


def test_a_gpu_job_without_a_gpu_limit_warns_how_to_set_one(tmp_path):
    output = run(tmp_path, "--cores", "1", "--", "results/embeddings/a.json")
    assert "GpuLimitWarning" in output and "snakemake --cores all --resources gpu=N" in output
