"""WiSE-FT in the workflow (dry runs on the tiny config): an interpolated model is an ordinary model
with its own digest, embeddings and evaluations, made from both parents' files and digests."""

from __future__ import annotations

import re

import pytest
import yaml

from workflow_helpers import TINY, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """One dry run of the tiny study with WiSE-FT at 0, 0.5, 1: its job listing and job counts."""
    folder = tmp_path_factory.mktemp("wiseft")
    config = yaml.safe_load(TINY.read_text())
    config["analyses"] = {"wiseft": {"enabled": True, "alphas": [0.0, 0.5, 1.0]}}
    path = folder / "tiny_wiseft.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(folder / "work", "-n", config=path)
    text = result.stdout + result.stderr
    table = text.split("Job stats:")[1].split("total")[0]
    return text, {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_an_interpolated_model_gets_every_job_a_model_gets(plan):
    _, jobs = plan
    # alpha 0 is the baseline and 1 the fine-tune (FR): one new model, clip-toy-s-fr-wise050, beside
    # the tiny study's two; every per-model and per-(model, dataset) job exists three times
    assert jobs["interpolate_model"] == 1 and jobs["wiseft_curve"] == 1 and jobs["finetune_model"] == 1
    assert jobs["digest_model"] == 3 and jobs["eval_face_verification"] == 3 and jobs["eval_ijb"] == 3
    assert jobs["embed_images"] == jobs["eval_zeroshot"] == jobs["fit_linear_probe"] == 3 * 2  # two datasets
    assert jobs["eval_attack_detection"] == 3 * 2  # MAD and PAD


def _job_inputs(text: str, rule: str, output: str) -> list[str]:
    """The input files of the planned job of `rule` writing `output`, from a dry run's job listing."""
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:\n)", text):
        if block.lstrip().startswith((f"rule {rule}:", f"checkpoint {rule}:")) and output in block:
            line = re.search(r"^\s*input: (.*)$", block, re.M).group(1)
            return [p.strip() for p in line.split(",")]
    raise AssertionError(f"no planned {rule} job writes {output}")


def test_interpolated_model_reads_both_parents_and_its_digest_lists_both(plan):
    text, _ = plan
    model = "results/models/clip-toy-s-fr-wise050/model.safetensors"
    assert set(_job_inputs(text, "interpolate_model", model)) == {
        "results/models/clip-toy-s/model.safetensors", "results/models/clip-toy-s/model.sha256",
        "results/models/clip-toy-s-fr/model.safetensors", "results/models/clip-toy-s-fr/model.sha256"}
    assert set(_job_inputs(text, "digest_model", "results/models/clip-toy-s-fr-wise050/model.sha256")) == {
        model, "results/models/clip-toy-s/model.sha256", "results/models/clip-toy-s-fr/model.sha256"}
    assert "results/analysis/wiseft/curve.csv" in text
