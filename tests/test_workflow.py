"""The workflow end to end on the reduced toy config: it runs, writes the tables, and a second run
has nothing to do. One run is shared by the module's tests (it takes a minute or two)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from workflow_helpers import ROOT, TINY, executed_jobs, planned_jobs, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    result = snakemake(workdir)
    return workdir, result


def test_study_writes_the_tables(study):
    workdir, _ = study
    metrics = pd.read_csv(workdir / "results" / "tables" / "metrics.csv")
    assert list(metrics.columns) == ["model", "backbone", "adaptation", "protocol", "dataset", "metric", "value", "n"]
    primary = metrics[metrics.metric == "primary"]
    assert set(primary.protocol) == {"zeroshot", "linear_probe"}
    assert set(primary.dataset) == {"toy_colours", "toy_digits"}
    assert primary.value.between(0, 1).all() and (primary.n > 0).all()
    gelo = pd.read_csv(workdir / "results" / "tables" / "gelo.csv")
    assert list(gelo.columns) == ["model", "backbone", "adaptation", "protocol", "avg_baseline", "avg_model", "gelo"]
    for name in ("metrics.md", "gelo.md"):
        assert (workdir / "results" / "tables" / name).read_text().startswith("#")


def test_results_carry_provenance(study):
    workdir, _ = study
    import json

    result = json.loads((workdir / "results" / "zeroshot" / "clip-toy-s" / "toy_colours.json").read_text())
    prov = result["provenance"]
    assert prov["rule"] == "eval_zeroshot" and len(prov["code"]) == 16
    assert set(prov["inputs"]) == {"embeddings", "text", "manifest", "digests[0]"}
    assert all(len(i["sha256"]) == 64 and not i["path"].startswith("/") for i in prov["inputs"].values())


def test_second_run_has_nothing_to_do(study):
    workdir, _ = study
    assert planned_jobs(workdir) == {}


def test_identical_model_bytes_rerun_nothing_downstream(study, tmp_path):
    workdir, _ = study
    model = workdir / "results" / "models" / "clip-toy-s" / "model.safetensors"
    copy = tmp_path / "model.safetensors"
    shutil.copy2(model, copy)
    shutil.copy(copy, model)  # same bytes, new mtime
    result = snakemake(workdir)
    # every job below a model lists its digest (model_digests() in rules/common.smk): only the digest reruns
    assert executed_jobs(result) == {"digest_model": 1}, result.stdout[-3000:]


def test_touched_script_reruns_nothing(study):
    workdir, _ = study
    script = ROOT / "workflow_scripts" / "eval_zeroshot.py"
    script.touch()
    assert planned_jobs(workdir) == {}


def test_fine_tune_and_biometric_results(study):
    """The FR fine-tune starts from the baseline's exact bytes; every model gets every biometric benchmark."""
    import json

    from overspec.models.checkpoint import read_card

    workdir, _ = study
    results = workdir / "results"
    card = read_card(results / "models" / "clip-toy-s-fr" / "model.safetensors")
    base_digest = (results / "models" / "clip-toy-s" / "model.sha256").read_text().split()[0]
    assert card["base_model"]["sha256"] == base_digest and card["lora_merged"] and card["head"]["type"] == "cosface"
    assert card["training"]["steps"] == 4 and card["provenance"]["rule"] == "finetune_model"
    assert len(pd.read_csv(results / "models" / "clip-toy-s-fr" / "train_log.csv")) == 4

    metrics = pd.read_csv(results / "tables" / "metrics.csv")
    biometric = metrics[metrics.protocol.isin(["face_verification", "ijb", "mad", "pad"])]
    for model in ("clip-toy-s", "clip-toy-s-fr"):
        mine = biometric[biometric.model == model]
        assert set(mine.protocol) == {"face_verification", "ijb", "mad", "pad"}
        assert {"accuracy", "tar@far=0.0001", "eer", "bpcer@apcer=0.1", "hter", "auc"} <= set(mine.metric)
        assert "average" in set(mine[mine.protocol == "mad"].dataset)
    assert biometric.value.between(0, 1).all() and (biometric.n > 0).all()
    for task, benchmark in (("mad", "toy_mad"), ("pad", "toy_pad")):  # neither model was adapted for MAD/PAD
        result = json.loads((results / "biometrics" / "clip-toy-s-fr" / task / f"{benchmark}.json").read_text())
        assert result["scoring"]["method"] == "probe" and (results / "biometrics" / "clip-toy-s-fr" / task /
                                                           f"{benchmark}.scores.csv").is_file()


def test_changing_a_recipe_reruns_that_models_jobs_only(study, tmp_path):
    import yaml

    workdir, _ = study
    config = yaml.safe_load(TINY.read_text())
    config["recipes"]["tiny-fr"]["lr_encoder"] = 0.002
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    assert planned_jobs(workdir, config=changed) == {
        "finetune_model": 1, "digest_model": 1, "embed_images": 2, "eval_zeroshot": 2, "fit_linear_probe": 2,
        "eval_face_verification": 1, "eval_ijb": 1, "eval_attack_detection": 2, "aggregate_tables": 1,
        "audit_manifest": 1, "all": 1,
    }
