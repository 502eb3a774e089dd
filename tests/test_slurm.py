"""Workflows on a real SLURM cluster through profiles/slurm.

Needs the one-node cluster of `.ci/slurm.sh start` (slurmctld, slurmd, slurmdbd, 4 fake GPUs);
`.ci/run` starts it, sets OVERSPEC_SLURM_TEST=1 and stops it afterwards. Each test runs a
workflow through `snakemake --profile <profiles/slurm with this cluster's names>` while one job
fails on its first attempt, then checks in sacct that every job went through sbatch, that GPU
rules asked for GPUs and CPU rules did not, that the failed job was retried, and that the
results equal those of a local run, byte for byte.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "profile.yaml"
DEFAULT_PROFILE = REPO / "profiles" / "default"
INJECT = REPO / "tests" / "slurm" / "inject"
ACCOUNT = os.environ.get("OVERSPEC_SLURM_ACCOUNT", "overspec-ci")
CPU_PARTITION = os.environ.get("OVERSPEC_SLURM_CPU_PARTITION", "cpu")
GPU_PARTITION = os.environ.get("OVERSPEC_SLURM_GPU_PARTITION", "gpu")

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.environ.get("OVERSPEC_SLURM_TEST") != "1",
        reason="needs the local SLURM cluster that .ci/run starts (OVERSPEC_SLURM_TEST=1)",
    ),
]


def node_capacity() -> tuple[int, int]:
    """(CPUs, memory in MB) of the smallest node."""
    listing = subprocess.run(["scontrol", "-o", "show", "node"], capture_output=True, text=True, check=True).stdout
    cpus = [int(m) for m in re.findall(r"\bCPUTot=(\d+)", listing)]
    mems = [int(m) for m in re.findall(r"\bRealMemory=(\d+)", listing)]
    return min(cpus), min(mems)


def gpu_rules() -> set[str]:
    """The rules profiles/slurm sends to the GPU partition."""
    per_rule = yaml.safe_load(PROFILE.read_text())["set-resources"]
    return {rule for rule, settings in per_rule.items() if "slurm_partition" in settings}


def cluster_profile(tmp_path: Path) -> Path:
    """profiles/slurm with this cluster's account and partitions, memory capped to fit its node.

    Everything else (executor, GPU requests, retries, latency-wait) is the real profile's.
    """
    profile = yaml.safe_load(PROFILE.read_text())
    cpus, mem_mb = node_capacity()
    cap = mem_mb // cpus  # so that every core can run a job at once
    defaults = profile["default-resources"]
    assert (defaults["slurm_account"], defaults["slurm_partition"]) == ("YOUR_ACCOUNT", "YOUR_CPU_PARTITION")
    defaults.update(slurm_account=ACCOUNT, slurm_partition=CPU_PARTITION, mem_mb=min(defaults["mem_mb"], cap))
    for settings in profile["set-resources"].values():
        if "slurm_partition" in settings:
            assert settings["slurm_partition"] == "YOUR_GPU_PARTITION"
            settings["slurm_partition"] = GPU_PARTITION
        if "mem_mb" in settings:
            settings["mem_mb"] = min(settings["mem_mb"], cap)
    directory = tmp_path / "profile"
    directory.mkdir()
    (directory / "profile.yaml").write_text(yaml.safe_dump(profile))
    return directory


def workflow_profile_args() -> list[str]:
    has_default = (DEFAULT_PROFILE / "profile.yaml").exists()
    return ["--workflow-profile", str(DEFAULT_PROFILE) if has_default else "none"]


def snakemake(args: list[str], cwd: Path, log: Path, env: dict[str, str], timeout: int) -> str:
    """Run Snakemake; return its output, failing the test with the log's tail if it fails."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OVERSPEC_GPU", "CUDA_VISIBLE", "SLURM_"))}
    with open(log, "w") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", *args],
            cwd=cwd, env={**clean, **env}, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout,
        )  # fmt: skip
    output = log.read_text()
    assert done.returncode == 0, f"snakemake failed; end of {log}:\n{output[-6000:]}"
    return output


def run_on_slurm(args: list[str], cwd: Path, tmp_path: Path, pythonpath: Path, fail_once: str) -> tuple[str, list[dict]]:
    """The workflow through the SLURM profile, with one `fail_once` job failing once; its sacct rows."""
    markers = tmp_path / "fail-once"
    markers.mkdir()
    env = {
        "PYTHONPATH": f"{INJECT}:{pythonpath}",
        "OVERSPEC_FAIL_ONCE_RULE": fail_once,
        "OVERSPEC_FAIL_ONCE_DIR": str(markers),
    }
    cpus, _ = node_capacity()
    output = snakemake(
        [*args, "--profile", str(cluster_profile(tmp_path)), *workflow_profile_args(),
         "--max-threads", str(cpus), "--slurm-init-seconds-before-status-checks", "2"],
        cwd, tmp_path / "slurm-run.log", env, timeout=3600,
    )  # fmt: skip
    assert (markers / f"{fail_once}.failed").exists(), f"no {fail_once} job ran, so no failure was injected"
    return output, sacct_rows(output)


def run_locally(args: list[str], cwd: Path, tmp_path: Path, pythonpath: Path) -> None:
    cpus, _ = node_capacity()
    snakemake(
        [*args, "--cores", str(cpus), "--max-threads", str(cpus), *workflow_profile_args()],
        cwd, tmp_path / "local-run.log", {"PYTHONPATH": str(pythonpath)}, timeout=3600,
    )  # fmt: skip


