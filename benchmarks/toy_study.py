"""Run the default toy study from a fresh clone and report its wall time and headline numbers.

    python benchmarks/toy_study.py [--cores N] [--keep DIR] [--twice]

Clones the committed repository into a temporary folder, runs `snakemake --cores N` there, then
prints the wall time, each toy dataset's zero-shot top-1 against chance, the linear probe against
zero-shot, GELO, and whether a second run has nothing to do. With --twice it runs the study again
in a second clone and says whether the two metrics.csv files are byte-identical. Last line: one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run_study(clone: Path, cores: str) -> tuple[float, dict[str, str]]:
    """Clone the committed repository to `clone` and run the default study there; its wall time."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # The clone's own package, not whichever overspec is installed (an editable install of a work tree).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(clone), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", cores], cwd=clone,
                         capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:])
        raise SystemExit(f"the toy study in {clone} failed")
    return seconds, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="all")
    parser.add_argument("--keep", type=Path, help="clone into this folder and keep it")
    parser.add_argument("--twice", action="store_true", help="run a second study from scratch and compare metrics.csv")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="overspec-toy-"))
    clone = work / "overspec"
    seconds, env = run_study(clone, args.cores)
    again = subprocess.run([sys.executable, "-m", "snakemake", "--cores", args.cores, "-n"], cwd=clone,
                           capture_output=True, text=True, env=env)
    nothing_to_do = "Nothing to be done" in again.stdout + again.stderr
    identical = None
    if args.twice:
        second = work / "overspec-again"
        run_study(second, args.cores)
        metrics_csv = Path("results") / "tables" / "metrics.csv"
        identical = (clone / metrics_csv).read_bytes() == (second / metrics_csv).read_bytes()
        print(f"second run from scratch: metrics.csv byte-identical: {identical}")

    metrics = pd.read_csv(clone / "results" / "tables" / "metrics.csv")
    gelo = pd.read_csv(clone / "results" / "tables" / "gelo.csv")
    manifests = {p.parent.name: json.loads(p.read_text()) for p in (clone / "results" / "data").glob("*/manifest.json")}
    chance = {name: 1 / len(m["classes"]) for name, m in manifests.items()}

    top1 = metrics[(metrics.metric == "top1") & (metrics.adaptation == "none")]
    zero = top1[top1.protocol == "zeroshot"].pivot(index="dataset", columns="model", values="value")
    probe = top1[top1.protocol == "linear_probe"].pivot(index="dataset", columns="model", values="value")
    print(f"wall time: {seconds:.0f} s; second run has nothing to do: {nothing_to_do}")
    summary = {"wall_s": round(seconds, 1), "nothing_to_do_on_rerun": nothing_to_do, "baselines": {},
               "metrics_csv_identical_on_second_run": identical, "load_average_end": round(os.getloadavg()[0], 2)}
    for model in zero.columns:
        ratios = {d: zero.loc[d, model] / chance[d] for d in zero.index}
        mean_ratio = zero[model].mean() / pd.Series({d: chance[d] for d in zero.index}).mean()
        print(f"\n{model}: zero-shot top-1 (x chance) and linear-probe top-1")
        for d in zero.index:
            print(f"  {d:14s} zs {zero.loc[d, model]:.3f} ({ratios[d]:.1f}x)  lp {probe.loc[d, model]:.3f}")
        print(f"  mean zero-shot {zero[model].mean():.3f} = {mean_ratio:.2f}x mean chance; "
              f"mean probe {probe[model].mean():.3f}")
        summary["baselines"][model] = {
            "zeroshot_top1": {d: round(float(v), 4) for d, v in zero[model].items()},
            "min_ratio_to_chance": round(min(ratios.values()), 2),
            "mean_ratio_to_chance": round(float(mean_ratio), 2),
            "mean_zeroshot": round(float(zero[model].mean()), 4),
            "mean_probe": round(float(probe[model].mean()), 4),
        }
    print("\nGELO:\n" + gelo.to_string(index=False))
    summary["gelo"] = {f"{r.model}/{r.protocol}": round(float(r.gelo), 4) for r in gelo.itertuples()}
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
