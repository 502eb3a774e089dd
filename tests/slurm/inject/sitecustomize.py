"""Test-only failure injection for tests/test_slurm.py: one job of a rule fails on its first attempt.

Put this directory on PYTHONPATH (sbatch --export=ALL carries it into the jobs) and set
OVERSPEC_FAIL_ONCE_RULE (a rule name) and OVERSPEC_FAIL_ONCE_DIR (a shared directory). The first
Python process whose command line names the rule (the job's Snakemake jobstep, or its script)
creates the marker file and exits with an error; every later process finds the marker and runs
normally. Works for any workflow, without touching its rules or config.
"""

import os
import sys

_rule = os.environ.get("OVERSPEC_FAIL_ONCE_RULE")
_marker_dir = os.environ.get("OVERSPEC_FAIL_ONCE_DIR")
if _rule and _marker_dir and any(_rule in arg for arg in sys.argv):
    try:
        # O_EXCL: exactly one process wins, however many jobs of the rule start at once.
        os.close(os.open(os.path.join(_marker_dir, f"{_rule}.failed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        pass
    else:
        sys.exit(f"injected failure: first attempt of a {_rule} job (tests/slurm/inject)")
