"""Biometric result JSONs become metrics rows in the names of the paper's Table C."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from overspec.evaluate.attack_detection import evaluate_mad, evaluate_pad
from overspec.evaluate.biometric_io import write_biometric_result
from overspec.evaluate.face_verification import evaluate_pair_embeddings
from overspec.evaluate.ijb import evaluate_ijb_features
from overspec.data.biometric.ijb import IJBMeta
from overspec.report.aggregate import biometric_rows, collect_metrics
from overspec.report.names import canonical_metric
from overspec.report.schema import METRICS_COLUMNS, add_dataset_average, check_metrics

MODEL = {"model": "m-mad", "backbone_label": "toy-S", "adaptation": "mad"}


def _mad_result():
    bona_fide = pd.DataFrame({"id": ["b0", "b1", "b2", "b3"], "label": 1, "score": [0.9, 0.8, 0.7, 0.2]})
    subsets = {
        "opencv": pd.concat([bona_fide, pd.DataFrame({"id": ["o0", "o1"], "label": 0, "score": [0.1, 0.75]})]),
        "webmorph": pd.concat([bona_fide, pd.DataFrame({"id": ["w0", "w1"], "label": 0, "score": [0.05, 0.1]})]),
    }
    result, _ = evaluate_mad(subsets, "suite")
    return {**result, "model": "m-mad", "benchmark": "suite"}


def test_mad_rows_per_subset_and_their_average():
    result = _mad_result()
    rows = pd.DataFrame(biometric_rows(result, MODEL))
    assert set(rows.protocol) == {"mad"} and set(rows.dataset) == {"opencv", "webmorph", "average"}
    metrics = {"eer", "auc", "apcer@bpcer=0.01", "apcer@bpcer=0.1", "apcer@bpcer=0.2",
               "bpcer@apcer=0.01", "bpcer@apcer=0.1", "bpcer@apcer=0.2"}
    assert set(rows.metric) == metrics and all(canonical_metric(m) == m for m in metrics)
    value = {(r.dataset, r.metric): r.value for r in rows.itertuples()}
    # webmorph: both morphs (0.05, 0.1) score below the lowest bona fide (0.2) -> D-EER 0, AUC 1
    assert value[("webmorph", "eer")] == 0.0 and value[("webmorph", "auc")] == 1.0
    assert value[("opencv", "eer")] == result["subsets"]["opencv"]["d_eer"] > 0
    # AUC of opencv: of 8 bona fide/morph pairs, 6 are ordered right (morph 0.75 beats 0.7 and 0.2)
    assert value[("opencv", "auc")] == pytest.approx(6 / 8)
    for metric in metrics:
        assert value[("average", metric)] == pytest.approx((value[("opencv", metric)] + value[("webmorph", metric)]) / 2)
    assert rows[rows.dataset == "opencv"].n.unique().tolist() == [6]
    # the report's own average (used when a writer gives none) agrees with the one written
    without = check_metrics(rows[rows.dataset != "average"])
    recomputed = add_dataset_average(without, "mad")
    mine = recomputed[recomputed.dataset == "average"].set_index("metric").value
    assert all(mine[m] == pytest.approx(value[("average", m)]) for m in metrics)


def test_pad_rows_hter_at_dev_threshold_oracle_hter_and_auc():
    frames = pd.DataFrame({"id": [f"f{i}" for i in range(8)], "video_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
                           "label": [1, 1, 1, 1, 0, 0, 0, 0], "attack_type": ["", "", "", "", "print", "print", "replay", "replay"],
                           "score": [0.9, 0.7, 0.6, 0.4, 0.55, 0.45, 0.1, 0.2]})
    result, _ = evaluate_pad(frames, frames, "target")
    rows = {r["metric"]: r for r in biometric_rows({**result, "model": "m-mad", "benchmark": "target"}, MODEL)}
    assert set(rows) == {"hter", "hter_oracle", "auc"}
    # videos: bona fide 0.8, 0.5; attacks 0.5, 0.15 -> one tie: AUC = (3 + 0.5) / 4
    assert rows["auc"]["value"] == pytest.approx(3.5 / 4) and rows["auc"]["n"] == 4
    assert rows["hter"]["value"] == result["hter"] and rows["hter_oracle"]["value"] == result["oracle_hter"]["hter"]
    result_no_dev, _ = evaluate_pad(frames, None, "target")
    assert {r["metric"] for r in biometric_rows({**result_no_dev, "model": "m", "benchmark": "t"}, MODEL)} == {"hter_oracle", "auc"}


def test_fr_rows_accuracy_and_tar_at_far():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 8))
    emb[1::2] = emb[0::2] + 0.1 * rng.normal(size=(20, 8))
    same = np.ones(20, bool)
    same[10:] = False
    emb[21::2] = rng.normal(size=(10, 8))
    result, _ = evaluate_pair_embeddings(emb, same, "lfw")
    (row,) = biometric_rows({**result, "model": "m-mad", "benchmark": "lfw"}, MODEL)
    assert (row["protocol"], row["dataset"], row["metric"], row["value"], row["n"]) == ("face_verification", "lfw", "accuracy", result["accuracy"], 20)

    meta = IJBMeta(name="ijbc", root=".", image_names=np.array(["a", "b", "c", "d"]), templates=np.array([1, 2, 3, 4]),
                   medias=np.array([1, 2, 3, 4]), landmarks=np.zeros((4, 5, 2), np.float32), faceness=np.ones(4, np.float32),
                   pair_templates=np.array([[1, 2], [3, 4], [1, 3]]), pair_labels=np.array([1, 1, 0], np.int8))
    features = np.array([[1.0, 0], [1, 0.1], [0, 1], [0.1, 1]])
    result, _ = evaluate_ijb_features(meta, features)
    rows = biometric_rows({**result, "model": "m-mad", "benchmark": "ijbc"}, MODEL)
    assert [r["metric"] for r in rows] == ["tar@far=1e-06", "tar@far=1e-05", "tar@far=0.0001", "tar@far=0.001",
                                           "tar@far=0.01", "tar@far=0.1"]
    assert all(r["value"] == 1.0 and r["protocol"] == "ijb" and r["n"] == 3 for r in rows)


def test_collect_metrics_reads_general_and_biometric_files(tmp_path):
    result = _mad_result()
    path = tmp_path / "suite.json"
    write_biometric_result(path, result, pd.DataFrame({"id": ["x"], "label": [1], "score": [0.5]}))
    general = tmp_path / "zs.json"
    general.write_text('{"protocol": "zeroshot", "model": "m-mad", "dataset": "toy_colours", "n": 10, "top1": 0.5, '
                       '"top5": 1.0, "mean_per_class_recall": 0.5, "primary": 0.5}')
    frame = collect_metrics([general, path], {"m-mad": MODEL})
    assert list(frame.columns) == list(METRICS_COLUMNS)
    assert set(frame.protocol) == {"zeroshot", "mad"} and len(check_metrics(frame)) == len(frame)
