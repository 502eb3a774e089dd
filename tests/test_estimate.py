"""`overspec estimate`: the dry run's jobs, their sizes, the rates table (measured, derived,
extrapolated by FLOPs) and the schedule on N GPUs."""

from __future__ import annotations

import pytest
import yaml

from overspec.errors import UserError
from overspec.estimate.plan import PlannedJob, merge_config, parse_dry_run, study_config
from overspec.estimate.rates import Rate, forward_gflops, load_rates, rate_for
from overspec.estimate.schedule import JobCost, job_arch, wall_seconds
from overspec.estimate.sizes import Work, job_work
from workflow_helpers import ROOT

DRY_RUN = """\
Building DAG of jobs...
Job stats:
[Wed Dec  2 05:59:13 2026]
rule embed_images:
    input: results/models/clip-vit-b16/model.safetensors, results/data/flowers/manifest.json
    output: results/embeddings/clip-vit-b16/flowers.h5, results/text/clip-vit-b16/flowers.h5
    log: logs/embed_images/clip-vit-b16/flowers.log
    jobid: 29
    benchmark: results/benchmarks/embed_images/clip-vit-b16/flowers.tsv
    reason: Forced execution
    wildcards: model=clip-vit-b16, dataset=flowers
    resources: tmpdir=/tmp, gpu=1, runtime=240, mem_mb=8000, mem=8 GB, mem_mib=7630
[Wed Dec  2 05:59:13 2026]
checkpoint digest_model:
    input: results/models/clip-vit-b16/model.safetensors
    output: results/models/clip-vit-b16/model.sha256
    log: logs/digest_model/clip-vit-b16.log
    jobid: 3
    reason: Forced execution
    wildcards: model=clip-vit-b16
    resources: tmpdir=/tmp, runtime=10
DAG of jobs will be updated after completion.
[Wed Dec  2 05:59:13 2026]
localrule all:
    input: results/embeddings/clip-vit-b16/flowers.h5
    jobid: 0
    reason: Forced execution
    resources: tmpdir=/tmp
This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.
"""


def test_dry_run_output_is_parsed_job_by_job():
    embed, digest, target = parse_dry_run(DRY_RUN)
    assert (embed.rule, embed.jobid, embed.gpus, embed.log) == ("embed_images", 29, 1, "logs/embed_images/clip-vit-b16/flowers.log")
    assert embed.wildcards == {"model": "clip-vit-b16", "dataset": "flowers"}
    assert embed.resources["runtime"] == "240" and embed.outputs[1] == "results/text/clip-vit-b16/flowers.h5"
    assert embed.benchmark == "results/benchmarks/embed_images/clip-vit-b16/flowers.tsv" and digest.benchmark == ""
    assert (digest.rule, digest.gpus, digest.wildcards) == ("digest_model", 0, {"model": "clip-vit-b16"})
    assert (target.rule, target.jobid, target.outputs, target.log) == ("all", 0, (), "")


def test_config_files_overlay_like_snakemake_and_get_the_schemas_defaults():
    assert merge_config({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"c": 3}, "d": [2]}) == {"a": {"b": 1, "c": 3}, "d": [2]}
    config = study_config([ROOT / "config.yaml", ROOT / "configs" / "wiseft.yaml"], ROOT)
    assert config["analyses"]["wiseft"]["enabled"] and "clip-toy-s" in config["models"]
    assert study_config([], ROOT)["biometrics"]["toy_sizes"]["pair_folds"] == 10  # a schema default


def test_job_sizes_follow_the_recipes_and_the_datasets():
    paper = study_config([ROOT / "configs" / "paper.yaml"], ROOT)
    # MS1MV2: 5,822,653 // 512 = 11,372 steps per epoch, 40 epochs, batch 512
    assert job_work(paper, "finetune_model", {"model": "clip-vit-b16-fr"}).images == 11_372 * 40 * 512
    assert job_work(paper, "embed_images", {"model": "clip-vit-b16", "dataset": "cifar10"}).images == 60_000
    toy = study_config([], ROOT)
    assert job_work(toy, "embed_images", {"model": "clip-toy-s", "dataset": "toy_digits"}).images == 87 * 10
    assert job_work(toy, "eval_ijb", {"model": "clip-toy-s", "benchmark": "toyijb"}).images is None
    with pytest.raises(UserError, match="has no size for dataset 'imagenet'"):
        job_work(paper, "embed_images", {"model": "clip-vit-b16", "dataset": "imagenet"})


def test_wiseft_models_have_their_fine_tunes_architecture():
    config = study_config([ROOT / "config.yaml", ROOT / "configs" / "wiseft.yaml"], ROOT)
    job = PlannedJob("embed_images", 1, wildcards={"model": "clip-toy-m-mad-wise050", "dataset": "toy_digits"})
    assert job_arch(config, job) == "toy-clip-m"
    with pytest.raises(UserError, match="'clip-nope', which the config does not list"):
        job_arch(config, PlannedJob("embed_images", 2, wildcards={"model": "clip-nope"}))


