"""profiles/slurm without a cluster: its shape, the jobs a dry run plans, the sbatch lines it makes.

The sbatch mapping is checked through the plugin's own functions (get_submit_command,
set_gres_string), which are internal: the plugin is pinned to 2.8 in pyproject.toml.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "profile.yaml"
DUMMY = REPO / "tests" / "slurm" / "Snakefile"
GPU_RULES = ("finetune_model", "embed_images", "eval_face_verification", "eval_ijb", "eval_attack_detection")
CPU_RULES = (
    "prepare_dataset", "prepare_toy_corpus", "pretrain_toy_clip", "import_model", "digest_model", "eval_zeroshot", "fit_linear_probe",
    "prepare_biometric_world", "import_published_model", "aggregate_tables", "plot_figures", "audit_manifest",
)  # fmt: skip
PLACEHOLDERS = {"account": "YOUR_ACCOUNT", "cpu": "YOUR_CPU_PARTITION", "gpu": "YOUR_GPU_PARTITION"}


def load_profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def test_every_key_has_a_comment_above_it():
    lines = PROFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z_][\w-]*:", line):
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#"), f"profile.yaml line {number + 1} ({line.strip()}) has no comment above it"


def test_profile_has_the_required_settings_and_no_double_gpu_request():
    profile = load_profile()
    assert profile["executor"] == "slurm"
    assert profile["latency-wait"] >= 30 and profile["retries"] >= 1 and profile["jobs"] >= 1
    assert "resources" not in profile  # a gpu limit here would cap GPU jobs cluster-wide
    defaults = profile["default-resources"]
    assert defaults["slurm_account"] == PLACEHOLDERS["account"]
    assert defaults["slurm_partition"] == PLACEHOLDERS["cpu"]
    assert not ({"mem_mb", "mem_mb_per_cpu"} <= defaults.keys())
    per_rule = profile["set-resources"]
    for rule in GPU_RULES:
        settings = per_rule[rule]
        assert settings["slurm_partition"] == PLACEHOLDERS["gpu"]
        assert not ({"gpu", "gres"} <= settings.keys()), f"{rule} asks for GPUs twice"
        assert {"mem_mb", "runtime"} <= settings.keys()
    # The fine-tuning GPU count comes from its recipe (the rule's gpu=N): the profile must not pin it.
    assert "gpu" not in per_rule["finetune_model"] and per_rule["finetune_model"]["nodes"] == 1
    for rule in CPU_RULES:
        settings = per_rule.get(rule, {})
        assert not {"gpu", "gres", "gpu_model", "slurm_partition"} & settings.keys(), rule
    assert set(per_rule) <= set(GPU_RULES) | set(CPU_RULES), "set-resources names a rule the study does not have"


def _resources_by_rule(dry_run_output: str) -> dict[str, dict[str, str]]:
    """rule -> its resolved resources, from the blocks a dry run prints (one per job)."""
    planned: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\nrule )", dry_run_output):
        rule = re.search(r"^rule (\w+):", block, re.M)
        line = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and line:
            planned[rule.group(1)] = dict(item.split("=", 1) for item in line.group(1).split(", "))
    return planned


def _path_without_slurm(tmp_path: Path) -> str:
    """A PATH holding only a shell, `which` and Python: no sbatch, sacct, sinfo or scontrol."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "which", "uname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return f"{bin_dir}:{Path(sys.executable).parent}"


def dry_run(tmp_path: Path, *args: str, snakefile: Path = DUMMY) -> str:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": _path_without_slurm(tmp_path), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "snakemake", "-n", "-s", str(snakefile), "--profile", str(PROFILE), *args]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_dry_run_without_a_cluster_plans_partitions_and_gpus(tmp_path):
    output = dry_run(tmp_path, "--workflow-profile", "none")
    planned = _resources_by_rule(output)
    assert planned["embed_images"]["slurm_partition"] == PLACEHOLDERS["gpu"]
    assert planned["embed_images"]["gpu"] == "1"
    assert planned["embed_images"]["mem_mb"] == str(load_profile()["set-resources"]["embed_images"]["mem_mb"])
    assert planned["finetune_model"]["gpu"] == "2"  # the rule's own count survives the profile
    assert planned["finetune_model"]["nodes"] == "1"
    assert planned["aggregate_tables"]["slurm_partition"] == PLACEHOLDERS["cpu"]
    assert "gpu" not in planned["aggregate_tables"]
    assert all(job["slurm_account"] == PLACEHOLDERS["account"] for job in planned.values())
    assert "gres" not in output


