"""MAD and PAD protocols on hand-computed score fixtures; the logistic probe; result files."""

import json

import numpy as np
import pandas as pd
import pytest

from overspec.errors import UserError
from overspec.evaluate.attack_detection import (
    evaluate_mad,
    evaluate_pad,
    fit_probe,
    probe_bona_fide_scores,
    video_scores,
)
from overspec.evaluate.biometric_io import scores_path, write_biometric_result
from overspec.metrics import hter_at_oracle_threshold

BONA_FIDE = {"b1": 0.9, "b2": 0.8, "b3": 0.7, "b4": 0.6}


def _subset(attacks):
    ids = list(BONA_FIDE) + [f"m{k}" for k in range(len(attacks))]
    return pd.DataFrame({"id": ids, "label": [1] * 4 + [0] * len(attacks), "score": list(BONA_FIDE.values()) + attacks})


def test_mad_per_method_metrics_and_their_mean():
    subsets = {"separable": _subset([0.1, 0.2, 0.3]), "hard": _subset([0.65, 0.2, 0.95])}
    result, table = evaluate_mad(subsets, "toy_mad")
    easy, hard = result["subsets"]["separable"], result["subsets"]["hard"]
    assert result["n_bona_fide"] == 4 and hard["n_bona_fide"] == 4 and hard["n_attack"] == 3
    assert easy["d_eer"] == 0.0 and easy["auc"] == 1.0
    # hard: FAR stays 1/3 while FRR falls from 1/2 to 1/4 -> the crossing is at 1/3
    assert hard["d_eer"] == pytest.approx(1 / 3)
    assert hard["auc"] == pytest.approx(7 / 12)
    # APCER <= 1% (no attack accepted) needs a threshold above 0.95: every bona fide is rejected
    assert [p["bpcer"] for p in hard["bpcer_at_apcer"]] == [1.0, 1.0, 1.0]
    # BPCER <= 20% of 4 allows 0 rejects: threshold 0.6 accepts attacks 0.65 and 0.95
    assert hard["apcer_at_bpcer"][2]["apcer"] == pytest.approx(2 / 3)
    assert result["mean_over_subsets"]["d_eer"] == pytest.approx(1 / 6)
    assert result["mean_over_subsets"]["auc"] == pytest.approx((1 + 7 / 12) / 2)
    assert table.columns.tolist() == ["subset", "id", "label", "score"] and len(table) == 14


def test_mad_refuses_duplicates_and_mismatched_bona_fides():
    padded = pd.concat([_subset([0.1, 0.2]), _subset([0.1, 0.2]).iloc[:1]])  # a padded sampler repeats b1
    with pytest.raises(UserError, match="scored twice"):
        evaluate_mad({"x": padded}, "toy_mad")
    other = _subset([0.1]).iloc[1:]
    with pytest.raises(UserError, match="different bona fide sets"):
        evaluate_mad({"a": _subset([0.1]), "b": other}, "toy_mad")


def _frames(videos):
    rows = []
    for video, (label, kind, scores) in videos.items():
        rows += [{"id": f"{video}_{k}", "video_id": video, "label": label, "attack_type": kind, "score": s}
                 for k, s in enumerate(scores)]
    return pd.DataFrame(rows)


TEST = {"v1": (1, "", [0.875, 0.625]), "v2": (1, "", [0.625, 0.375]),
        "v3": (0, "print", [0.25, 0.125]), "v4": (0, "replay", [0.75, 0.5])}
DEV = {"d1": (1, "", [0.875]), "d2": (1, "", [0.75]), "d3": (0, "print", [0.375]), "d4": (0, "replay", [0.25])}


def test_pad_video_means_dev_threshold_and_oracle():
    videos = video_scores(_frames(TEST))
    assert videos["score"].tolist() == [0.75, 0.5, 0.1875, 0.625] and videos["n_frames"].tolist() == [2] * 4
    result, frames = evaluate_pad(_frames(TEST), _frames(DEV), "toy_pad")
    assert result["n_videos"] == 4 and result["n_frames"] == 8
    assert result["dev_threshold"] == 0.75  # the dev sets' FAR = FRR = 0 point
    # at >= 0.75: v1 accepted, v2 rejected (BPCER 1/2); attacks 0.1875, 0.625 rejected
    assert result["bpcer"] == 0.5 and result["apcer"] == 0.0 and result["hter"] == 0.25
    assert result["apcer_per_type"] == {"print": 0.0, "replay": 0.0}
    assert result["auc"] == 0.75
    oracle = hter_at_oracle_threshold(np.array([0.75, 0.5]), np.array([0.1875, 0.625]))
    assert result["oracle_hter"]["hter"] == oracle.hter
    assert frames["video_score"].tolist()[:2] == [0.75, 0.75]
    no_dev, _ = evaluate_pad(_frames(TEST), None, "toy_pad")
    assert "hter" not in no_dev and no_dev["primary_metric"] == "auc"


def test_pad_refuses_double_scored_frames():
    frames = _frames(TEST)
    with pytest.raises(UserError, match="scored twice"):
        evaluate_pad(pd.concat([frames, frames.iloc[:1]]), None, "toy_pad")


def test_probe_separates_separable_embeddings():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 8))
    labels = (features[:, 0] > 0).astype(int)
    probe = fit_probe(features, labels)
    test = rng.normal(size=(100, 8))
    scores = probe_bona_fide_scores(probe, test)
    truth = test[:, 0] > 0
    assert scores.shape == (100,) and ((scores > 0.5) == truth).mean() > 0.95
    with pytest.raises(UserError, match="both bona fide and attack"):
        fit_probe(features, np.ones(200))


def test_result_json_names_its_scores_csv(tmp_path):
    result, frames = evaluate_pad(_frames(TEST), _frames(DEV), "toy_pad")
    json_path = tmp_path / "pad" / "toy_pad.json"
    record = write_biometric_result(json_path, result, frames, provenance={"rule": "eval_attack_detection"})
    assert scores_path(json_path).name == "toy_pad.scores.csv"
    written = json.loads(json_path.read_text())
    assert written["scores_file"]["path"] == "toy_pad.scores.csv" and written["scores_file"]["rows"] == 8
    assert written["provenance"]["rule"] == "eval_attack_detection" and written == record
    back = pd.read_csv(scores_path(json_path))
    assert back["score"].tolist() == frames["score"].tolist()
    first = scores_path(json_path).read_bytes()
    write_biometric_result(json_path, result, frames)
    assert scores_path(json_path).read_bytes() == first  # byte-identical rewrite


def test_compressed_scores_are_byte_identical_across_writes(tmp_path):
    table = pd.DataFrame({"template1": [1, 2], "template2": [3, 4], "label": [1, 0], "score": [0.25, -0.125]})
    for name in ("a", "b"):
        write_biometric_result(tmp_path / name / "ijbc.json", {"benchmark": "ijbc"}, table, compress=True)
    a, b = (tmp_path / d / "ijbc.scores.csv.gz" for d in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    assert pd.read_csv(a).equals(table)
    assert json.loads((tmp_path / "a" / "ijbc.json").read_text())["scores_file"]["path"] == "ijbc.scores.csv.gz"
