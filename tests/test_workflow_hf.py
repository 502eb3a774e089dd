"""Your own fine-tune in the toy world: a base and its fine-tunes saved as Hugging Face files (a
transformers CLIPModel folder, a PEFT LoRA adapter on the baseline) are imported by the workflow,
evaluated and summarised as GELO; the imported models give transformers' / PEFT's own features."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

pytest.importorskip("transformers")
pytest.importorskip("peft")

from _hf_fixtures import ATTENTION_AND_MLP, TOY_S_SHAPE, hf_clip, hf_features, peft_lora, probe_inputs, save_hf_clip  # noqa: E402
from overspec.models.checkpoint import load_model  # noqa: E402
from overspec.models.factory import get_tokenizer  # noqa: E402
from workflow_helpers import executed_jobs, snakemake  # noqa: E402

pytestmark = pytest.mark.slow


def test_your_fine_tune_from_hugging_face_files_runs_end_to_end(tmp_path):
    data = tmp_path / "data"
    # QuickGELU at the toy-clip-s shape: an architecture open_clip has no config for, so every job
    # rebuilds it from the config its model card carries
    base = save_hf_clip(data / "base_hf", TOY_S_SHAPE, "quick_gelu", seed=0)
    finetune = save_hf_clip(data / "my_finetune", TOY_S_SHAPE, "quick_gelu", seed=1)
    lora_merged = peft_lora(hf_clip(TOY_S_SHAPE, "quick_gelu", seed=0), data / "my_lora", ATTENTION_AND_MLP).merge_and_unload().eval()
    config = {
        "seed": 0,
        "data_root": str(data),
        # no arch: read from the checkpoint's config
        "backbones": {"toy-hf": {"source": "open_clip", "pretrained": str(data / "base_hf"), "label": "toy-HF"}},
        "models": {"base": {"backbone": "toy-hf"},
                   "mine-hf": {"backbone": "toy-hf", "adaptation": "fr", "import": {"checkpoint": "my_finetune"}},
                   "mine-lora": {"backbone": "toy-hf", "adaptation": "fr", "import": {"adapter": "my_lora"}}},
        "datasets": {"general": ["toy_colours"]},
        "evaluation": {"bootstrap_resamples": 20, "linear_probe": {"c_grid": [0.1, 10.0]}},
        "analyses": {"drift": {"enabled": False}, "significance": {"enabled": False}},
    }
    path = tmp_path / "your_model.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    work = tmp_path / "work"
    result = snakemake(work, "results/tables/gelo.csv", config=path)  # the GELO table; figures and report are tested elsewhere
    jobs = executed_jobs(result)
    assert jobs == {"import_model": 1, "import_published_model": 2, "digest_model": 3, "prepare_dataset": 1,
                    "embed_images": 3, "eval_zeroshot": 3, "fit_linear_probe": 3, "aggregate_tables": 1}

    models = work / "results" / "models"
    for name, reference in (("base", base), ("mine-hf", finetune), ("mine-lora", lora_merged)):
        loaded = load_model(models / name / "model.safetensors")
        assert loaded.arch.startswith("hf-clip-") and loaded.card["architecture"]["model_config"]["quick_gelu"]
        images, tokens = probe_inputs(get_tokenizer(loaded.arch))
        with torch.no_grad():
            got = loaded.model.encode_image(images), loaded.model.encode_text(tokens)
        for mine, theirs in zip(got, hf_features(reference, images, tokens), strict=True):
            assert (mine - theirs).abs().max().item() <= 1e-5, name
    lora_card = load_model(models / "mine-lora" / "model.safetensors").card
    assert lora_card["source"]["kind"] == "overspec_model" and lora_card["adapter"]["target_modules"] == sorted(ATTENTION_AND_MLP)

    gelo = pd.read_csv(work / "results" / "tables" / "gelo.csv")
    assert set(gelo.model) == {"base", "mine-hf", "mine-lora"}
    assert (gelo[gelo.model == "base"].gelo == 1.0).all() and gelo.gelo.notna().all()
