"""Kept measurements: nothing under benchmarks/results/ may be git-ignored (an unanchored `results/`
in .gitignore once hid the H200 output README.md quoted, so it was never committed)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "benchmarks" / "results"


def ignored(paths: list[str]) -> list[str]:
    """The paths git would ignore; --no-index also judges tracked files by the patterns alone."""
    run = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, text=True,
                         input="\n".join(paths) + "\n", capture_output=True)
    if run.returncode not in (0, 1):  # 1: nothing ignored
        pytest.fail(f"git check-ignore failed: {run.stderr.strip()}")
    return run.stdout.split()


@pytest.fixture(scope="module")
def git_checkout():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")


def test_no_kept_measurement_is_ignored(git_checkout):
    kept = sorted(str(p.relative_to(ROOT)) for p in KEPT.rglob("*") if p.is_file())
    assert "benchmarks/results/README.md" in kept
    # A file a future GPU run adds (any name, any depth) must not be ignored either.
    future = ["benchmarks/results/h200-2027-01-01.md", "benchmarks/results/run/finetune.log"]
    assert ignored(kept + future) == []


def test_the_study_outputs_are_still_ignored(git_checkout):
    assert ignored(["results/tables/gelo.csv", "logs/x.log", ".snakemake/log/a.log"]) == [
        "results/tables/gelo.csv", "logs/x.log", ".snakemake/log/a.log"]
