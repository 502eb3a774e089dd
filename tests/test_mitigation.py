"""Remedies against forgetting: which model is which remedy (from the config), the Pareto front, the
mitigation table and the summary's sentences, on hand-made points with hand-computed answers."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config

from overspec.analysis.mitigation import (best_remedies, mitigation_markdown, mitigation_table, pareto_front,
                                          remedy_lines)
from overspec.analysis.remedies import recipe_difference, remedy_table
from overspec.analysis.task_gain import TASK_GAIN_COLUMNS
from overspec.config import check_config, model_table
from overspec.errors import UserError
from overspec.provenance import read_json, sidecar_path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "config.schema.yaml"
NAN = float("nan")


# -- the Pareto front -------------------------------------------------------------------------


def test_pareto_front_on_hand_made_points():
    gain = [10, 8, 8, 5, 2, 12, NAN, 5]
    gelo = [0.80, 0.90, 0.85, 0.90, 0.99, 0.70, 1.00, 0.90]
    # (8, .90) dominates (8, .85) and (5, .90); (5, .90) twice: both dominated by (8, .90); NaN never on it
    assert pareto_front(gain, gelo).tolist() == [True, True, False, False, True, True, False, False]
    assert pareto_front([1, 1], [0.9, 0.9]).tolist() == [True, True]  # equal points do not dominate each other
    assert pareto_front([], []).tolist() == []


# -- remedies from the config -----------------------------------------------------------------


def test_recipe_difference_names_the_changed_keys():
    ref = {"task": "fr", "epochs": None, "max_steps": 120, "lora": {"r": 16, "alpha": 32}}
    assert recipe_difference(ref, {**ref, "l2sp": {"weight": 10}}) == ("l2sp", "weight=10")
    assert recipe_difference(ref, {**ref, "lp_ft": {"probe_steps": 60}}) == ("lp_ft", "probe_steps=60")
    assert recipe_difference(ref, {**ref, "freeze_blocks": 2}) == ("freeze_blocks", "2")
    assert recipe_difference(ref, {**ref, "lora": {"r": 2, "alpha": 32}}) == ("lora.r", "2")
    assert recipe_difference(ref, {**ref, "freeze_blocks": 2, "lr_encoder": 5e-4}) == (
        "freeze_blocks+lr_encoder", "freeze_blocks=2, lr_encoder=0.0005")
    assert recipe_difference(ref, {**ref, "seed": 9}) == ("none", "")  # another seed is no remedy


def _mitigation_config() -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "configs" / "mitigation.yaml").read_text()))
    return config


def test_the_overlay_keeps_the_default_study_and_names_every_remedy():
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    config = _mitigation_config()
    check_config(copy.deepcopy(config), SCHEMA)
    assert set(default["models"]) < set(config["models"])  # the default study's models remain, unchanged
    assert all(config["models"][m] == spec for m, spec in default["models"].items())
    assert config["recipes"]["toy-fr"] == default["recipes"]["toy-fr"]
    table = model_table(config)
    remedies = remedy_table(config, table)
    extra = sorted(set(table) - set(default["models"]))
    assert len(extra) <= 16 and set(extra) <= set(remedies)
    kinds = {(spec["backbone"], spec["remedy"]) for spec in remedies.values()}
    for backbone in ("toy-s", "toy-m"):
        assert {(backbone, k) for k in ("none", "l2sp", "lp_ft", "freeze_blocks", "wiseft")} <= kinds
    assert remedies["clip-toy-s-fr"] == {"reference": "clip-toy-s-fr", "backbone": "toy-s", "task": "fr",
                                         "remedy": "none", "strength": ""}
    # every remedy fine-tune is the reference's recipe with one option added (same steps, data, seed)
    assert all(spec["remedy"] in ("none", "l2sp", "lp_ft", "freeze_blocks", "wiseft") for spec in remedies.values())
    # the MAD and PAD fine-tunes are in no group
    assert not {m for m in remedies if "-mad" in m or "-pad" in m}


def test_remedy_table_is_empty_when_off_and_bad_references_stop_in_one_sentence():
    config = _mitigation_config()
    config["analyses"]["mitigation"]["enabled"] = False
    assert remedy_table(config, model_table(config)) == {}
    for references, message in (
        (["clip-toy-s"], r"^Config key 'analyses\.mitigation\.references\[0\]' is 'clip-toy-s', which is not a model "
                         r"fine-tuned with a recipe: use one of "),
        (["clip-toy-s-fr", "clip-toy-s-fr-l2sp10"],
         r"^Config key 'analyses\.mitigation\.references\[1\]' is 'clip-toy-s-fr-l2sp10', but clip-toy-s-fr is "
         r"already the reference for fr on backbone toy-s: keep one per backbone and task\.$"),
    ):
        bad = _mitigation_config()
        bad["analyses"]["mitigation"]["references"] = references
        with pytest.raises(UserError, match=message):
            check_config(bad, SCHEMA)


@pytest.mark.parametrize("recipe,n,message", [
    ("toy-fr", 4, r"^Config key 'recipes\.toy-fr' is invalid: recipes\.toy-fr\.freeze_blocks is 4, but the image "
                  r"encoder of toy-clip-s \(model clip-toy-s-fr\) has 4 blocks: use 0 to 3 \(at least the last block "
                  r"must be adapted\)\.$"),
    ("toy-fr", -1, r"^Config key 'recipes\.toy-fr\.freeze_blocks' "),
])
def test_freeze_blocks_beyond_the_backbone_stops_at_parse(recipe, n, message):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["recipes"][recipe]["freeze_blocks"] = n
    with pytest.raises(UserError, match=message):
        check_config(config, SCHEMA)


def test_l2sp_and_lp_ft_schema_errors_name_the_key():
    for change, message in (({"l2sp": {"weight": -2}}, r"recipes\.toy-fr\.l2sp\.weight"),
                            ({"l2sp": {}}, r"recipes\.toy-fr\.l2sp"),
                            ({"lp_ft": {"probe_steps": 0}}, r"recipes\.toy-fr\.lp_ft\.probe_steps")):
        config = yaml.safe_load((ROOT / "config.yaml").read_text())
        config["recipes"]["toy-fr"].update(change)
        with pytest.raises(UserError, match=message):
            check_config(config, SCHEMA)


# -- the table and the summary's answers ------------------------------------------------------


def _frames(points: dict[str, tuple[str, float, float, float]]):
    """metrics.csv rows for baseline clip-s (FR accuracy 0.70, zero-shot 0.60, linear probe 0.80 on
    two datasets) and models {name: (adaptation, FR accuracy, zero-shot factor, linear-probe factor)}."""
    rows = []
    spec = {"clip-s": ("none", 0.70, 1.0, 1.0), **points}
    for model, (adaptation, accuracy, zs, lp) in spec.items():
        rows.append((model, "toy-s", adaptation, "face_verification", "pairs", "accuracy", accuracy, 600))
        for dataset in ("shapes", "digits"):
            rows.append((model, "toy-s", adaptation, "zeroshot", dataset, "primary", 0.60 * zs, 300))
            rows.append((model, "toy-s", adaptation, "linear_probe", dataset, "primary", 0.80 * lp, 300))
    from overspec.report.gelo import gelo_table

    metrics = pd.DataFrame(rows, columns=["model", "backbone", "adaptation", "protocol", "dataset", "metric",
                                          "value", "n"])
    return metrics, gelo_table(metrics)


POINTS = {  # FR gain over 0.70 in pp; zero-shot GELO; linear-probe GELO
    "fr": ("fr", 0.80, 0.80, 0.95),        # plain: +10 pp, GELO 0.80
    "fr-l2sp": ("fr", 0.79, 0.96, 0.99),   # +9 pp (90%) at 0.96
    "fr-lpft": ("fr", 0.81, 0.85, 0.97),   # +11 pp at 0.85: reaches the plain gain, saves 0.05
    "fr-freeze": ("fr", 0.76, 0.97, 0.99),  # +6 pp (60%) at 0.97
    "fr-wise": ("fr", 0.75, 0.90, 0.98),   # +5 pp, dominated by fr-l2sp
    "fr-flop": ("fr", 0.70, 1.00, 1.00),   # learned nothing: on no front, never best
}
REMEDIES = {
    "fr": ("none", ""), "fr-l2sp": ("l2sp", "weight=10"), "fr-lpft": ("lp_ft", "probe_steps=60"),
    "fr-freeze": ("freeze_blocks", "2"), "fr-wise": ("wiseft", "alpha=0.5"), "fr-flop": ("l2sp", "weight=1000"),
}


def _remedies():
    return {m: {"reference": "fr", "backbone": "toy-s", "task": "fr", "remedy": r, "strength": s}
            for m, (r, s) in REMEDIES.items()}


def _task_gain(rows):
    frame = pd.DataFrame([dict(zip(("model", "metric", "gain", "ci_low", "ci_high", "significant"), r)) for r in rows])
    frame["model_value"] = frame["baseline_value"] = 0.0
    for column in TASK_GAIN_COLUMNS:
        if column not in frame:
            frame[column] = 0 if column in ("resamples", "seed", "p_value") else ""
    return frame[list(TASK_GAIN_COLUMNS)]


def test_mitigation_table_by_hand():
    metrics, gelo = _frames(POINTS)
    table = mitigation_table(metrics, gelo, _remedies()).set_index("model")
    assert list(table.index) == ["fr", "fr-freeze", "fr-l2sp", "fr-flop", "fr-lpft", "fr-wise"]
    assert table.loc["fr-l2sp", "gain_pp"] == pytest.approx(9.0)
    assert table.loc["fr-l2sp", "share_of_gain"] == pytest.approx(0.9)
    assert table.loc["fr-freeze", "gelo_zeroshot"] == pytest.approx(0.97)
    assert table.loc["fr-wise", "gelo_linear_probe"] == pytest.approx(0.98)
    assert not table.loc["fr-flop", "learned"] and table.loc["fr", "learned"]
    # zero-shot front among the learned: (11, .85), (9, .96), (6, .97); (10, .80) and (5, .90) dominated
    assert table.front_zeroshot[table.front_zeroshot].index.tolist() == ["fr-freeze", "fr-l2sp", "fr-lpft"]
    # linear-probe front: (11, .97), (9, .99); (6, .99) is dominated by (9, .99)
    assert table.front_linear_probe[table.front_linear_probe].index.tolist() == ["fr-l2sp", "fr-lpft"]


def test_best_remedies_and_summary_lines_by_hand():
    metrics, gelo = _frames(POINTS)
    table = mitigation_table(metrics, gelo, _remedies())
    [answer] = best_remedies(table, 0.95)
    assert answer["at_min_gelo"].model == "fr-l2sp" and answer["at_equal_gain"].model == "fr-lpft"
    [line] = remedy_lines(table, 0.95)
    assert line == ("toy-s, FR: the plain fine-tune fr (FR gain +10.00 pp, zero-shot GELO 0.800): at zero-shot "
                    "GELO >= 0.95 the best remedy is fr-l2sp (l2sp, weight=10), keeping 90% of the gain (FR gain "
                    "+9.00 pp, zero-shot GELO 0.960); at the plain fine-tune's gain the best is fr-lpft (lp_ft, "
                    "probe_steps=60), saving +0.050 zero-shot GELO (FR gain +11.00 pp, zero-shot GELO 0.850).")
    # without fr-lpft nothing reaches +10 pp: the closest is named with its share
    [line] = remedy_lines(table[table.model != "fr-lpft"], 0.99)
    assert line.endswith("no remedy that learned its task keeps zero-shot GELO >= 0.99; no remedy reaches the plain "
                         "fine-tune's gain; the closest is fr-l2sp (l2sp, weight=10) with 90% of it (FR gain +9.00 "
                         "pp, zero-shot GELO 0.960).")
    text = mitigation_markdown(table, 0.95)
    assert "| fr-l2sp " in text and "+9.00" in text and "90%" in text and "yes / yes" in text


def test_intervals_decide_who_learned():
    """With task_gain.csv, fr-freeze's +6 pp has an interval crossing 0: it leaves the front and the answers."""
    metrics, gelo = _frames(POINTS)
    rows = [("fr", "pair accuracy", 0.10, 0.05, 0.15, True), ("fr-l2sp", "pair accuracy", 0.09, 0.04, 0.14, True),
            ("fr-lpft", "pair accuracy", 0.11, 0.06, 0.16, True), ("fr-freeze", "pair accuracy", 0.06, -0.01, 0.12, False),
            ("fr-wise", "pair accuracy", 0.05, 0.01, 0.09, True), ("fr-flop", "pair accuracy", 0.0, -0.03, 0.03, False)]
    table = mitigation_table(metrics, gelo, _remedies(), _task_gain(rows)).set_index("model")
    assert table.loc["fr-l2sp", "ci_low"] == pytest.approx(4.0) and table.loc["fr-l2sp", "ci_high"] == pytest.approx(14.0)
    assert not table.loc["fr-freeze", "learned"] and not table.loc["fr-freeze", "front_zeroshot"]
    assert table.front_zeroshot[table.front_zeroshot].index.tolist() == ["fr-l2sp", "fr-lpft"]
    [answer] = best_remedies(table.reset_index(), 0.965)
    assert answer["at_min_gelo"] is None  # fr-freeze (0.97) did not learn; fr-l2sp is at 0.96