@pytest.mark.skipif(
    not (REPO / "Snakefile").exists() or not (REPO / "configs" / "paper.yaml").exists(),
    reason="the study workflow (Snakefile, configs/paper.yaml) is not in the repository yet",
)
def test_dry_run_of_the_paper_study_plans_gpu_jobs_on_the_gpu_partition(tmp_path):
    output = dry_run(
        tmp_path, "--configfile", str(REPO / "configs" / "paper.yaml"), "--directory", str(tmp_path / "work"),
        snakefile=REPO / "Snakefile",
    )  # fmt: skip
    planned = _resources_by_rule(output)
    gpu_rules_planned = [rule for rule in GPU_RULES if rule in planned]
    assert gpu_rules_planned, "the paper study plans no GPU job"
    for rule in gpu_rules_planned:
        assert planned[rule]["slurm_partition"] == PLACEHOLDERS["gpu"], rule
        assert int(planned[rule]["gpu"]) >= 1, rule
    for rule in set(planned) & set(CPU_RULES):
        assert planned[rule]["slurm_partition"] == PLACEHOLDERS["cpu"], rule
        assert "gpu" not in planned[rule], rule


# ---------------------------------------------------------------------------------------------
# The sbatch line the plugin builds from the profile's settings.


class Resources(dict):
    """What the plugin reads from job.resources: .get() and attribute access."""

    __getattr__ = dict.__getitem__


def sbatch_line(resources: dict, threads: int = 4, rule: str = "embed_images") -> str:
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=Resources(resources), threads=threads, name=rule)
    params = {
        "run_uuid": "run-uuid",
        "slurm_logfile": "slurm.log",
        "comment_str": f"rule_{rule}",
        "account": f"-A {resources['slurm_account']}",
        "partition": f"-p {resources['slurm_partition']}",
        "workdir": "/work",
    }
    return get_submit_command(job, params) + set_gres_string(job)


def resolved(rule: str, rule_resources: dict) -> dict:
    """Snakemake's order: default-resources < the rule's own resources < set-resources."""
    profile = load_profile()
    return {**profile["default-resources"], **rule_resources, **profile["set-resources"].get(rule, {})}


@pytest.mark.parametrize("rule", [r for r in GPU_RULES if r != "finetune_model"])
def test_single_gpu_rules_ask_for_one_gpu_once(rule):
    line = sbatch_line(resolved(rule, {"gpu": 1}), rule=rule)
    settings = load_profile()["set-resources"][rule]
    assert line.count("--gpus=") == 1 and "--gpus=1" in line.split()
    assert "--gres" not in line
    assert f"-p {PLACEHOLDERS['gpu']}" in line and f"-A {PLACEHOLDERS['account']}" in line
    assert f"--mem {settings['mem_mb']}" in line and f"-t {settings['runtime']}" in line
    assert "--cpus-per-task=4" in line  # the rule's threads


def test_finetuning_asks_for_the_recipes_gpus_on_one_node():
    line = sbatch_line(resolved("finetune_model", {"gpu": 4}), threads=16, rule="finetune_model")
    assert line.count("--gpus=") == 1 and "--gpus=4" in line.split()
    assert "--nodes=1" in line.split() and "--gres" not in line
    assert "--cpus-per-task=16" in line


def test_cpu_rules_ask_for_no_gpu():
    line = sbatch_line(resolved("fit_linear_probe", {}), threads=8, rule="fit_linear_probe")
    assert "--gpus" not in line and "--gres" not in line
    assert f"-p {PLACEHOLDERS['cpu']}" in line and "--ntasks=1" in line and "--cpus-per-task=8" in line


def test_the_plugin_would_request_gpus_twice_if_gpu_and_gres_were_both_set():
    # Why the profile must never set both: plugin 2.8 emits both flags (allowed on purpose, PR #451).
    line = sbatch_line(resolved("embed_images", {"gpu": 1, "gres": "gpu:1"}))
    assert "--gres=gpu:1" in line and "--gpus=1" in line
