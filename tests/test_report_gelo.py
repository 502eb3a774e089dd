"""GELO against hand-computed values, and the errors that keep its means comparable."""

import math

import pandas as pd
import pytest

from overspec.errors import UserError
from overspec.report.gelo import GELO_COLUMNS, gelo_table
from overspec.report.schema import add_dataset_average, check_metrics

MODELS = {  # model: (backbone, adaptation)
    "clip-s": ("toy-s", "none"),
    "fr-s": ("toy-s", "fr"),
    "mad-s": ("toy-s", "mad"),
    "clip-m": ("toy-m", "none"),
    "fr-m": ("toy-m", "fr"),
}


def frame(values: dict[tuple[str, str, str], float], metric: str = "primary") -> pd.DataFrame:
    rows = [
        (model, *MODELS[model], protocol, dataset, metric, value, 100)
        for (model, protocol, dataset), value in values.items()
    ]
    return pd.DataFrame(
        rows, columns=["model", "backbone", "adaptation", "protocol", "dataset", "metric", "value", "n"]
    )


BASE = {
    ("clip-s", "zeroshot", "a"): 0.8,
    ("clip-s", "zeroshot", "b"): 0.6,
    ("fr-s", "zeroshot", "a"): 0.5,
    ("fr-s", "zeroshot", "b"): 0.3,
    ("mad-s", "zeroshot", "a"): 0.8,
    ("mad-s", "zeroshot", "b"): 0.7,
    ("clip-m", "zeroshot", "a"): 0.9,
    ("clip-m", "zeroshot", "b"): 0.7,
    ("fr-m", "zeroshot", "a"): 0.8,
    ("fr-m", "zeroshot", "b"): 0.6,
    ("clip-s", "linear_probe", "a"): 0.9,
    ("fr-s", "linear_probe", "a"): 0.81,
}


def test_gelo_matches_hand_computed_means_per_backbone():
    table = gelo_table(frame(BASE))
    assert tuple(table.columns) == GELO_COLUMNS
    got = {(r.model, r.protocol): (r.avg_baseline, r.avg_model, r.gelo) for r in table.itertuples()}
    # toy-s zero-shot: baseline (0.8+0.6)/2 = 0.7; fr (0.5+0.3)/2 = 0.4 -> 4/7; mad 0.75 -> 15/14
    assert got[("fr-s", "zeroshot")] == pytest.approx((0.7, 0.4, 0.4 / 0.7))
    assert got[("mad-s", "zeroshot")] == pytest.approx((0.7, 0.75, 0.75 / 0.7))
    # toy-m has its own baseline: (0.9+0.7)/2 = 0.8; fr-m 0.7 -> 0.875
    assert got[("fr-m", "zeroshot")] == pytest.approx((0.8, 0.7, 0.875))
    assert got[("fr-s", "linear_probe")] == pytest.approx((0.9, 0.81, 0.9))
    # baselines are kept at exactly 1.0
    assert got[("clip-s", "zeroshot")][2] == 1.0 and got[("clip-m", "zeroshot")][2] == 1.0


def test_rows_are_ordered_protocol_then_baseline_first():
    table = gelo_table(frame(BASE))
    assert list(zip(table.protocol, table.model)) == [
        ("zeroshot", "clip-m"),
        ("zeroshot", "clip-s"),
        ("zeroshot", "fr-m"),
        ("zeroshot", "fr-s"),
        ("zeroshot", "mad-s"),
        ("linear_probe", "clip-s"),
        ("linear_probe", "fr-s"),
    ]


def test_input_row_order_does_not_change_the_result():
    shuffled = frame(BASE).sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(gelo_table(shuffled), gelo_table(frame(BASE)))


def test_only_primary_metric_counts():
    extra = pd.concat([frame(BASE), frame({("fr-s", "zeroshot", "a"): 0.99}, metric="top5")])
    assert gelo_table(extra).equals(gelo_table(frame(BASE)))


def test_datasets_by_protocol_restricts_the_mean_and_skips_other_protocols():
    table = gelo_table(frame(BASE), {"zeroshot": ["a"]})
    assert set(table.protocol) == {"zeroshot"}
    fr = table[table.model == "fr-s"].iloc[0]
    assert (fr.avg_baseline, fr.avg_model, fr.gelo) == pytest.approx((0.8, 0.5, 0.625))


def test_model_missing_a_baseline_dataset_is_an_error():
    values = dict(BASE)
    del values[("fr-s", "zeroshot", "b")]
    with pytest.raises(UserError, match=r"'fr-s' lacks zeroshot results for b.*baseline 'clip-s'"):
        gelo_table(frame(values))


def test_dataset_only_the_model_has_is_left_out():
    values = dict(BASE)
    values[("fr-s", "zeroshot", "extra")] = 0.0
    row = gelo_table(frame(values)).query("model == 'fr-s' and protocol == 'zeroshot'").iloc[0]
    assert row.avg_model == pytest.approx(0.4)


def test_missing_baseline_is_an_error():
    values = {k: v for k, v in BASE.items() if k[0] != "clip-m"}
    with pytest.raises(UserError, match="No baseline .* backbone 'toy-m'"):
        gelo_table(frame(values))


def test_two_baselines_on_one_backbone_is_an_error():
    rows = frame(BASE)
    twin = rows[rows.model == "clip-s"].assign(model="clip-s-copy")
    with pytest.raises(UserError, match="two baselines"):
        gelo_table(pd.concat([rows, twin]))


def test_requested_dataset_the_baseline_lacks_is_an_error():
    with pytest.raises(UserError, match="lacks zeroshot results for c"):
        gelo_table(frame(BASE), {"zeroshot": ["a", "c"]})


def test_nan_result_is_an_error():
    values = dict(BASE)
    values[("fr-s", "zeroshot", "a")] = math.nan
    with pytest.raises(UserError, match="NaN"):
        gelo_table(frame(values))


def test_bad_tables_are_user_errors():
    with pytest.raises(UserError, match="lacks the columns n"):
        gelo_table(frame(BASE).drop(columns="n"))
    doubled = pd.concat([frame(BASE), frame(BASE).iloc[:1]])
    with pytest.raises(UserError, match="more than one row for model 'clip-s'"):
        gelo_table(doubled)
    relabelled = frame(BASE)
    relabelled.loc[0, "backbone"] = "toy-m"
    with pytest.raises(UserError, match="more than one backbone"):
        check_metrics(relabelled)


def test_no_general_results_gives_an_empty_table_with_the_columns():
    only_bio = frame({("clip-s", "mad", "x"): 0.2}, metric="eer")
    table = gelo_table(only_bio)
    assert table.empty and tuple(table.columns) == GELO_COLUMNS


def test_dataset_average_is_the_mean_over_sets_for_complete_models_only():
    values = {("clip-s", "mad", "m1"): 0.2, ("clip-s", "mad", "m2"): 0.4, ("mad-s", "mad", "m1"): 0.1}
    averaged = add_dataset_average(frame(values, metric="eer"), "mad")
    rows = averaged[averaged.dataset == "average"]
    assert list(rows.model) == ["clip-s"]  # mad-s lacks m2, so it gets no average
    assert rows.value.iloc[0] == pytest.approx(0.3) and rows.n.iloc[0] == 200
