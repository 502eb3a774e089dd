"""Per-job rates of a finished study, for the rates table of `overspec estimate`
(overspec/data/rates/rates.csv): for each (architecture, rule) on this device, the fixed start-up
seconds per job and the images per second, fitted over the study's jobs.

Every planned job (`snakemake -n --forceall` with the study's config files, the same plan
`overspec estimate` reads) is sized as the estimate sizes it (overspec.estimate.sizes) and timed in
CPU seconds, so that other processes sharing the machine do not inflate its rate: the `cpu_time` of
its Snakemake benchmark file where the rule keeps one; otherwise the wall time Snakemake recorded for
it (`.snakemake/metadata`, matched by its log path) times the share of a core the benchmarked jobs of
the same run got. A
rule whose jobs have at least two different sizes gets seconds = start-up + images / rate by least
squares; otherwise its mean seconds per job. Rules that never run the model (they read embeddings,
tables or files) get one row for every architecture (arch *).

Run (two toy studies of different sizes, 2 cores each, then the rates of this CPU):
    snakemake --cores 2 -d /tmp/toy
    snakemake --cores 2 -d /tmp/tiny --configfile tests/configs/tiny.yaml
    python benchmarks/job_rates.py --study /tmp/toy config.yaml --study /tmp/tiny tests/configs/tiny.yaml --device cpu
Prints one line per rate, the CSV rows to keep, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from overspec.estimate.plan import dry_run, study_config  # noqa: E402
from overspec.estimate.rates import ANY  # noqa: E402
from overspec.estimate.schedule import job_arch  # noqa: E402
from overspec.estimate.sizes import job_work  # noqa: E402

# Rules whose jobs run the image tower (their rates depend on the architecture).
MODEL_RULES = {"embed_images", "finetune_model", "pretrain_toy_clip", "eval_face_verification", "eval_ijb",
               "eval_attack_detection"}


def recorded_times(study: Path) -> dict[str, float]:
    """log path -> wall seconds, from Snakemake's per-output records (start and end time of the job)."""
    spans: dict[str, list[float]] = {}
    for record_path in (study / ".snakemake" / "metadata").iterdir():
        record = json.loads(record_path.read_text())
        if not record.get("log") or record.get("incomplete") or record.get("starttime") is None:
            continue
        log = record["log"][0]  # one per job, the same name the dry run prints
        start, end = spans.get(log, [record["starttime"], record["endtime"]])
        spans[log] = [min(start, record["starttime"]), max(end, record["endtime"])]
    return {log: end - start for log, (start, end) in spans.items()}


def cpu_model() -> str:
    """This machine's CPU and core count, for the rates' source column."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


def benchmark_record(path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one job from its Snakemake benchmark file."""
    header, values = path.read_text().splitlines()[:2]
    record = dict(zip(header.split("\t"), values.split("\t")))
    return float(record["s"]), float(record["cpu_time"])


def fit(points: list[tuple[int | None, float]]) -> tuple[float | None, float]:
    """(images/s, start-up s) by least squares over (images, seconds); (None, mean) without two sizes."""
    sizes = {images for images, _ in points if images}
    seconds = np.array([s for _, s in points])
    if len(sizes) < 2:
        return None, float(seconds.mean())
    x = np.array([images for images, _ in points], dtype=float)
    slope, intercept = np.polyfit(x, seconds, 1)
    if slope <= 0:  # the size does not show in the times (start-up dominates): a per-job rate
        return None, float(seconds.mean())
    if intercept < 0:  # through the origin
        return float(x @ x / (x @ seconds)), 0.0
    return float(1 / slope), float(intercept)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", required=True, nargs="+", action="append", metavar=("DIR", "CONFIGFILE"),
                   help="a study folder Snakemake has run in (its .snakemake/ kept) and the config files it was "
                        "run with; repeat for several studies (different sizes let the fit separate start-up and rate)")
    p.add_argument("--device", required=True, help="device kind to record (cpu, h200, ...)")
    p.add_argument("--partial", action="store_true", help="use the jobs of a study that did not run to the end")
    args = p.parse_args()
    points: dict[tuple[str, str], list[tuple[int | None, float]]] = defaultdict(list)
    shares = []
    for directory, *configfiles in args.study:
        study = Path(directory)
        config = study_config(configfiles, ROOT)
        walls = recorded_times(study)
        jobs = [job for job in dry_run(configfiles, ROOT / "Snakefile", study) if job.log]  # `all`: no script
        missing = [job.name for job in jobs if job.log not in walls]
        if missing and not args.partial:
            raise SystemExit(f"{study}: {len(missing)} planned jobs have no recorded time (first: {missing[0]}): "
                             "run the study to the end first, or pass --partial.")
        jobs = [job for job in jobs if job.log in walls]
        if missing:
            print(f"{study}: --partial: {len(missing)} planned jobs not run (yet) are left out")
        benchmarked = {job.log: benchmark_record(study / job.benchmark) for job in jobs if job.benchmark}
        share = sum(cpu for _, cpu in benchmarked.values()) / sum(wall for wall, _ in benchmarked.values())
        shares.append(round(share, 3))
        print(f"{study}: {len(jobs)} jobs; the benchmarked ones got {share:.0%} of a core on average "
              "(their CPU seconds / wall seconds), which scales the others' wall times")
        for job in jobs:
            seconds = benchmarked[job.log][1] if job.log in benchmarked else walls[job.log] * share
            arch = job_arch(config, job) if job.rule in MODEL_RULES else ANY
            points[(arch, job.rule)].append((job_work(config, job.rule, job.wildcards).images, seconds))
    studies = "; ".join(" ".join(Path(c).name for c in configs) or "config.yaml" for _, *configs in args.study)
    command = "python benchmarks/job_rates.py " + " ".join(sys.argv[1:])
    today = date.today().isoformat()
    rows = []
    for (arch, rule), found in sorted(points.items()):
        rate, startup = fit(found)
        total = sum(s for _, s in found)
        print(f"{rule:24s} {arch:12s} {len(found):3d} jobs {total:8.1f} s   "
              + (f"{rate:10.1f} images/s + {startup:.1f} s per job" if rate else f"{startup:.1f} s per job"))
        rows.append({"arch": arch, "rule": rule, "device": args.device, "jobs": len(found), "seconds": round(total, 2),
                     "images_per_s": round(rate, 1) if rate else None, "startup_s": round(startup, 2)})
    where = cpu_model()
    print("\nrates.csv rows:")
    for r in rows:
        print(f"{r['arch']},{r['rule']},{r['device']},{r['images_per_s'] or ''},{r['startup_s']},measured,,,"
              f"\"toy studies ({studies}), {r['jobs']} jobs, {where}, 2 jobs at a time\","
              f"\"{command}\",{today}")
    print(json.dumps({"device": args.device, "studies": args.study, "core_share": shares, "jobs": sum(r["jobs"] for r in rows),
                      "seconds": round(sum(r["seconds"] for r in rows), 1), "rates": rows}))


if __name__ == "__main__":
    main()
