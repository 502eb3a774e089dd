"""The workflow end to end on the reduced toy config: it runs, writes the tables, and a second run
has nothing to do. One run is shared by the module's tests (it takes a minute or two)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from workflow_helpers import ROOT, executed_jobs, planned_jobs, snakemake

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
    assert set(prov["inputs"]) == {"test", "text", "manifest"}
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
    assert executed_jobs(result) == {"digest_model": 1}, result.stdout[-3000:]


def test_touched_script_reruns_nothing(study):
    workdir, _ = study
    script = ROOT / "workflow_scripts" / "eval_zeroshot.py"
    script.touch()
    assert planned_jobs(workdir) == {}