def test_forward_flops_match_the_hand_count():
    # ViT-B/16 at 224: 197 tokens, width 768, 12 blocks: 12 x 197 x (12 x 768^2 + 2 x 197 x 768) + 197 x 3 x 16^2 x 768
    # multiply-adds = 17.56 G (the published 17.6 GMACs); ViT-L/14: 257 tokens, 1024, 24 blocks = 81.0 G.
    assert forward_gflops("ViT-B-16") == pytest.approx(2 * 17_563_650_048 / 1e9)
    assert forward_gflops("ViT-L-14") == pytest.approx(2 * 81_012_572_160 / 1e9)


def test_an_architecture_without_a_measured_rate_names_the_rate_it_was_extrapolated_from():
    measured = rate_for("ViT-B-16", "embed_images", "h200")
    assert measured.basis == "measured" and measured.images_per_s == 6185
    assert "RAW OUTPUT LOST" in load_rates()[measured.rows[0]]["source"]  # said wherever the rate is listed
    rate = rate_for("ViT-B-32", "embed_images", "h200")  # no row: nearest in FLOPs is ViT-B-16
    assert rate.basis == "extrapolated" and rate.rows == (("ViT-B-16", "embed_images", "h200"),)
    assert rate.images_per_s == pytest.approx(6185 * forward_gflops("ViT-B-16") / forward_gflops("ViT-B-32"))
    assert rate.origin.startswith("extrapolated from ViT-B-16 (6,185 images/s, measured, table row ViT-B-16 "
                                  "embed_images h200) by the ratio of forward FLOPs")
    finetune = rate_for("ViT-L-14-quickgelu", "finetune_model", "h200")  # derived from an extrapolated rate
    assert finetune.basis == "derived" and finetune.images_per_s == pytest.approx(1756 * 0.333)
    assert finetune.origin.startswith("embed_images x 0.333, where embed_images is extrapolated from ViT-L-14")
    assert finetune.rows == (("*", "finetune_model", "h200"), ("ViT-L-14", "embed_images", "h200"))
    with pytest.raises(UserError, match="no rate for rule embed_images on tpu"):
        rate_for("ViT-B-16", "embed_images", "tpu")


def test_the_rates_table_is_checked(tmp_path):
    table = tmp_path / "rates.csv"
    table.write_text("arch,rule,device\nx,y,z\n")
    with pytest.raises(UserError, match="must have the columns"):
        load_rates(str(table))
    assert all(row["command"] and row["date"] for row in load_rates().values() if row["basis"] == "measured")


def _cost(jobid: int, seconds: float, gpus: int = 1, inputs=(), outputs=()) -> JobCost:
    job = PlannedJob("embed_images", jobid, resources={"gpu": str(gpus)} if gpus else {}, inputs=inputs, outputs=outputs)
    rate = Rate(1.0, 0.0, "measured", "test")
    return JobCost(job, "*", "h200" if gpus else "cpu", Work(int(seconds * max(gpus, 1)), ""), rate, seconds)


def test_wall_time_keeps_the_dags_order_and_counts_gpus():
    # a 4-GPU fine-tune (10 s) feeds two 1-GPU jobs (3 s, 5 s); an independent 1-GPU job of 6 s
    jobs = [_cost(1, 10, gpus=4, outputs=("m",)), _cost(2, 3, inputs=("m",)), _cost(3, 5, inputs=("m",)), _cost(4, 6)]
    # on 4 GPUs the fine-tune starts first (longest chain, 15 s), then 6, 5 and 3 run side by side: 10 + 6
    assert wall_seconds(jobs, gpus=4, cores=1) == 16
    # on 2 GPUs the fine-tune takes both for twice as long (20 s); then jobs 4 and 3 side by side, and
    # job 2 on the GPU job 3 frees at 25 s: 20 + 5 + 3
    assert wall_seconds(jobs, gpus=2, cores=1) == 20 + 5 + 3
    cpu = [_cost(1, 4, gpus=0), _cost(2, 4, gpus=0), _cost(3, 4, gpus=0)]
    assert wall_seconds(cpu, gpus=1, cores=2) == 8


def test_the_command_prints_rules_totals_and_where_each_rate_comes_from(tmp_path, capsys):
    """The paper's study with ViT-B/32 instead of ViT-B/16: its rates are extrapolated, and say from what."""
    from overspec.cli import main

    config = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    config["backbones"]["ViT-B-16"]["arch"] = "ViT-B-32-quickgelu"
    changed = tmp_path / "b32.yaml"
    changed.write_text(yaml.safe_dump(config))
    assert main(["estimate", "--configfile", str(changed), "--gpus", "4", "--snakefile", str(ROOT / "Snakefile"),
                 "--directory", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "406 jobs" in out and "finetune_model" in out and "GPU-hours" in out
    lines = [line for line in out.splitlines() if "embed_images ViT-B-32-quickgelu on h200" in line]
    assert len(lines) == 1 and "[extrapolated] extrapolated from ViT-B-16 (6,185 images/s" in lines[0]