def test_an_unlearned_reference_is_said_so():
    metrics, gelo = _frames({"fr": ("fr", 0.69, 0.99, 0.99), "fr-l2sp": ("fr", 0.72, 0.99, 0.99)})
    remedies = {m: s for m, s in _remedies().items() if m in ("fr", "fr-l2sp")}
    [line] = remedy_lines(mitigation_table(metrics, gelo, remedies))
    assert line.endswith("did not learn its task, so no remedy is measured against it.")
    assert np.isnan(mitigation_table(metrics, gelo, remedies).share_of_gain).all()


# -- the summary, the figure and the files ----------------------------------------------------


def test_summary_has_a_remedies_section_and_keeps_remedies_out_of_the_findings(tmp_path):
    from overspec.report.summary import write_summary

    points = {**POINTS, "mad": ("mad", 0.70, 0.90, 0.95)}
    metrics, gelo = _frames(points)
    mad_rows = pd.DataFrame([(m, "toy-s", a, "mad", "average", "eer", v, 400)
                             for m, a, v in (("clip-s", "none", 0.40), ("mad", "mad", 0.30))], columns=metrics.columns)
    metrics = pd.concat([metrics, mad_rows], ignore_index=True)
    table = mitigation_table(metrics, gelo, _remedies())
    text = write_summary(metrics, gelo, tmp_path / "summary.md", remedies=table).read_text()
    section = text[text.index("## Remedies against forgetting"):text.index("## Generalization retained")]
    assert "at zero-shot GELO >= 0.95 the best remedy is fr-l2sp (l2sp, weight=10), keeping 90% of the gain" in section
    findings = text[text.index("## The study's findings"):]
    # task complexity compares the plain FR fine-tune with MAD only: the remedies (GELO up to 0.97) stay out
    assert "FR fr (FR +10.00 pp Acc.) GELO 0.800 < MAD mad (MAD +10.00 pp EER) GELO 0.900 (holds)" in findings
    assert "fr-l2sp" not in findings and "fr-freeze" not in findings
    assert "| fr-l2sp " in text  # still in the own-task and GELO tables
    plain = write_summary(metrics, gelo, tmp_path / "plain.md").read_text()
    assert "## Remedies" not in plain


