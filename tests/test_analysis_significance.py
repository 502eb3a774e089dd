"""The study's significance tables from result files: paired differences and GELO, by hand, against the
GELO table, and clean errors on stale or mismatched predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _analysis_fixtures import MODELS, write_fake_result
from overspec.analysis.significance import DIFFERENCE_COLUMNS, read_significance, run_significance, significance_tables
from overspec.errors import UserError
from overspec.report.gelo import gelo_table

PAIRS = {"tuned": "base"}


@pytest.fixture()
def results(tmp_path):
    """Dataset a: the baseline right on 600 of 1000, the model on 300 (a 30-point drop). Dataset b: the two
    predict identically (right on 3 of 4 per class, mean per-class recall). Linear probe on a only, equal."""
    n = 1000
    labels_a = np.arange(n) % 4
    wrong = (labels_a + 1) % 4
    base_a = np.where(np.arange(n) < 600, labels_a, wrong)
    tuned_a = np.where(np.arange(n) < 300, labels_a, wrong)
    labels_b = np.repeat([0, 1], 8)
    pred_b = np.where(np.arange(16) % 4 == 3, 1 - labels_b, labels_b)
    paths = [
        write_fake_result(tmp_path, "zeroshot", "base", "a", labels_a, base_a),
        write_fake_result(tmp_path, "zeroshot", "tuned", "a", labels_a, tuned_a),
        write_fake_result(tmp_path, "zeroshot", "base", "b", labels_b, pred_b, "mean_per_class_recall"),
        write_fake_result(tmp_path, "zeroshot", "tuned", "b", labels_b, pred_b, "mean_per_class_recall"),
        write_fake_result(tmp_path, "linear_probe", "base", "a", labels_a, base_a),
        write_fake_result(tmp_path, "linear_probe", "tuned", "a", labels_a, base_a),
    ]
    return tmp_path, paths


def test_differences_and_gelo_by_hand(results):
    _, paths = results
    differences, gelo = significance_tables(paths, PAIRS, MODELS, resamples=300, seed=0)
    assert list(differences.columns) == list(DIFFERENCE_COLUMNS)
    rows = {(r.protocol, r.dataset): r for r in differences.itertuples(index=False)}
    assert set(rows) == {("zeroshot", "a"), ("zeroshot", "b"), ("linear_probe", "a")}
    drop = rows[("zeroshot", "a")]
    assert (drop.model_value, drop.baseline_value) == (0.3, 0.6) and drop.difference == pytest.approx(-0.3)
    assert drop.significant and drop.ci_high < 0 and drop.p_value == pytest.approx(2 / 301)
    same = rows[("zeroshot", "b")]
    assert same.primary_metric == "mean_per_class_recall" and same.model_value == 0.75 and same.difference == 0.0
    assert (same.p_value, same.significant, same.ci_low, same.ci_high) == (1.0, False, 0.0, 0.0)
    assert not rows[("linear_probe", "a")].significant
    assert (differences.resamples == 300).all() and (differences.seed == 0).all() and (differences.metric == "primary").all()

    # GELO = mean(0.3, 0.75) / mean(0.6, 0.75), as the report's GELO table computes it
    zs = gelo.set_index("protocol").loc["zeroshot"]
    assert zs.gelo == pytest.approx(1.05 / 1.35, abs=1e-15) and zs.significant and zs.ci_high < 1 and zs.n_datasets == 2
    metrics = pd.DataFrame([
        {"model": m, "backbone": "toy-S", "adaptation": MODELS[m]["adaptation"], "protocol": "zeroshot", "dataset": d,
         "metric": "primary", "value": v, "n": 1}
        for m, d, v in [("base", "a", 0.6), ("tuned", "a", 0.3), ("base", "b", 0.75), ("tuned", "b", 0.75)]])
    reference = gelo_table(metrics).set_index("model").loc["tuned", "gelo"]
    assert zs.gelo == pytest.approx(reference, abs=1e-15)
    lp = gelo.set_index("protocol").loc["linear_probe"]
    assert (lp.gelo, lp.p_value, lp.significant) == (1.0, 1.0, False)


def test_a_datasets_replicates_do_not_depend_on_the_other_datasets(results):
    _, paths = results
    both, _ = significance_tables(paths, PAIRS, MODELS, resamples=200, seed=5)
    alone, _ = significance_tables([p for p in paths if p.stem == "a"], PAIRS, MODELS, resamples=200, seed=5)

    def pick(table):
        return table[(table.dataset == "a") & (table.protocol == "zeroshot")][["ci_low", "ci_high", "p_value"]].to_numpy()

    assert np.array_equal(pick(both), pick(alone))
    other_seed, _ = significance_tables(paths, PAIRS, MODELS, resamples=200, seed=6)
    assert not np.array_equal(pick(both), pick(other_seed))


def test_written_tables_record_resamples_and_seed(results, tmp_path):
    _, paths = results
    out = {"differences": tmp_path / "out" / "significance.csv", "gelo": tmp_path / "out" / "significance_gelo.csv",
           "markdown": tmp_path / "out" / "significance.md", "task_gain": tmp_path / "out" / "task_gain.csv"}
    run_significance(paths, [], PAIRS, MODELS, out, resamples=100, seed=3, provenance={"rule": "bootstrap_significance"})
    table = read_significance(out["differences"])
    assert table.significant.dtype == bool and table.set_index(["protocol", "dataset"]).significant.to_dict() == {
        ("zeroshot", "a"): True, ("zeroshot", "b"): False, ("linear_probe", "a"): False}
    gelo = pd.read_csv(out["gelo"])
    assert set(gelo.resamples) == {100} and set(gelo.seed) == {3}
    text = out["markdown"].read_text()
    assert text.startswith("# Significance") and "100 resamples, seed 3" in text and "-30.00 [" in text
    assert "_No fine-tuned model with results on its own task in this run._" in text  # no biometric results given
    for path in out.values():
        sidecar = json.loads(path.with_name(path.name + ".prov.json").read_text())
        assert sidecar["provenance"]["rule"] == "bootstrap_significance"


def test_stale_or_mismatched_predictions_stop_with_one_sentence(results):
    root, paths = results
    csv = root / "zeroshot" / "tuned" / "b.pred.csv"
    csv.write_text(csv.read_text().replace(",0,0\n", ",0,1\n", 1))  # one prediction changed
    with pytest.raises(UserError, match="differ from the digest"):
        significance_tables(paths, PAIRS, MODELS, resamples=10, seed=0)

    labels = np.repeat([0, 1], 8)
    paths[3] = write_fake_result(root, "zeroshot", "tuned", "b", labels, labels, "mean_per_class_recall",
                                 ids=[f"other/{i}" for i in range(16)])
    with pytest.raises(UserError, match="do not score the same test samples of b"):
        significance_tables(paths, PAIRS, MODELS, resamples=10, seed=0)

    record = json.loads(paths[0].read_text())
    record["primary"] = 0.5
    paths[0].write_text(json.dumps(record))
    with pytest.raises(UserError, match="reports 0.5 but its predictions give 0.6"):
        significance_tables(paths[:2], PAIRS, MODELS, resamples=10, seed=0)


def test_a_model_lacking_a_dataset_its_baseline_has(results):
    _, paths = results
    with pytest.raises(UserError, match="lacks zeroshot results for b"):
        significance_tables([p for p in paths if not (p.parent.name == "tuned" and p.stem == "b")], PAIRS, MODELS,
                            resamples=10, seed=0)
