"""The WiSE-FT curve on hand-made tables: the task's metric, shares by hand, the chosen alpha, the files."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from overspec.analysis.wiseft import biometric_scores, choose_alpha, curve_table, write_wiseft
from overspec.errors import UserError
from overspec.report.gelo import GELO_COLUMNS
from overspec.report.schema import METRICS_COLUMNS
from overspec.report.tables import gelo_csv, metrics_csv

FR_CURVE = [{"alpha": 0.0, "model": "base"}, {"alpha": 0.25, "model": "ft-wise025"},
            {"alpha": 0.5, "model": "ft-wise050"}, {"alpha": 0.75, "model": "ft-wise075"}, {"alpha": 1.0, "model": "ft"}]
FR_ACCURACY = {"base": 0.60, "ft-wise025": 0.75, "ft-wise050": 0.85, "ft-wise075": 0.90, "ft": 0.92}
GELO_ZS = {"base": 1.0, "ft-wise025": 0.99, "ft-wise050": 0.96, "ft-wise075": 0.90, "ft": 0.80}
GELO_LP = {"base": 1.0, "ft-wise025": 0.99, "ft-wise050": 0.97, "ft-wise075": 0.96, "ft": 0.93}


def _metrics(rows):
    return pd.DataFrame([dict(zip(METRICS_COLUMNS, r)) for r in rows], columns=list(METRICS_COLUMNS))


def fr_metrics():
    rows = []
    for model, acc in FR_ACCURACY.items():
        adaptation = "none" if model == "base" else "fr"
        # two pair sets whose mean is the accuracy above; a CI row that must not count
        rows += [(model, "toy-S", adaptation, "face_verification", "lfw", "accuracy", acc - 0.02, 600),
                 (model, "toy-S", adaptation, "face_verification", "agedb_30", "accuracy", acc + 0.02, 600),
                 (model, "toy-S", adaptation, "zeroshot", "toy_colours", "primary", 0.5, 100)]
    return _metrics(rows)


def fr_gelo():
    rows = [(m, "toy-S", "none" if m == "base" else "fr", p, 0.5, 0.5 * g[m], g[m])
            for m in FR_ACCURACY for p, g in (("zeroshot", GELO_ZS), ("linear_probe", GELO_LP))]
    return pd.DataFrame(rows, columns=list(GELO_COLUMNS))


def test_biometric_score_is_the_mean_over_benchmarks():
    scores = biometric_scores(fr_metrics(), "face_verification", "accuracy")
    assert scores["ft-wise050"] == pytest.approx(0.85, abs=1e-12) and set(scores) == set(FR_ACCURACY)


def test_curve_by_hand():
    table = curve_table(fr_metrics(), fr_gelo(), {"ft": FR_CURVE}, min_gelo=0.95)
    assert list(table.alpha) == [0.0, 0.25, 0.5, 0.75, 1.0] and set(table.task) == {"fr"}
    half = table[table.alpha == 0.5].iloc[0]
    assert (half.protocol, half.metric, half.model) == ("face_verification", "accuracy", "ft-wise050")
    assert half.gain_kept == pytest.approx((0.85 - 0.60) / (0.92 - 0.60))
    assert half.zeroshot_loss_recovered == pytest.approx((0.96 - 0.80) / (1.0 - 0.80))
    assert half.linear_probe_loss_recovered == pytest.approx((0.97 - 0.93) / (1.0 - 0.93))
    assert table.gain_kept.iloc[0] == pytest.approx(0.0) and table.gain_kept.iloc[-1] == pytest.approx(1.0)
    # 0.75 has the better accuracy but zero-shot GELO 0.90 < 0.95; 0.5 is the best that keeps both
    assert list(table.alpha[table.chosen]) == [0.5]


def _curve(biometric, zs, lp, metric="accuracy"):
    return pd.DataFrame({"alpha": [0.0, 0.25, 0.5, 0.75, 1.0], "metric": metric, "biometric": biometric,
                         "gelo_zeroshot": zs, "gelo_linear_probe": lp})


def test_choose_alpha_on_a_hand_made_curve():
    curve = _curve(list(FR_ACCURACY.values()), list(GELO_ZS.values()), list(GELO_LP.values()))
    assert choose_alpha(curve, 0.95) == 0.5
    assert choose_alpha(curve, 0.995) == 0.0  # only the baseline end keeps GELO that high
    assert choose_alpha(curve, 0.91) == 0.5  # alpha 0.75 misses by its zero-shot GELO 0.90
    assert choose_alpha(curve, 1.01) is None
    assert choose_alpha(curve, 0.5) == 1.0  # everything qualifies: the best score wins


def test_choose_alpha_lower_is_better_and_ties():
    eer = _curve([0.40, 0.20, 0.10, 0.05, 0.04], [1.0, 0.99, 0.97, 0.96, 0.90], [1.0, 1.0, 0.99, 0.98, 0.97], "eer")
    assert choose_alpha(eer, 0.95) == 0.75  # lowest EER among alphas keeping both GELOs
    tied = _curve([0.9, 0.9, 0.9, 0.8, 0.7], [1.0, 0.97, 0.98, 1.0, 1.0], [1.0, 0.99, 0.99, 1.0, 1.0])
    assert choose_alpha(tied, 0.95) == 0.0  # equal scores: the higher worst GELO (1.0 at alpha 0)
    tied.loc[0, "gelo_zeroshot"] = 0.98
    tied.loc[0, "gelo_linear_probe"] = 0.98
    assert choose_alpha(tied.iloc[::-1], 0.95) == 0.0  # equal worst GELO 0.98 (alphas 0, 0.5): the smaller alpha
    no_probe = _curve([0.5, 0.6, 0.7, 0.8, 0.9], [1.0, 0.99, 0.97, 0.94, 0.9], [math.nan] * 5)
    assert choose_alpha(no_probe, 0.95) == 0.5  # a protocol the study lacks does not block every alpha


def test_mad_uses_the_subsets_and_pad_falls_back_to_auc():
    rows = []
    for model, eers in (("b", (0.4, 0.2)), ("m", (0.1, 0.3))):
        adaptation = "none" if model == "b" else "mad"
        rows += [(model, "S", adaptation, "mad", "fm", "eer", eers[0], 10), (model, "S", adaptation, "mad", "sg", "eer", eers[1], 10),
                 (model, "S", adaptation, "mad", "average", "eer", 0.9, 20),  # deliberately not the mean
                 (model, "S", adaptation, "pad", "ca", "auc", 0.8, 10)]
    metrics = _metrics(rows)
    gelo = pd.DataFrame([(m, "S", a, "zeroshot", 0.5, 0.5, 1.0) for m, a in (("b", "none"), ("m", "mad"))],
                        columns=list(GELO_COLUMNS))
    table = curve_table(metrics, gelo, {"m": [{"alpha": 0.0, "model": "b"}, {"alpha": 1.0, "model": "m"}]}, 0.95)
    assert list(table.biometric) == pytest.approx([0.3, 0.2]) and set(table.metric) == {"eer"}
    assert list(table.alpha[table.chosen]) == [1.0]  # lower EER, GELO 1 (linear probe absent)
    metrics.loc[metrics.model == "m", "adaptation"] = "pad"
    gelo.loc[gelo.model == "m", "adaptation"] = "pad"
    table = curve_table(metrics, gelo, {"m": [{"alpha": 0.0, "model": "b"}, {"alpha": 1.0, "model": "m"}]}, 0.95)
    assert set(table.metric) == {"auc"}  # no HTER (no dev list): AUC


def test_missing_biometric_results_name_the_model():
    metrics = fr_metrics()
    metrics = metrics[~((metrics.model == "ft-wise050") & (metrics.protocol == "face_verification"))]
    with pytest.raises(UserError, match="ft-wise050"):
        curve_table(metrics, fr_gelo(), {"ft": FR_CURVE}, 0.95)


def test_write_wiseft_files(tmp_path):
    (tmp_path / "metrics.csv").write_text(metrics_csv(fr_metrics()))
    (tmp_path / "gelo.csv").write_text(gelo_csv(fr_gelo()))
    out = {k: tmp_path / "wiseft" / f"curve.{k}" for k in ("csv", "md", "png", "svg")}
    write_wiseft(tmp_path / "metrics.csv", tmp_path / "gelo.csv", {"ft": FR_CURVE}, out, min_gelo=0.95,
                 provenance={"rule": "wiseft_curve"})
    table = pd.read_csv(out["csv"])
    assert list(table.chosen) == [False, False, True, False, False]
    assert table.biometric.tolist() == pytest.approx(list(FR_ACCURACY.values()))
    text = out["md"].read_text()
    assert "## ft (FR)" in text and "Chosen alpha: 0.50 (ft-wise050: FR Acc. 85.00%, ZS GELO 0.960, LP GELO 0.970)." in text
    assert all(p.stat().st_size > 0 for p in out.values())
    assert (tmp_path / "wiseft" / "curve.csv.prov.json").exists()
    first = {k: p.read_bytes() for k, p in out.items()}
    write_wiseft(tmp_path / "metrics.csv", tmp_path / "gelo.csv", {"ft": FR_CURVE}, out, min_gelo=0.95)
    assert {k: p.read_bytes() for k, p in out.items()} == first  # byte-stable
    write_wiseft(tmp_path / "metrics.csv", tmp_path / "gelo.csv", {"ft": FR_CURVE}, out, min_gelo=0.995)
    assert "Chosen alpha: 0.00 (base: FR Acc. 60.00%, ZS GELO 1.000, LP GELO 1.000): no alpha above 0 keeps GELO >= 0.995" \
        in out["md"].read_text()
    write_wiseft(tmp_path / "metrics.csv", tmp_path / "gelo.csv", {"ft": FR_CURVE}, out, min_gelo=1.5)
    assert "No alpha keeps GELO >= 1.5 under both protocols." in out["md"].read_text()
