"""The mitigation overlay in the workflow (a dry run of config.yaml + configs/mitigation.yaml): every
remedy model is planned and evaluated like the default study's models, and the table is a target."""

from __future__ import annotations

import pytest

from workflow_helpers import ROOT, planned_jobs

pytestmark = pytest.mark.slow


def test_the_mitigation_overlay_dry_runs_with_every_model_evaluated(tmp_path):
    """configs/mitigation.yaml over config.yaml: 16 models beside the default study's 8, each evaluated
    like them, one mitigation table (the job count the README quotes)."""
    jobs = planned_jobs(tmp_path, config=[ROOT / "config.yaml", ROOT / "configs" / "mitigation.yaml"])
    assert jobs["finetune_model"] == 6 + 12 and jobs["interpolate_model"] == 4
    assert jobs["digest_model"] == 24 and jobs["eval_face_verification"] == 24
    assert jobs["embed_images"] == jobs["eval_zeroshot"] == jobs["fit_linear_probe"] == 24 * 5
    assert jobs["mitigation_table"] == 1 and jobs["wiseft_curve"] == 1
    assert sum(jobs.values()) == 521
