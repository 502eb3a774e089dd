"""configs/paper.yaml run end to end, as a user runs it, on a miniature data root in the real layout of
every dataset and benchmark it names (`_paper_root`), changing only data_root, the backbones (a small
open_clip architecture from a local weights file), the recipes' steps (count and batch size) and the
biometric benchmark names. Every job of the plan must run."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
import yaml

from _paper_root import IJB_SETS, PAIR_SETS, paper_config, write_paper_root
from workflow_helpers import executed_jobs, planned_jobs, snakemake

pytestmark = pytest.mark.slow

MODELS = ("clip-vit-b16", "clip-vit-l14", "clip-vit-b16-fr", "clip-vit-l14-fr", "clip-vit-b16-mad",
          "clip-vit-l14-mad", "clip-vit-b16-pad", "clip-vit-l14-pad")


def test_paper_configuration_runs_every_job_on_miniatures_of_the_real_layouts(tmp_path):
    data, weights = write_paper_root(tmp_path)
    config = paper_config(data, weights)
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    work = tmp_path / "work"
    planned = planned_jobs(work, config=path)
    assert planned["embed_images"] == len(MODELS) * 14 and planned["finetune_model"] == 6
    start = time.monotonic()
    result = snakemake(work, config=path, timeout=3600)
    seconds = time.monotonic() - start
    ran = executed_jobs(result)
    print(f"paper configuration on the miniature root: {sum(ran.values())} jobs in {seconds:.0f} s")
    assert ran == planned

    results = work / "results"
    gelo = pd.read_csv(results / "tables" / "gelo.csv")
    assert set(gelo["model"]) == set(MODELS)
    for model in MODELS:
        for name in PAIR_SETS:
            assert json.loads((results / "biometrics" / model / "fr" / f"{name}.json").read_text())["n_pairs"] > 0
        for name in IJB_SETS:
            assert (results / "biometrics" / model / "fr" / f"{name}.json").is_file()
        mad = json.loads((results / "biometrics" / model / "mad" / "syn_mad22.json").read_text())
        assert set(mad["subsets"]) == set(config["biometrics"]["mad"]["tests"])
        assert (results / "biometrics" / model / "pad" / "celeba_spoof.json").is_file()
    card = json.loads((results / "data" / "sun397" / "manifest.json").read_text())
    assert card["classes"][card["options"]["reader_classes"].index("jail/indoor")] == "jail indoor"
    assert (results / "summary.md").is_file() and (results / "audit" / "manifest.json").is_file()
