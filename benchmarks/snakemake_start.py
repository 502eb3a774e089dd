"""How long one Snakemake start takes here, and whether the SLURM executor plugin makes it wait.

snakemake-executor-plugin-slurm (in the test and slurm extras) is imported at every Snakemake
start. Where `sinfo` is on PATH it asks `scontrol show config` (10 s timeout) at import, so on a
machine whose SLURM controller does not answer (or that has SLURM's tools but no slurm.conf)
every start, dry runs included, waits that long. SLURM_CONF=/dev/null makes scontrol fail at once.
This script times `scontrol show config` and a dry run of a one-rule workflow (`--repeats` times).
Prints readable lines, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    plugin = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None
    sinfo, scontrol = shutil.which("sinfo"), shutil.which("scontrol")
    print(f"SLURM executor plugin installed: {plugin}; sinfo: {sinfo}; scontrol: {scontrol}")
    scontrol_s = None
    if scontrol:
        try:
            scontrol_s, done = timed([scontrol, "show", "config"], timeout=30)
            answer = "answered" if done.returncode == 0 else f"failed ({' '.join(done.stderr.split())[:100]})"
        except subprocess.TimeoutExpired:
            scontrol_s, answer = 30.0, "no answer in 30 s"
        print(f"scontrol show config: {answer} in {scontrol_s:.2f} s")

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "Snakefile").write_text('rule all:\n    output: "done"\n    shell: "touch {output}"\n')
        starts = []
        for _ in range(args.repeats):
            seconds, done = timed([sys.executable, "-m", "snakemake", "-n", "-q", "-s", f"{folder}/Snakefile", "-d", folder])
            if done.returncode != 0:
                raise SystemExit(f"snakemake -n failed:\n{done.stdout}{done.stderr}")
            starts.append(seconds)
    median = statistics.median(starts)
    print(f"snakemake -n on a one-rule workflow: median {median:.2f} s over {args.repeats} ({', '.join(f'{s:.2f}' for s in starts)})")
    waits = plugin and sinfo is not None and scontrol_s is not None and scontrol_s > 5
    if waits:
        print("every Snakemake start here waits for scontrol: start the SLURM controller, or set "
              "SLURM_CONF=/dev/null for runs and tests that submit nothing to SLURM")
    print(json.dumps({
        "plugin_installed": plugin, "sinfo_on_path": sinfo is not None, "scontrol_show_config_s": scontrol_s,
        "snakemake_dry_run_s": starts, "snakemake_dry_run_median_s": median, "waits_for_scontrol": waits,
    }))


if __name__ == "__main__":
    main()
