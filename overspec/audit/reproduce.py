"""Re-executing a sample of a study's jobs in a scratch folder and comparing what they write.

Each sampled job gets its own scratch folder holding copies of exactly the inputs its provenance
records (a dataset's manifest or world file travels with its data folder, which readers open
through it). Snakemake
then builds the job's outputs there with only that job's rule allowed (`--allowed-rules`), so it can
neither rebuild an input nor run anything else. Every file the job writes is compared with the
study's: byte-identical when both runs were on CPU, within the tolerances of
`overspec.audit.compare` otherwise. Copies, not links: a job can never touch the study's bytes.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overspec.audit.manifest import DATASET_CONTENT, RESULTS_DIR, SKIPPED_PREFIXES, read_record
from overspec.audit.compare import Comparison, compare_files
from overspec.errors import UserError
from overspec.provenance import SIDECAR_SUFFIX

# A dataset's top-level file (manifest.json, world.json, corpus.h5) is how jobs find its contents.
_DATASET_FILE = re.compile(r"^results/data/[^/]+/[^/]+$")


@dataclass
class Job:
    rule: str
    outputs: list[str]  # artifacts this job wrote, as recorded in the manifest
    inputs: list[str]  # paths relative to the study (or absolute, outside it)


@dataclass
class Reproduction:
    job: Job
    comparisons: list[Comparison] = field(default_factory=list)
    error: str | None = None  # why the job could not be re-executed

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.comparisons) and all(c.ok for c in self.comparisons)


def jobs_of(manifest: Mapping[str, Any], rules: Sequence[str] | None = None) -> list[Job]:
    """The study's jobs: artifacts with the same rule, inputs, params and code came from one job."""
    groups: dict[str, Job] = {}
    for rel, entry in sorted(manifest["artifacts"].items()):
        if entry.get("rule") is None or (rules and entry["rule"] not in rules):
            continue
        key = json.dumps([entry["rule"], entry["inputs"], entry.get("params"), entry.get("code")], sort_keys=True)
        job = groups.setdefault(key, Job(entry["rule"], [], sorted({i["path"] for i in entry["inputs"].values()})))
        job.outputs.append(rel)
    return sorted(groups.values(), key=lambda job: job.outputs[0])


def sample_jobs(manifest: Mapping[str, Any], n: int, seed: int = 0, rules: Sequence[str] | None = None) -> list[Job]:
    jobs = jobs_of(manifest, rules)
    if not jobs:
        raise UserError("The manifest lists no job to reproduce" + (f" of the rules {', '.join(rules)}" if rules else "")
                        + ": check --rules, or rewrite the manifest with `overspec audit`.")
    return sorted(random.Random(seed).sample(jobs, min(n, len(jobs))), key=lambda job: job.outputs[0])


def _copy_inputs(study: Path, job: Job, scratch: Path) -> None:
    for rel in job.inputs:
        if Path(rel).is_absolute():
            continue  # outside the study: the job reads it where it is
        source, target = study / rel, scratch / rel
        if _DATASET_FILE.match(rel):
            shutil.copytree(source.parent, target.parent, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)  # keeps mtimes: inputs must not look newer than they are
    for rel in job.outputs:  # outputs that travelled with a data folder must be rebuilt, not kept
        for path in (scratch / rel, scratch / (rel + SIDECAR_SUFFIX)):
            path.unlink(missing_ok=True)


def _written_files(scratch: Path, before: set[str]) -> list[str]:
    found = []
    for path in sorted((scratch / RESULTS_DIR).rglob("*")):
        rel = path.relative_to(scratch).as_posix()
        if (path.is_file() and not path.name.startswith(".") and rel not in before
                and not rel.startswith(SKIPPED_PREFIXES) and not DATASET_CONTENT.match(rel)):
            found.append(rel)
    return found


def _on_cpu(path: Path) -> bool:
    target = Path(str(path)[: -len(SIDECAR_SUFFIX)]) if str(path).endswith(SIDECAR_SUFFIX) else path
    block = read_record(target)["block"] if target.is_file() else None
    return block is None or block.get("device", "cpu") == "cpu"


def reproduce_job(study: Path, job: Job, scratch: Path, snakefile: Path, configfile: Path | None,
                  cores: int, snakemake_args: Sequence[str] = ()) -> Reproduction:
    """Re-execute one job in `scratch` and compare every file it writes with the study's."""
    result = Reproduction(job)
    _copy_inputs(study, job, scratch)
    before = {p.relative_to(scratch).as_posix() for p in scratch.rglob("*") if p.is_file()}
    # targets first: --allowed-rules and --configfile take every value that follows them
    cmd = [sys.executable, "-m", "snakemake", *job.outputs, "-s", str(snakefile), "-d", str(scratch),
           "--cores", str(cores), *snakemake_args, *(["--configfile", str(configfile)] if configfile else []),
           "--allowed-rules", job.rule]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=scratch, check=False)
    if run.returncode != 0:
        tail = (run.stdout + run.stderr).strip().splitlines()[-15:]
        result.error = f"snakemake exited with {run.returncode}:\n" + "\n".join(tail)
        return result
    for rel in _written_files(scratch, before):
        exact = _on_cpu(study / rel) and _on_cpu(scratch / rel)
        result.comparisons.append(compare_files(study / rel, scratch / rel, exact=exact, name=rel))
    return result


def reproduce(study: str | Path, manifest: Mapping[str, Any], n: int, seed: int = 0, snakefile: str | Path = "Snakefile",
              configfile: str | Path | None = None, cores: int = 1, rules: Sequence[str] | None = None,
              scratch: str | Path | None = None, keep: bool = False,
              snakemake_args: Sequence[str] = ()) -> list[Reproduction]:
    """Re-execute a seeded sample of `n` jobs, each in its own scratch folder, and compare."""
    study = Path(study).resolve()
    snakefile = Path(snakefile).resolve()
    if not snakefile.is_file():
        raise UserError(f"Snakefile {snakefile} does not exist: pass the study's workflow with --snakefile.")
    if configfile is not None and not Path(configfile).is_file():
        raise UserError(f"Config file {configfile} does not exist: pass the study's config with --configfile.")
    configfile = Path(configfile).resolve() if configfile else None
    jobs = sample_jobs(manifest, n, seed, rules)
    base = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="overspec-reproduce-"))
    remove = scratch is None and not keep  # a folder the user named is left for them to inspect
    results = []
    try:
        for index, job in enumerate(jobs):
            folder = base / f"{index:03d}-{job.rule}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            results.append(reproduce_job(study, job, folder, snakefile, configfile, cores, snakemake_args))
    finally:
        if remove:
            shutil.rmtree(base, ignore_errors=True)
    return results
