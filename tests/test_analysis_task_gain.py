"""Own-task gain of each fine-tune with a paired bootstrap interval: FR pair accuracy, MAD mean D-EER and PAD
HTER recomputed from the scores files exactly as the evaluation jobs report them, signs, pairing, and clean
errors on mismatched or stale scores."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from overspec.analysis.task_gain import (
    TASK_GAIN_COLUMNS,
    pair_accuracy,
    read_task_gain,
    stratified_weights,
    task_gain_markdown,
    task_gain_table,
)
from overspec.evaluate.attack_detection import evaluate_mad, evaluate_pad
from overspec.evaluate.biometric_io import write_biometric_result
from overspec.evaluate.face_verification import evaluate_pair_embeddings
from overspec.errors import UserError
from overspec.metrics import kfold_verification_accuracy

MODELS = {
    "base": {"backbone_label": "toy-S", "adaptation": "none"},
    "fr": {"backbone_label": "toy-S", "adaptation": "fr"},
    "mad": {"backbone_label": "toy-S", "adaptation": "mad"},
    "pad": {"backbone_label": "toy-S", "adaptation": "pad"},
}


def _write(root, model, task, benchmark, evaluated):
    result, scores = evaluated
    path = root / "biometrics" / model / task / f"{benchmark}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_biometric_result(path, result, scores)
    return path


def _pair_embeddings(rng, n_pairs, noise):
    """Genuine pairs are a face plus noise, impostors two faces; more noise = worse model."""
    same = np.arange(n_pairs) % 2 == 0
    faces = rng.normal(size=(n_pairs, 16))
    other = np.where(same[:, None], faces, rng.normal(size=(n_pairs, 16)))
    second = other + noise * rng.normal(size=(n_pairs, 16))
    embeddings = np.empty((2 * n_pairs, 16), dtype=np.float32)
    embeddings[0::2], embeddings[1::2] = faces, second
    return embeddings, same


def _attack_frame(rng, ids, label, shift):
    return pd.DataFrame({"id": ids, "label": label, "score": rng.normal(shift, 1.0, len(ids))})


def _mad(rng, separation):
    bona = _attack_frame(rng, [f"bf/{i}" for i in range(80)], 1, separation)
    return {m: pd.concat([bona, _attack_frame(rng, [f"{m}/{i}" for i in range(60)], 0, 0.0)]) for m in ("ubo", "mip")}


def _pad_frames(rng, separation, n_videos=60):
    rows = []
    for v in range(n_videos):
        label = v % 2
        for f in range(3):
            rows.append({"id": f"v{v}/f{f}", "video_id": f"v{v}", "label": label, "attack_type": "" if label else "print",
                         "score": rng.normal(separation * label, 1.0)})
    return pd.DataFrame(rows)


def test_pair_accuracy_with_unit_weights_is_insightface_grid_accuracy():
    rng = np.random.default_rng(0)
    embeddings, same = _pair_embeddings(rng, 600, 1.2)
    e1, e2 = embeddings[0::2], embeddings[1::2]
    grid = kfold_verification_accuracy(e1, e2, same, n_folds=10, method="grid")
    _, scores = evaluate_pair_embeddings(embeddings, same, "pairs")
    ours = pair_accuracy(scores.squared_l2.to_numpy(), same, scores.fold.to_numpy(), np.ones((1, same.size)))
    assert ours[0] == pytest.approx(grid.mean, abs=1 / 60)  # the CSV's float64 distances may flip one pair
    # a weight of 2 on every pair changes nothing; a weight of 0 drops a pair
    assert pair_accuracy(scores.squared_l2.to_numpy(), same, scores.fold.to_numpy(), 2 * np.ones((1, same.size)))[0] \
        == pytest.approx(ours[0])


def test_stratified_weights_resample_within_each_stratum_reproducibly():
    strata = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    chunks = list(stratified_weights(strata, 150, [3, 4], rows=64))
    weights = np.concatenate(chunks)
    assert [c.shape[0] for c in chunks] == [64, 64, 22] and weights.shape == (150, 10)
    for value, size in ((0, 3), (1, 2), (2, 5)):
        assert (weights[:, strata == value].sum(axis=1) == size).all()
    again = np.concatenate(list(stratified_weights(strata, 150, [3, 4], rows=7)))
    assert np.array_equal(weights, again)  # the chunking does not change the draws
    assert weights.std() > 0


@pytest.fixture()
def study(tmp_path):
    """FR: the fine-tune's genuine pairs are tighter; MAD and PAD: the fine-tunes separate better."""
    rng = np.random.default_rng(1)
    base_emb, same = _pair_embeddings(rng, 400, 1.6)
    fr_emb, _ = _pair_embeddings(np.random.default_rng(1), 400, 0.6)
    paths = [
        _write(tmp_path, "base", "fr", "lfw", evaluate_pair_embeddings(base_emb, same, "lfw")),
        _write(tmp_path, "fr", "fr", "lfw", evaluate_pair_embeddings(fr_emb, same, "lfw")),
        _write(tmp_path, "base", "mad", "morphs", evaluate_mad(_mad(np.random.default_rng(2), 0.3), "morphs")),
        _write(tmp_path, "mad", "mad", "morphs", evaluate_mad(_mad(np.random.default_rng(2), 2.5), "morphs")),
    ]
    dev = _pad_frames(np.random.default_rng(3), 1.0)
    paths += [
        _write(tmp_path, "base", "pad", "spoof", evaluate_pad(_pad_frames(np.random.default_rng(4), 0.2), dev, "spoof")),
        _write(tmp_path, "pad", "pad", "spoof", evaluate_pad(_pad_frames(np.random.default_rng(4), 3.0), dev, "spoof")),
    ]
    return tmp_path, paths


