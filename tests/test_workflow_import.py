"""A published MAD checkpoint (state dict + binary header, the MADation file layout) goes through
import_published_model and is scored on the toy MAD lists by its own head."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml

from workflow_helpers import executed_jobs, snakemake
from overspec.models.factory import create_model

pytestmark = pytest.mark.slow


def test_published_checkpoint_is_imported_and_scores_with_its_head(tmp_path):
    checkpoints = tmp_path / "data" / "checkpoints"
    checkpoints.mkdir(parents=True)
    model = create_model("toy-clip-s", seed=4)
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, checkpoints / "backbone.pth")  # a DDP save
    gen = torch.Generator().manual_seed(0)
    dim = int(model.visual.output_dim)
    torch.save({"linear.weight": torch.randn(2, dim, generator=gen), "linear.bias": torch.randn(2, generator=gen)},
               checkpoints / "header.pth")
    config = {
        "seed": 0,
        "data_root": str(tmp_path / "data"),
        "backbones": {"toy-s": {"arch": "toy-clip-s", "source": "toy_pretrain"}},
        "models": {"madation-toy": {"backbone": "toy-s", "adaptation": "mad", "import": {
            "checkpoint": "checkpoints/backbone.pth", "head_checkpoint": "checkpoints/header.pth",
            "head": {"type": "binary"}}}},
        "datasets": {"general": []},
        "biometrics": {"source": "toy", "tasks": ["mad"], "batch_size": 32,
                       "toy_sizes": {"mad_train_pairs": 6, "mad_test_pairs": 4, "fr_identities": 2, "fr_images_per_identity": 1,
                                     "pairs_per_fold": 2, "identities_per_fold": 2, "ijb_identities": 2,
                                     "ijb_impostor_pairs": 2, "pad_train_videos": 2, "pad_dev_videos": 2,
                                     "pad_test_videos": 2, "pad_frames": 1}},
    }
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    work = tmp_path / "work"
    result = snakemake(work, config=path)
    assert executed_jobs(result) == {"prepare_biometric_world": 1, "import_published_model": 1, "digest_model": 1,
                                     "eval_attack_detection": 1, "aggregate_tables": 1, "paper_tables": 1,
                                     "plot_figures": 1, "summarize_study": 1, "audit_manifest": 1, "all": 1}
    mad = json.loads((work / "results" / "biometrics" / "madation-toy" / "mad" / "toy_mad.json").read_text())
    assert mad["scoring"]["method"] == "head" and mad["scoring"]["head"]["type"] == "binary"
    assert set(mad["subsets"]) == {"landmark", "pixel", "gan"}
    metrics = pd.read_csv(work / "results" / "tables" / "metrics.csv")
    assert set(metrics.protocol) == {"mad"} and set(metrics.adaptation) == {"mad"}
