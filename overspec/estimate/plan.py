"""The planned jobs of a study, read from Snakemake's own dry run (`snakemake -n --forceall`), so the
estimate plans exactly the jobs the workflow would run; and the config those jobs were planned from.

The library never imports Snakemake: the dry run is a subprocess, as a user would type it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overspec.config import config_with_defaults, load_yaml
from overspec.errors import UserError

JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
FIELD = re.compile(r"^    (\w+): (.*)$")


@dataclass
class PlannedJob:
    rule: str
    jobid: int
    wildcards: dict[str, str] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    log: str = ""
    benchmark: str = ""  # its Snakemake benchmark file, for the rules that keep one

    @property
    def gpus(self) -> int:
        return int(self.resources.get("gpu", 0) or 0)

    @property
    def name(self) -> str:
        return self.rule + "".join(f" {k}={v}" for k, v in self.wildcards.items())


def _pairs(text: str) -> dict[str, str]:
    """'model=clip-vit-b16, dataset=cifar10' -> {'model': 'clip-vit-b16', 'dataset': 'cifar10'}."""
    pairs = {}
    for item in text.split(", "):
        key, sep, value = item.partition("=")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


def parse_dry_run(text: str) -> list[PlannedJob]:
    """Every job block of a (non-quiet) dry run's output: rule, jobid, wildcards, resources, files."""
    jobs: list[PlannedJob] = []
    current: PlannedJob | None = None
    for line in text.splitlines():
        header = JOB_HEADER.match(line)
        if header:
            current = PlannedJob(header.group(1), -1)
            jobs.append(current)
            continue
        found = FIELD.match(line) if current is not None else None
        if found is None:
            if not line.startswith("    "):
                current = None
            continue
        key, value = found.groups()
        if key == "jobid":
            current.jobid = int(value)
        elif key == "wildcards":
            current.wildcards = _pairs(value)
        elif key == "resources":
            current.resources = _pairs(value)
        elif key in ("input", "output"):
            setattr(current, key + "s", tuple(value.split(", ")))
        elif key in ("log", "benchmark"):
            setattr(current, key, value.split(", ")[0])
    if any(job.jobid < 0 for job in jobs):
        raise UserError("The dry run's output has a job without a jobid: is this Snakemake 9.27 (pinned in pyproject.toml)?")
    return jobs


def dry_run(configfiles: Sequence[str | Path], snakefile: str | Path = "Snakefile",
            directory: str | Path = ".") -> list[PlannedJob]:
    """Every job the whole study needs (`--forceall`: what exists already is counted as well)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1", "-s", str(Path(snakefile).resolve()),
           "-d", str(directory)]
    if configfiles:
        cmd += ["--configfile", *(str(Path(c).resolve()) for c in configfiles)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-15:])
        raise UserError(f"The dry run `{' '.join(cmd[2:])}` failed; fix what it says and try again:\n{tail}")
    jobs = parse_dry_run(run.stdout + "\n" + run.stderr)
    if not jobs:
        raise UserError(f"The dry run of {snakefile} planned no jobs; is it the study's Snakefile?")
    return jobs


def merge_config(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Snakemake's `--configfile a b` overlay: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def study_config(configfiles: Sequence[str | Path], workflow_dir: str | Path) -> dict[str, Any]:
    """The config the workflow runs with: the configfiles overlaid in order (the Snakefile's own
    `config.yaml` only when none is given), the schema's defaults filled in."""
    workflow_dir = Path(workflow_dir)
    config: dict[str, Any] = {}
    for path in configfiles or [workflow_dir / "config.yaml"]:
        loaded = load_yaml(path) or {}
        if not isinstance(loaded, Mapping):
            raise UserError(f"Config file {path} must be a mapping of keys to values.")
        config = merge_config(config, loaded)
    return config_with_defaults(config, workflow_dir / "schemas" / "config.schema.yaml")