def sacct_rows(snakemake_output: str) -> list[dict]:
    """Accounting records of every SLURM job the run submitted (by its run name), checked
    against the job ids Snakemake logged."""
    logged = set(re.findall(r"submitted with SLURM jobid (\d+)", snakemake_output))
    assert logged, "Snakemake submitted no SLURM job"
    fields = ["JobID", "JobName", "Comment", "Partition", "Account", "State", "ReqTRES", "AllocTRES"]

    def sacct(*selection: str) -> list[dict]:
        listing = subprocess.run(
            ["sacct", "-X", "-P", "-n", "-S", "now-1days", "-o", ",".join(fields), *selection],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return [dict(zip(fields, line.split("|"))) for line in listing.splitlines() if line]

    run_name = sacct("-j", sorted(logged)[0])[0]["JobName"]
    rows = sacct("--name", run_name)
    assert {row["JobID"] for row in rows} == logged, "sacct and Snakemake disagree on the submitted jobs"
    for row in rows:
        row["rule"] = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", row["Comment"]).group(1)
    return rows


def check_accounting(rows: list[dict], fail_once: str) -> None:
    for row in rows:
        asked_gpus = re.search(r"gres/gpu=(\d+)", row["ReqTRES"])
        if row["rule"] in gpu_rules():
            assert asked_gpus and int(asked_gpus.group(1)) >= 1, row
            assert re.search(r"gres/gpu=\d+", row["AllocTRES"]), row
            assert row["Partition"] == GPU_PARTITION, row
        else:
            assert not asked_gpus, row
            assert row["Partition"] == CPU_PARTITION, row
        assert row["Account"] == ACCOUNT, row
    failed = [row for row in rows if row["State"] != "COMPLETED"]
    assert [(row["rule"], row["State"]) for row in failed] == [(fail_once, "FAILED")]
    retried = [row for row in rows if row["Comment"] == failed[0]["Comment"] and row["State"] == "COMPLETED"]
    assert len(retried) == 1 and int(retried[0]["JobID"]) > int(failed[0]["JobID"])


def results(root: Path) -> dict[str, bytes]:
    """Every result file's bytes, except Snakemake `benchmark:` files (wall-clock timings)."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and "benchmarks" not in p.relative_to(root).parts)
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_dummy_workflow_runs_on_slurm_with_gpus_and_a_retry(tmp_path):
    """Fast smoke test of the profile: 2 one-GPU jobs, a two-GPU job and a CPU job."""
    snakefile = REPO / "tests" / "slurm" / "Snakefile"
    seen = tmp_path / "seen"
    on_slurm, local = tmp_path / "on-slurm", tmp_path / "local"
    on_slurm.mkdir(), local.mkdir()

    _, rows = run_on_slurm(
        ["-s", str(snakefile), "--config", f"seen_dir={seen}"], on_slurm, tmp_path, REPO, fail_once="embed_images"
    )
    check_accounting(rows, "embed_images")
    assert sorted(row["rule"] for row in rows if row["State"] == "COMPLETED") == [
        "aggregate_tables", "embed_images", "embed_images", "finetune_model",
    ]  # fmt: skip
    # SLURM, not the lock files, chose the GPUs: each job saw its allocation.
    for rule, gpus in (("embed_images-item=a", 1), ("embed_images-item=b", 1), ("finetune_model-finetune_model", 2)):
        saw = json.loads((seen / f"{rule}.json").read_text())
        assert saw["SLURM_JOB_ID"] and len(saw["CUDA_VISIBLE_DEVICES"].split(",")) == gpus, (rule, saw)

    run_locally(["-s", str(snakefile)], local, tmp_path, REPO)
    assert results(on_slurm / "results") == results(local / "results")
    assert len(results(local / "results")) == 4


STUDY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"


def _copy_repo(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", "results", "logs", ".snakemake", "__pycache__", ".pytest_cache", "*.egg-info")
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    return dest


@pytest.mark.skipif(
    not (REPO / "Snakefile").exists() or not STUDY_CONFIG.exists(),
    reason="the study workflow (Snakefile, tests/configs/tiny.yaml) is not in the repository yet",
)
def test_reduced_toy_study_on_slurm_equals_a_local_run(tmp_path):
    on_slurm, local = _copy_repo(tmp_path / "on-slurm"), _copy_repo(tmp_path / "local")
    # One zero-shot result: corpus, data, pretraining, digest checkpoint, a GPU embedding job and an
    # evaluation (8 jobs). Each SLURM job waits out the plugin's status polling, so the whole tiny
    # study would take far longer than the suite's budget without testing anything more.
    # (The target goes first: --configfile takes several values.)
    args = ["results/zeroshot/clip-toy-s/toy_colours.json", "--configfile", str(STUDY_CONFIG.relative_to(REPO))]
    fail_once = os.environ.get("OVERSPEC_SLURM_FAIL_ONCE_RULE", "embed_images")

    _, rows = run_on_slurm(args, on_slurm, tmp_path, on_slurm, fail_once=fail_once)
    check_accounting(rows, fail_once)
    assert gpu_rules() & {row["rule"] for row in rows}, "the reduced study ran no GPU rule on SLURM"

    run_locally(args, local, tmp_path, local)
    slurm_results, local_results = results(on_slurm / "results"), results(local / "results")
    assert slurm_results.keys() == local_results.keys()
    differing = [path for path in slurm_results if slurm_results[path] != local_results[path]]
    assert not differing, f"results differ between the SLURM and the local run: {differing[:10]}"
