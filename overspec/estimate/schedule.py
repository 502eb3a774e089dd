"""A study's cost: every planned job's seconds (size / rate + start-up), summed per rule, and the wall
time of the whole DAG on N GPUs and C CPU cores, scheduled as Snakemake would start jobs: any job
whose inputs are made, longest remaining chain first."""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from overspec.estimate.plan import PlannedJob
from overspec.estimate.rates import ANY, Rate, rate_for
from overspec.estimate.sizes import Work, job_work
from overspec.config import model_table
from overspec.errors import UserError

CPU = "cpu"


@dataclass
class JobCost:
    job: PlannedJob
    arch: str
    device: str
    work: Work
    rate: Rate
    seconds: float

    @property
    def gpu_seconds(self) -> float:
        return self.seconds * self.job.gpus if self.device != CPU else 0.0


def job_arch(config: dict[str, Any], job: PlannedJob, table: dict[str, dict[str, Any]] | None = None) -> str:
    """The architecture of the job's model (the workflow's model table: WiSE-FT models included)."""
    model = job.wildcards.get("model")
    if model is None:
        return ANY
    table = model_table(config) if table is None else table
    if model not in table:
        raise UserError(f"The dry run planned model '{model}', which the config does not list.")
    return table[model]["arch"]


def cost_jobs(config: dict[str, Any], jobs: list[PlannedJob], gpu_device: str, table: dict | None = None) -> list[JobCost]:
    """Each job's seconds: GPU jobs (a `gpu` resource) at `gpu_device`'s rates, the others at the CPU's."""
    costs, models = [], model_table(config)
    for job in jobs:
        arch = job_arch(config, job, models)
        device = gpu_device if job.gpus else CPU
        work = job_work(config, job.rule, job.wildcards)
        rate = rate_for(arch, job.rule, device, table)
        gpus = job.gpus if device != CPU else 1
        costs.append(JobCost(job, arch, device, work, rate, rate.seconds(work.images, gpus)))
    return costs


def dependencies(jobs: list[PlannedJob]) -> dict[int, set[int]]:
    """jobid -> the jobids whose outputs it reads (the dry run's input and output lists)."""
    made_by = {path: job.jobid for job in jobs for path in job.outputs}
    return {job.jobid: {made_by[p] for p in job.inputs if p in made_by} - {job.jobid} for job in jobs}


def wall_seconds(costs: list[JobCost], gpus: int, cores: int) -> float:
    """Makespan of the DAG: a GPU job holds its GPUs (a fine-tune asking for more GPUs than there are
    takes them all, and runs correspondingly slower), a CPU job one core."""
    if gpus < 1 or cores < 1:
        raise UserError("--gpus and --cores must be at least 1.")
    by_id = {c.job.jobid: c for c in costs}
    needs = dependencies([c.job for c in costs])
    children: dict[int, list[int]] = defaultdict(list)
    for child, parents in needs.items():
        for parent in parents:
            children[parent].append(child)
    remaining_chain: dict[int, float] = {}

    def chain(jobid: int) -> float:  # longest path from this job to the end
        if jobid not in remaining_chain:
            remaining_chain[jobid] = by_id[jobid].seconds + max((chain(c) for c in children[jobid]), default=0.0)
        return remaining_chain[jobid]

    for jobid in sorted(by_id, key=lambda j: len(needs[j])):
        chain(jobid)
    waiting = {j: len(needs[j]) for j in by_id}
    ready = [(-remaining_chain[j], j) for j, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    free = {"gpu": gpus, "cpu": cores}
    running: list[tuple[float, int]] = []
    now, done = 0.0, 0
    while done < len(by_id):
        held = []
        while ready:  # start everything that fits, longest chain first
            priority, jobid = heapq.heappop(ready)
            kind, amount, seconds = _claim(by_id[jobid], gpus)
            if free[kind] >= amount:
                free[kind] -= amount
                heapq.heappush(running, (now + seconds, jobid))
            else:
                held.append((priority, jobid))
        for item in held:
            heapq.heappush(ready, item)
        if not running:
            raise UserError("The planned jobs have a dependency cycle; the dry run's output is not a DAG.")
        now, jobid = heapq.heappop(running)
        kind, amount, _ = _claim(by_id[jobid], gpus)
        free[kind] += amount
        done += 1
        for child in children[jobid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (-remaining_chain[child], child))
    return now


def _claim(cost: JobCost, gpus: int) -> tuple[str, int, float]:
    if cost.device == CPU:
        return "cpu", 1, cost.seconds
    wanted = max(cost.job.gpus, 1)
    if wanted <= gpus:
        return "gpu", wanted, cost.seconds
    # fewer GPUs than the recipe asks for: the same work on all of them
    return "gpu", gpus, cost.rate.seconds(cost.work.images, gpus)
