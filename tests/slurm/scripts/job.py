"""The one job script of tests/slurm/Snakefile: set up the device like a real job, write a result.

Results depend only on the rule, the wildcards and the device description, so a local run and a
SLURM run give identical bytes. What the job saw (which GPUs, which SLURM job) goes to
config["seen_dir"], outside the results, for the tests to check.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

from overspec.devices import setup_device
from overspec.provenance import write_json

snakemake = globals()["snakemake"]  # injected by Snakemake's script: directive
rule = snakemake.rule
name = "-".join(f"{k}={v}" for k, v in snakemake.wildcards.items()) or rule
config = snakemake.config

device, description = setup_device(int(snakemake.resources.get("gpu", 0)))

if config.get("seen_dir"):
    seen = Path(config["seen_dir"])
    seen.mkdir(parents=True, exist_ok=True)
    write_json(
        seen / f"{rule}-{name}.json",
        {key: os.environ.get(key) for key in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "OMP_NUM_THREADS")},
    )
    if rule == "embed_images" and config.get("barrier"):
        deadline = time.monotonic() + 120
        while len(list(seen.glob("embed_images-*.json"))) < int(config["barrier"]):
            if time.monotonic() > deadline:
                sys.exit("barrier: the other GPU jobs never started")
            time.sleep(0.1)

if rule == "aggregate_tables":
    parts = [json.loads(Path(p).read_text()) for p in sorted(snakemake.input)]
    result = {"parts": parts, "device": description}
else:
    digest = hashlib.sha256(f"{rule}/{name}".encode()).hexdigest()
    result = {"rule": rule, "name": name, "value": digest, "gpus": int(snakemake.resources.gpu), "device": description}
write_json(snakemake.output[0], result)