def test_study_files_to_table_summary_and_figure(tmp_path):
    """From metrics.csv / gelo.csv as the workflow writes them: the table files, the summary (WiSE-FT
    models excluded from its findings but in its Remedies section) and the fronts on the figure."""
    from overspec.report.study import write_study_summary
    from overspec.report.study_figures import write_study_figures
    from overspec.analysis.mitigation import write_mitigation

    metrics, gelo = _frames(POINTS)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    gelo.to_csv(tmp_path / "gelo.csv", index=False)
    outputs = {"csv": tmp_path / "m" / "table.csv", "md": tmp_path / "m" / "table.md"}
    table = write_mitigation(tmp_path / "metrics.csv", tmp_path / "gelo.csv", _remedies(), outputs,
                             provenance={"rule": "mitigation_table"})
    kept = pd.read_csv(outputs["csv"], keep_default_na=False)
    assert list(kept.columns) == list(table.columns) and len(kept) == 6
    assert float(kept.set_index("model").loc["fr-l2sp", "share_of_gain"]) == pytest.approx(0.9)
    assert all(read_json(sidecar_path(p))["provenance"] == {"rule": "mitigation_table"} for p in outputs.values())
    summary = write_study_summary(tmp_path / "metrics.csv", tmp_path / "gelo.csv", tmp_path / "summary.md",
                                  exclude_models=["fr-wise"], remedies=_remedies()).read_text()
    assert "fr-l2sp (l2sp, weight=10), keeping 90%" in summary
    assert "fr-wise" not in summary[summary.index("## What each"):summary.index("## Remedies")]
    written = write_study_figures(tmp_path / "metrics.csv", tmp_path / "gelo.csv", tmp_path / "fig",
                                  wiseft={"fr-wise": {"finetune": "fr", "alpha": 0.5}}, remedies=_remedies())
    svg = written["tradeoff_svg"].read_text()
    assert svg.count('id="tradeoff-front-zeroshot-fr"') == 1 and svg.count('id="tradeoff-front-linear_probe-fr"') == 1
    assert all(svg.count(f'id="tradeoff-zeroshot-{m}"') == 1 for m in POINTS)
    assert "remedy: l2sp" in svg and "Pareto front" in svg and "did not learn its task" in svg
    assert "freeze_blocks=2" in svg and "weight=10" in svg  # labelled by strength, a bare value by its remedy


