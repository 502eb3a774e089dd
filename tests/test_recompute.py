"""Minimal recomputation and the audit, on one finished toy study (tests/configs/tiny2.yaml: two
models, one dataset) shared by the module; tests that change anything work on copies.

Expected job sets are never hard-coded: they come from the job graph of the study's own first run
(each job's rule, wildcards, inputs and outputs, read from Snakemake's log), so a rule added later
is counted where it belongs. The workflow (Snakefile, rules, scripts, schemas, profiles) runs from
a copy, which tests may edit; the overspec package is never edited in place (the library-change test
puts an edited copy first on PYTHONPATH). Pinned on snakemake 9.27.1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from workflow_helpers import ROOT

from overspec.audit.manifest import MANIFEST_PATH, build_manifest, load_manifest, verify
from overspec.provenance import (
    PACKAGE_ROOT,
    imported_module_files,
    sha256_file,
    sidecar_path,
)

TINY2 = ROOT / "tests" / "configs" / "tiny2.yaml"
WORKFLOW_PARTS = ("Snakefile", "config.yaml", "rules", "workflow_scripts", "schemas", "profiles", "envs", "report")
JOB_START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")

# ---------------------------------------------------------------------------------------------
# Running the workflow copy and reading which jobs it planned or ran


def copy_workflow(dst: Path) -> Path:
    """The workflow files (never the package, never results) copied to `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_PARTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, dst / name)
    return dst


def snakemake(workflow: Path, workdir: Path, *args: str, config: Path = TINY2,
              pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """Run the copied workflow (cwd = workdir, so the repository root never shadows PYTHONPATH)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(workflow / "Snakefile"), "-d", str(workdir),
           "--configfile", str(config), "--cores", "2", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=workdir, env=env, check=False)
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def jobs_in(result: subprocess.CompletedProcess) -> list[dict]:
    """Every job block of a run or dry run: rule, wildcards, inputs, outputs."""
    jobs: list[dict] = []
    current = None
    for line in (result.stdout + result.stderr).splitlines():
        if match := JOB_START.match(line):
            current = {"rule": match.group(1), "wildcards": {}, "input": [], "output": []}
            jobs.append(current)
        elif current is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key in ("input", "output"):
                current[key] = [v.strip() for v in value.split(",")]
            elif key == "wildcards":
                current["wildcards"] = dict(item.split("=", 1) for item in value.split(", "))
        else:
            current = None
    return jobs


def key(job: dict) -> str:
    return job["rule"] + "".join(f" {k}={v}" for k, v in sorted(job["wildcards"].items()))


def planned(workflow: Path, workdir: Path, *args: str, **kwargs) -> Counter:
    return Counter(key(job) for job in jobs_in(snakemake(workflow, workdir, "-n", *args, **kwargs)))


def executed(workflow: Path, workdir: Path, *args: str, **kwargs) -> Counter:
    return Counter(key(job) for job in jobs_in(snakemake(workflow, workdir, *args, **kwargs)))


def downstream(graph: list[dict], start: set[str]) -> Counter:
    """The jobs that read any of `start` (paths), directly or through other jobs' outputs."""
    found: dict[str, dict] = {}
    frontier = set(start)
    while frontier:
        readers = [job for job in graph if key(job) not in found and frontier & set(job["input"])]
        found.update((key(job), job) for job in readers)
        frontier = {path for job in readers for path in job["output"]}
    return Counter(dict.fromkeys(found, 1))


def jobs_of(graph: list[dict], *, rules: set[str] | None = None, model: str | None = None) -> list[dict]:
    return [job for job in graph if (rules is None or job["rule"] in rules)
            and (model is None or job["wildcards"].get("model") == model)]


def with_downstream(graph: list[dict], jobs: list[dict]) -> Counter:
    return Counter(key(job) for job in jobs) + downstream(graph, {p for job in jobs for p in job["output"]})


def write_config(path: Path, edit) -> Path:
    config = yaml.safe_load(TINY2.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------
# The shared study


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


@pytest.fixture(scope="module")
def first_run(workflow, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    result = snakemake(workflow, workdir)
    return workdir, jobs_in(result)


@pytest.fixture(scope="module")
def study(first_run) -> Path:
    return first_run[0]


@pytest.fixture(scope="module")
def graph(first_run) -> list[dict]:
    """Every job of the study (a first run runs them all), with its inputs and outputs."""
    jobs = first_run[1]
    assert len({key(job) for job in jobs}) == len(jobs) and {"pretrain_toy_clip", "digest_model"} <= {j["rule"] for j in jobs}
    return jobs


def fresh_copy(study: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "study"
    shutil.copytree(study, copy, symlinks=True)
    return copy


# ---------------------------------------------------------------------------------------------
# Minimal recomputation


@pytest.mark.slow
def test_nothing_changed_nothing_runs(workflow, study):
    assert planned(workflow, study) == Counter()


@pytest.mark.slow
def test_identical_model_bytes_only_digest_the_model(workflow, study, tmp_path):
    workdir = fresh_copy(study, tmp_path)
    model = workdir / "results" / "models" / "clip-a" / "model.safetensors"
    assert model.stat().st_size > 1_000_000  # above Snakemake's checksum limit: only the digest saves the rerun
    original = sha256_file(model)
    backup = tmp_path / "model.safetensors"
    shutil.copy(model, backup)
    shutil.copy(backup, model)  # copied over: same bytes, newer than everything downstream
    assert executed(workflow, workdir) == Counter({"digest_model model=clip-a": 1})
    # retrained deterministically: the same weights, so nothing downstream runs either
    rerun = executed(workflow, workdir, "--forcerun", "results/models/clip-a/model.safetensors")
    assert rerun == Counter({"pretrain_toy_clip model=clip-a": 1, "digest_model model=clip-a": 1})
    assert sha256_file(model) == original


@pytest.mark.slow
def test_one_changed_model_reruns_only_its_jobs(workflow, study, graph, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    workdir = fresh_copy(study, tmp_path)
    model = workdir / "results" / "models" / "clip-a" / "model.safetensors"
    with safe_open(str(model), framework="numpy") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(model))
    name = min(n for n, t in tensors.items() if t.dtype.kind == "f" and t.ndim == 2)
    tensors[name] = tensors[name] + 0.05
    save_file(tensors, str(model), metadata=metadata)

    ran = executed(workflow, workdir)
    expected = downstream(graph, {"results/models/clip-a/model.safetensors"})
    assert ran == expected
    assert not any("model=clip-b" in job for job in ran) and "pretrain_toy_clip model=clip-a" not in ran


@pytest.mark.slow
def test_changed_pretraining_recipe_reruns_that_model_only(workflow, study, graph, tmp_path):
    def edit(config):
        config["backbones"]["toy-a"]["pretrain"]["lr"] = 0.003

    config = write_config(tmp_path / "config.yaml", edit)
    expected = with_downstream(graph, jobs_of(graph, rules={"pretrain_toy_clip"}, model="clip-a"))
    assert planned(workflow, study, config=config) == expected
    assert "pretrain_toy_clip model=clip-a" in expected and not any("clip-b" in job for job in expected)


@pytest.mark.slow
def test_touched_scripts_and_rules_rerun_nothing(study, tmp_path):
    workflow = copy_workflow(tmp_path / "workflow")
    later = (study / MANIFEST_PATH).stat().st_mtime + 3600
    for path in [*(workflow / "workflow_scripts").glob("*.py"), *(workflow / "rules").glob("*.smk")]:
        os.utime(path, (later, later))
    assert planned(workflow, study) == Counter()


@pytest.mark.slow
def test_edited_script_reruns_its_rule_and_downstream(study, graph, tmp_path):
    workflow = copy_workflow(tmp_path / "workflow")
    script = workflow / "workflow_scripts" / "fit_linear_probe.py"
    script.write_text(script.read_text() + "# an edit that changes the content\n")
    expected = with_downstream(graph, jobs_of(graph, rules={"fit_linear_probe"}))
    assert planned(workflow, study) == expected
    assert {job.split()[0] for job in expected} >= {"fit_linear_probe", "aggregate_tables"}


@pytest.mark.slow
def test_edited_library_module_reruns_the_rules_that_import_it(workflow, study, graph, tmp_path):
    module = "evaluate/general.py"
    rules = {job["rule"] for job in graph}
    users = {script.stem for script in (workflow / "workflow_scripts").glob("*.py")
             if PACKAGE_ROOT / module in imported_module_files(script)} & rules  # rules of this study only
    assert users and users < rules, users  # the edit must select some rules, not all

    package = tmp_path / "site"
    shutil.copytree(PACKAGE_ROOT, package / "overspec", ignore=shutil.ignore_patterns("__pycache__"))
    edited = package / "overspec" / module
    edited.write_text(edited.read_text() + "# an edit that changes the content\n")
    expected = with_downstream(graph, jobs_of(graph, rules=users))
    assert planned(workflow, study, pythonpath=package) == expected


@pytest.mark.slow
def test_new_dataset_runs_only_its_jobs(workflow, study, graph, tmp_path):
    def edit(config):
        config["datasets"]["general"] = config["datasets"]["general"] + ["toy_colours"]

    config = write_config(tmp_path / "config.yaml", edit)
    plan = planned(workflow, study, config=config)
    per_dataset = [job for job in graph if job["wildcards"].get("dataset") == "toy_digits"]
    expected = Counter(key({**job, "wildcards": {**job["wildcards"], "dataset": "toy_colours"}}) for job in per_dataset)
    # and the jobs that gather every dataset (tables, audit, all)
    expected += Counter(job for job in with_downstream(graph, per_dataset) if "dataset=" not in job)
    assert plan == expected
    assert sum(n for job, n in plan.items() if job.startswith("prepare_dataset")) == 1


# ---------------------------------------------------------------------------------------------
# Provenance and the audit


@pytest.mark.slow
def test_every_artifact_is_recorded_with_its_lineage(study, graph):
    manifest = load_manifest(study)
    assert manifest["unrecorded"] == [] and manifest["warnings"] == []
    assert manifest["artifacts"] == build_manifest(study)["artifacts"]
    outputs = {path for job in graph for path in job["output"]} - {MANIFEST_PATH}
    assert set(manifest["artifacts"]) == outputs  # every declared output, and nothing else
    producers = {path: job for job in graph for path in job["output"]}
    for path, entry in manifest["artifacts"].items():
        job = producers[path]
        assert entry["rule"] == job["rule"], path
        assert {item["path"] for item in entry["inputs"].values()} == set(job["input"]), path  # every declared input


@pytest.mark.slow
def test_verify_passes_on_the_untouched_study(study, capsys):
    from overspec.cli.audit import main

    assert main(["--study", str(study), "--verify"]) == 0
    assert "0 flagged" in capsys.readouterr().out


def flip_byte(path: Path) -> bytes:
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    return data


@pytest.mark.slow
def test_one_flipped_byte_flags_that_artifact_and_everything_derived(study, graph, tmp_path, capsys):
    workdir = fresh_copy(study, tmp_path)
    artifacts = sorted(load_manifest(workdir)["artifacts"])
    mismatches = {}
    for rel in artifacts:
        path = workdir / rel
        original = flip_byte(path)
        try:
            flagged = verify(workdir).findings
        finally:
            path.write_bytes(original)
        expected = {rel} | {out for job in downstream(graph, {rel}) for out in next(
            j["output"] for j in graph if key(j) == job)} & set(artifacts)
        if set(flagged) != expected or flagged[rel].kind != "modified":
            mismatches[rel] = (sorted(set(flagged) - expected), sorted(expected - set(flagged)))
    assert mismatches == {}, mismatches

    # a changed provenance sidecar flags its artifact alone (its bytes, which consumers recorded, are intact)
    table = workdir / "results" / "tables" / "metrics.csv"
    flip_byte(sidecar_path(table))
    assert set(verify(workdir).findings) == {"results/tables/metrics.csv"}
    # and the command names what it flags and fails
    from overspec.cli.audit import main

    capsys.readouterr()
    assert main(["--study", str(workdir), "--verify"]) == 1
    assert "results/tables/metrics.csv" in capsys.readouterr().out


@pytest.mark.slow
def test_missing_artifact_and_its_dependants_are_flagged(study, graph, tmp_path):
    workdir = fresh_copy(study, tmp_path)
    rel = "results/embeddings/clip-b/toy_digits.h5"
    (workdir / rel).unlink()
    findings = verify(workdir).findings
    derived = {out for job in downstream(graph, {rel}) for out in next(j["output"] for j in graph if key(j) == job)}
    assert findings[rel].kind == "missing"
    assert set(findings) == {rel} | (derived - {MANIFEST_PATH})


@pytest.mark.slow
def test_reproduced_jobs_are_byte_identical_on_cpu(workflow, study, capsys):
    from overspec.cli.audit import main

    status = main(["--study", str(study), "--reproduce", "2", "--rules", "eval_zeroshot", "aggregate_tables",
                   "--snakefile", str(workflow / "Snakefile"), "--configfile", str(TINY2), "--cores", "2"])
    out = capsys.readouterr().out
    assert status == 0, out
    compared = re.findall(r"^  ok   (\S+): identical \(exact\)$", out, re.MULTILINE)
    assert len(re.findall(r"^job ", out, re.MULTILINE)) == 2 and compared, out
    assert "FAIL" not in out


@pytest.mark.slow
def test_two_runs_from_scratch_are_byte_identical(workflow, study, tmp_path):
    second = tmp_path / "second"
    second.mkdir()
    snakemake(workflow, second)

    def digests(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted((root / "results").rglob("*"))
                if p.is_file() and not p.relative_to(root).as_posix().startswith("results/benchmarks/")}

    first, again = digests(study), digests(second)
    assert set(first) == set(again)
    differing = sorted(path for path in first if first[path] != again[path])
    assert differing == []
    kinds = {Path(p).suffix for p in first}
    assert {".safetensors", ".h5", ".csv", ".json", ".md"} <= kinds


# ---------------------------------------------------------------------------------------------
# The Snakemake behaviour the rules work around (fast: a three-rule workflow, no torch)

MINI = """
rule all:
    input: "c.txt", "model.sha"

rule model:
    output: "model.bin"
    shell: "head -c 2000000 /dev/zero > {output}"

checkpoint digest:
    input: "model.bin"
    output: "model.sha"
    shell: "sha256sum {input} | cut -c1-64 > {output}"

rule b:
    input: m=ancient("model.bin"), d="model.sha"
    output: "b.txt"
    shell: "cat {input.d} > {output}"

rule c:
    input: b="b.txt"%s
    output: "c.txt"
    shell: "cat {input.b} > {output}"
"""


@pytest.mark.parametrize("second_level_digest", [False, True])
def test_checkpoint_cutoff_reaches_only_the_checkpoints_direct_dependants(tmp_path, second_level_digest):
    """snakemake 9.27.1 drops the direct dependants of a checkpoint whose output bytes did not change,
    but jobs further down keep the "updated by another job" reason of the first plan and run anyway.
    So every rule below a model lists the model digest itself (rules/common.smk, model_digests()).
    If the first case starts to pass with only the digest job, Snakemake fixed it."""
    (tmp_path / "Snakefile").write_text(MINI % (', d="model.sha"' if second_level_digest else ""))

    def run() -> Counter:
        result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return Counter(job["rule"] for job in jobs_in(result))

    run()
    (tmp_path / "copy.bin").write_bytes((tmp_path / "model.bin").read_bytes())
    shutil.copy(tmp_path / "copy.bin", tmp_path / "model.bin")  # identical bytes, newer mtime
    expected = {"digest": 1} if second_level_digest else {"digest": 1, "c": 1, "all": 1}
    assert run() == Counter(expected)
