"""Representation drift from embedding files and result JSONs: CKA per cell, accuracy deltas, the
correlation across cells and the written outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from _analysis_fixtures import MODELS, ids_of, write_embeddings, write_fake_result
from overspec.analysis.cka import linear_cka
from overspec.analysis.drift import DRIFT_COLUMNS, drift_correlation, drift_table, run_drift
from overspec.errors import UserError

PAIRS = {"tuned": "base"}
PATTERN = "{root}/embeddings/{{model}}/{{dataset}}.h5"


@pytest.fixture()
def study(tmp_path):
    """Dataset a: the tuned features are the baseline's rotated and scaled (CKA 1). Dataset b: unrelated."""
    rng = np.random.default_rng(0)
    base_a, base_b, tuned_b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    for model, dataset, features in [("base", "a", base_a), ("tuned", "a", 2.5 * base_a @ rotation),
                                     ("base", "b", base_b), ("tuned", "b", tuned_b)]:
        write_embeddings(tmp_path / "embeddings" / model / f"{dataset}.h5", features)
    labels = np.zeros(4, dtype=int)
    results = [  # top-1: a 0.75 -> 0.5 zero-shot, 1.0 -> 0.75 probe; b 0.5 -> 0.25 zero-shot only
        write_fake_result(tmp_path, "zeroshot", "base", "a", labels, [0, 0, 0, 1]),
        write_fake_result(tmp_path, "zeroshot", "tuned", "a", labels, [0, 0, 1, 1]),
        write_fake_result(tmp_path, "linear_probe", "base", "a", labels, [0, 0, 0, 0]),
        write_fake_result(tmp_path, "linear_probe", "tuned", "a", labels, [0, 0, 0, 1]),
        write_fake_result(tmp_path, "zeroshot", "base", "b", labels, [0, 0, 1, 1]),
        write_fake_result(tmp_path, "zeroshot", "tuned", "b", labels, [0, 1, 1, 1]),
    ]
    return tmp_path, results, (base_b, tuned_b)


def test_cka_and_deltas_per_cell(study):
    root, results, (base_b, tuned_b) = study
    table = drift_table(PAIRS, MODELS, ["b", "a"], PATTERN.format(root=root), results)
    assert list(table.columns) == list(DRIFT_COLUMNS) and list(table.dataset) == ["a", "b"]
    a, b = table.iloc[0], table.iloc[1]
    assert a.cka == pytest.approx(1.0, abs=1e-6)  # float32 storage
    assert b.cka == pytest.approx(linear_cka(base_b.astype(np.float32), tuned_b.astype(np.float32)), abs=1e-12)
    assert b.cka < 3 * 8 / 400  # unrelated: about d / (n + d) = 0.02
    assert (a.delta_top1_zeroshot, a.delta_top1_linear_probe) == (-0.25, -0.25)
    assert b.delta_top1_zeroshot == -0.25 and np.isnan(b.delta_top1_linear_probe)
    assert (table.baseline == "base").all() and (table.n == 400).all() and (table.adaptation == "fr").all()


def test_different_test_samples_stop_with_one_sentence(study):
    root, results, _ = study
    write_embeddings(root / "embeddings" / "tuned" / "a.h5", np.ones((400, 8)), ids=ids_of(399) + ["other"])
    with pytest.raises(UserError, match="list different samples"):
        drift_table(PAIRS, MODELS, ["a"], PATTERN.format(root=root), results)


def test_correlation_by_hand():
    cka = [0.9, 0.5, 0.7, 0.2]
    delta = [-0.01, -0.2, -0.05, -0.3]
    drift = pd.DataFrame({"cka": cka, "delta_top1_zeroshot": delta, "delta_top1_linear_probe": [0.0, np.nan, 0.1, 0.2]})
    table = drift_correlation(drift).set_index("protocol")
    zs = table.loc["zeroshot"]
    assert zs.n_cells == 4 and zs.pearson_r == pytest.approx(np.corrcoef(cka, delta)[0, 1], abs=1e-12)
    assert zs.spearman_rho == pytest.approx(1.0)  # same order: lower CKA, larger loss
    assert zs.pearson_p == pytest.approx(stats.pearsonr(cka, delta).pvalue)
    lp = table.loc["linear_probe"]
    assert lp.n_cells == 3 and lp.spearman_rho == pytest.approx(-1.0)  # cells (0.9, 0), (0.7, 0.1), (0.2, 0.2)
    assert lp.spearman_p == pytest.approx(stats.spearmanr([0.9, 0.7, 0.2], [0.0, 0.1, 0.2]).pvalue, abs=1e-12)
    short = drift_correlation(drift.iloc[:2]).set_index("protocol")
    assert short.loc["zeroshot"].n_cells == 2 and np.isnan(short.loc["zeroshot"].pearson_r)


def test_correlation_and_p_values_match_scipy():
    rng = np.random.default_rng(5)
    x = rng.normal(size=12)
    y = 0.5 * x + rng.normal(size=12)
    y[3] = y[4]  # a tie for the ranks
    drift = pd.DataFrame({"cka": x, "delta_top1_zeroshot": y, "delta_top1_linear_probe": y})
    row = drift_correlation(drift).iloc[0]
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    assert (row.pearson_r, row.pearson_p) == pytest.approx((pearson.statistic, pearson.pvalue), abs=1e-12)
    assert (row.spearman_rho, row.spearman_p) == pytest.approx((spearman.statistic, spearman.pvalue), abs=1e-12)


def test_outputs_are_written_with_sidecars(study):
    root, results, _ = study
    out = {"table": root / "analysis" / "drift.csv", "correlation": root / "analysis" / "drift_correlation.csv",
           "markdown": root / "analysis" / "drift.md", "png": root / "analysis" / "drift_heatmap.png",
           "svg": root / "analysis" / "drift_heatmap.svg"}
    run_drift(PAIRS, MODELS, ["a", "b"], PATTERN.format(root=root), results, out, provenance={"rule": "measure_drift"})
    table = pd.read_csv(out["table"])
    assert len(table) == 2 and table.cka.iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert "no correlation (needs 3" in out["markdown"].read_text()
    assert out["png"].read_bytes()[:4] == b"\x89PNG" and out["svg"].read_text().lstrip().startswith("<?xml")
    for path in out.values():
        assert json.loads(path.with_name(path.name + ".prov.json").read_text())["provenance"]["rule"] == "measure_drift"