def test_tradeoff_points_carry_remedies_and_fronts():
    from overspec.report.tradeoff import tradeoff_points

    metrics, gelo = _frames(POINTS)
    points = tradeoff_points(metrics, gelo, remedies=_remedies())
    zeroshot = points[points.protocol == "zeroshot"].set_index("model")
    assert sorted(zeroshot.front[zeroshot.front].index) == ["fr-freeze", "fr-l2sp", "fr-lpft"]
    assert zeroshot.loc["fr-l2sp", "remedy"] == "l2sp" and not zeroshot.loc["fr-flop", "learned"]


def test_the_estimate_counts_lp_ft_probe_steps():
    from overspec.config import config_with_defaults
    from overspec.estimate.sizes import training_images

    config = config_with_defaults(_mitigation_config(), SCHEMA)
    plain, probed = training_images(config, "clip-toy-s-fr"), training_images(config, "clip-toy-s-fr-lpft60")
    assert plain.images == 120 * 64 and probed.images == (120 + 60) * 64
    assert "60 LP-FT probe steps" in probed.note


def test_the_options_in_a_paper_recipe_are_checked_against_each_backbone():
    """configs/paper.yaml's FR recipe serves ViT-B/16 (12 blocks) and ViT-L/14 (24): 11 suits both, 12
    only the larger, and the sentence names the recipe key, the model and the allowed range."""
    config = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    config["recipes"]["froundation"].update(l2sp={"weight": 1.0}, lp_ft={"probe_steps": 500}, freeze_blocks=11)
    check_config(copy.deepcopy(config), SCHEMA)
    config["recipes"]["froundation"]["freeze_blocks"] = 12
    with pytest.raises(UserError, match=r"^Config key 'recipes\.froundation' is invalid: recipes\.froundation\."
                                        r"freeze_blocks is 12, but the image encoder of ViT-B-16-quickgelu \(model "
                                        r"clip-vit-b16-fr\) has 12 blocks: use 0 to 11"):
        check_config(config, SCHEMA)


def test_no_share_of_a_gain_the_plain_fine_tune_did_not_make():
    """+10 pp whose interval crosses 0: the plain fine-tune did not learn, so nothing is a share of it."""
    metrics, gelo = _frames(POINTS)
    rows = [(m, "pair accuracy", 0.10, -0.02, 0.2, False) for m in POINTS]
    table = mitigation_table(metrics, gelo, _remedies(), _task_gain(rows))
    assert table.share_of_gain.isna().all() and not table.learned.any() and not table.front_zeroshot.any()
