"""`overspec estimate`: GPU-hours and wall time of a study before it runs, per rule and in total.

    overspec estimate --configfile configs/paper.yaml --gpus 4
    overspec estimate --configfile config.yaml configs/wiseft.yaml --device cpu --gpus 1 --cores 2

The jobs are those `snakemake -n --forceall` plans for the same config files (overlaid in order, as
Snakemake does); each job's size comes from the config, its speed from the kept rates table
(overspec/data/rates/rates.csv), measured, derived or extrapolated as each rate line says.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from overspec.estimate.plan import dry_run, study_config
from overspec.estimate.rates import ANY, RATES_CSV, load_rates
from overspec.estimate.schedule import CPU, JobCost, cost_jobs, wall_seconds


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="overspec estimate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", nargs="+", default=[], metavar="FILE",
                   help="the study's config files, as for snakemake (default: the Snakefile's config.yaml)")
    p.add_argument("--gpus", type=int, required=True, help="GPUs the study runs on")
    p.add_argument("--device", default="h200", help="device kind of the GPU jobs' rates (default h200; "
                   "'cpu' for a machine without GPUs)")
    p.add_argument("--cores", type=int, default=16, help="CPU cores for the CPU jobs (default 16)")
    p.add_argument("--snakefile", default="Snakefile", help="the study's Snakefile (default: ./Snakefile)")
    p.add_argument("--directory", default=".", help="the study's working directory (default: .)")
    return p


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def rule_rows(costs: list[JobCost], gpus: int, cores: int) -> list[list[str]]:
    by_rule: dict[str, list[JobCost]] = defaultdict(list)
    for cost in costs:
        by_rule[cost.job.rule].append(cost)
    rows = []
    for rule, group in sorted(by_rule.items(), key=lambda item: -sum(c.seconds * max(c.job.gpus, 1) for c in item[1])):
        device = group[0].device
        seconds = sum(c.seconds for c in group)
        gpu_seconds = sum(c.gpu_seconds for c in group)
        slots = gpus if device != CPU else cores
        busy = gpu_seconds if device != CPU else seconds
        longest = max(group, key=lambda c: c.seconds)
        alone = max(busy / slots, min(longest.seconds * max(longest.job.gpus, 1) / slots, longest.seconds)
                    if device != CPU else longest.seconds)
        images = sum(c.work.images or 0 for c in group)
        rows.append([rule, str(len(group)), device, f"{images:,}" if images else "-", duration(seconds),
                     f"{gpu_seconds / 3600:,.1f}" if device != CPU else "-", duration(alone),
                     f"{duration(longest.seconds)} ({_limit(longest)})"])
    return rows


def _limit(cost: JobCost) -> str:
    """The longest job against its `runtime` resource (minutes), which a SLURM run asks for."""
    runtime = cost.job.resources.get("runtime")
    if not runtime:
        return "no runtime limit"
    minutes = float(runtime)
    return f"runtime {duration(minutes * 60)}" + (": TOO SHORT, raise it" if cost.seconds > minutes * 60 else "")


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {1, 3, 4, 5, 6}
    line = lambda r: "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def rate_lines(costs: list[JobCost]) -> list[str]:
    """One line per distinct rate used (arch shown where the rate depends on it)."""
    seen: dict[tuple[str, str, str], JobCost] = {}
    for cost in costs:
        arch = cost.arch if any(row[0] != ANY for row in cost.rate.rows) else ANY
        seen.setdefault((cost.job.rule, arch, cost.device), cost)
    lines = []
    for (rule, arch, device), cost in sorted(seen.items(), key=lambda item: (item[0][2] == CPU, item[0])):
        speed = f"{cost.rate.images_per_s:,.4g} images/s" if cost.rate.images_per_s else "per job"
        lines.append(f"  {rule} {arch} on {device}: {speed} + {cost.rate.startup_s:g} s start-up "
                     f"[{cost.rate.basis}] {cost.rate.origin}")
    return lines


def source_lines(costs: list[JobCost], table: dict) -> list[str]:
    """The rates table's rows behind those rates, each once, with its source, command and date."""
    keys = sorted({key for cost in costs for key in cost.rate.rows})
    lines = []
    for key in keys:
        row = table[key]
        how = "; ".join(part for part in (row["command"] and f"`{row['command']}`", row["date"]) if part)
        lines.append(f"  {' '.join(key)} [{row['basis']}]: {row['source']}" + (f" ({how})" if how else ""))
    return lines


def size_lines(costs: list[JobCost]) -> list[str]:
    """Fine-tunes one by one (they dominate); other rules as totals with where the sizes come from."""
    lines, by_rule = [], defaultdict(list)
    for cost in sorted(costs, key=lambda c: c.job.name):  # the dry run's order varies from run to run
        if cost.work.images:
            by_rule[cost.job.rule].append(cost)
    for rule, group in by_rule.items():
        if rule == "finetune_model":
            lines += [f"  {c.job.name}: {c.work.images:,} ({c.work.note})" for c in group]
        else:
            lines.append(f"  {rule}: {len(group)} jobs, {sum(c.work.images for c in group):,} in all "
                         f"(e.g. {group[0].job.name}: {group[0].work.images:,}, {group[0].work.note})")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    snakefile = Path(args.snakefile)
    config = study_config(args.configfile, snakefile.resolve().parent)
    jobs = dry_run(args.configfile, snakefile, args.directory)
    costs = cost_jobs(config, jobs, args.device)
    configs = " ".join(args.configfile) or "config.yaml"
    where = (f"every job at the CPU rates on {args.cores} cores" if args.device == CPU else
             f"GPU jobs at {args.device} rates on {args.gpus} GPU(s), CPU jobs at the CPU rates on {args.cores} cores")
    print(f"{configs}: {len(jobs)} jobs (snakemake -n --forceall); {where}.\n")
    alone = f"alone on {args.cores} cores" if args.device == CPU else f"alone on {args.gpus} GPU(s)/{args.cores} cores"
    header = ["rule", "jobs", "device", "images", "job time", "GPU-hours", alone, "longest job (its runtime resource)"]
    print(table(rule_rows(costs, args.gpus, args.cores), header))
    total = sum(c.seconds for c in costs)
    gpu_hours = sum(c.gpu_seconds for c in costs) / 3600
    wall = wall_seconds(costs, args.gpus, args.cores)
    if args.device == CPU:
        print(f"\ntotal: {duration(total)} of job time; wall time {duration(wall)} on {args.cores} cores "
              "(the DAG's order kept, longest chain first)")
    else:
        print(f"\ntotal: {duration(total)} of job time, {gpu_hours:,.1f} GPU-hours; wall time {duration(wall)} on "
              f"{args.gpus} GPU(s) and {args.cores} cores (the DAG's order kept, longest chain first; GPUs busy "
              f"{100 * gpu_hours * 3600 / max(wall * args.gpus, 1e-9):.0f}% of it)")
    print("\nRates used (derived: another rule's rate times a stated factor; extrapolated: from another "
          "architecture by forward FLOPs):")
    print("\n".join(rate_lines(costs)))
    print(f"\nBehind them, rows of overspec/{RATES_CSV} (measured: command and date; assumed: a guess to "
          "replace with a measurement):")
    print("\n".join(source_lines(costs, load_rates())))
    print("\nJob sizes (images through the model):")
    print("\n".join(size_lines(costs)))
    return 0