def test_every_fine_tune_is_scored_against_its_baseline(study):
    _, paths = study
    pairs = {"fr": "base", "mad": "base", "pad": "base"}
    table = task_gain_table(paths, pairs, MODELS, resamples=200, seed=0)
    assert list(table.columns) == list(TASK_GAIN_COLUMNS)
    rows = table.set_index("model")
    result = {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text()) for p in paths}
    fr = rows.loc["fr"]
    assert (fr.model_value, fr.baseline_value) == (result["fr/fr"]["accuracy"], result["base/fr"]["accuracy"])
    assert fr.gain == pytest.approx(fr.model_value - fr.baseline_value) and fr.gain > 0.1
    mad = rows.loc["mad"]  # lower D-EER is better: the gain is baseline minus fine-tune
    assert mad.model_value == result["mad/mad"]["mean_over_subsets"]["d_eer"]
    assert mad.gain == pytest.approx(mad.baseline_value - mad.model_value) and mad.metric == "mean D-EER"
    pad = rows.loc["pad"]
    assert pad.model_value == result["pad/pad"]["hter"] and pad.gain == pytest.approx(pad.baseline_value - pad.model_value)
    for row in (fr, mad, pad):
        assert row.significant and row.ci_low > 0 and row.ci_low <= row.gain <= row.ci_high


def test_identical_scores_give_no_gain(study):
    tmp_path, paths = study
    for task, bench in (("fr", "lfw"), ("mad", "morphs")):
        src, dst = tmp_path / "biometrics" / "base" / task, tmp_path / "biometrics" / "copy" / task
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.glob(f"{bench}*"):
            shutil.copy(f, dst / f.name)
        paths.append(dst / f"{bench}.json")
    table = task_gain_table([p for p in paths if "copy" in str(p) or "/base/" in str(p)],
                            {"copy": "base"}, {**MODELS, "copy": MODELS["fr"]}, resamples=100, seed=0)
    row = table.iloc[0]
    assert (row.gain, row.ci_low, row.ci_high, row.p_value, bool(row.significant)) == (0.0, 0.0, 0.0, 1.0, False)


def test_markdown_and_round_trip(study, tmp_path):
    _, paths = study
    table = task_gain_table(paths, {"mad": "base"}, MODELS, resamples=50, seed=0)
    text = task_gain_markdown(table)
    assert "| mad " in text and "*" in text
    table.to_csv(tmp_path / "task_gain.csv", index=False)
    back = read_task_gain(tmp_path / "task_gain.csv")
    assert back.significant.dtype == bool and back.significant.all()


def test_scores_of_other_samples_are_refused(study):
    tmp_path, paths = study
    scores = tmp_path / "biometrics" / "pad" / "pad" / "spoof.scores.csv"
    frame = pd.read_csv(scores)
    frame.loc[frame.video_id == "v0", "video_id"] = "v999"
    frame.to_csv(scores, index=False)
    with pytest.raises(UserError, match="differ from its recorded digest"):
        task_gain_table(paths, {"pad": "base"}, MODELS, resamples=20, seed=0)
    json_path = scores.with_name("spoof.json")
    record = json.loads(json_path.read_text())
    record["scores_file"]["sha256"] = hashlib.sha256(scores.read_bytes()).hexdigest()
    json_path.write_text(json.dumps(record))
    with pytest.raises(UserError, match="do not list the same video_id/label"):
        task_gain_table(paths, {"pad": "base"}, MODELS, resamples=20, seed=0)


def test_a_missing_baseline_result_is_named(study):
    _, paths = study
    with pytest.raises(UserError, match="baseline 'base' of 'mad' lacks mad results for morphs"):
        task_gain_table([p for p in paths if "base/mad" not in str(p)], {"mad": "base"}, MODELS,
                        resamples=20, seed=0)
