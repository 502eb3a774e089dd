"""summary.md: the three findings judged correctly on crafted GELO tables, gains, missing models."""

import pandas as pd
import pytest

from overspec.analysis.task_gain import TASK_GAIN_COLUMNS
from overspec.report.gelo import GELO_COLUMNS, gelo_table
from overspec.report.paper import load_paper_tables, paper_as_metrics
from overspec.report.summary import (
    NOT_SUPPORTED,
    NOT_TESTED,
    SUPPORTED,
    backbone_ranks,
    biometric_gains,
    describe_adaptation,
    describe_adaptations,
    findings,
    write_summary,
)


def gelo(values: dict[tuple[str, str, str], float]) -> pd.DataFrame:
    """{(adaptation, backbone, protocol): gelo} -> a GELO table, baselines included."""
    rows = []
    for backbone in sorted({b for _, b, _ in values}):
        for protocol in ("zeroshot", "linear_probe"):
            rows.append((f"clip-{backbone}", backbone, "none", protocol, 0.5, 0.5, 1.0))
    for (adaptation, backbone, protocol), value in values.items():
        rows.append((f"{adaptation}-{backbone}", backbone, adaptation, protocol, 0.5, 0.5 * value, value))
    return pd.DataFrame(rows, columns=list(GELO_COLUMNS))


PAPER_LIKE = {
    ("fr", "ViT-B/16", "zeroshot"): 0.688,
    ("mad", "ViT-B/16", "zeroshot"): 0.976,
    ("pad", "ViT-B/16", "zeroshot"): 0.990,
    ("fr", "ViT-L/14", "zeroshot"): 0.813,
    ("mad", "ViT-L/14", "zeroshot"): 0.994,
    ("pad", "ViT-L/14", "zeroshot"): 0.997,
    ("fr", "ViT-B/16", "linear_probe"): 0.929,
    ("mad", "ViT-B/16", "linear_probe"): 0.991,
    ("pad", "ViT-B/16", "linear_probe"): 0.997,
    ("fr", "ViT-L/14", "linear_probe"): 0.951,
    ("mad", "ViT-L/14", "linear_probe"): 0.999,
    ("pad", "ViT-L/14", "linear_probe"): 0.999,
}


def test_all_three_supported():
    task, head, capacity = findings(gelo(PAPER_LIKE))
    assert (task.verdict, task.holds, task.total) == (SUPPORTED, 8, 8)
    assert (head.verdict, head.holds, head.total) == (SUPPORTED, 4, 4)
    assert "confounded" in head.note
    assert (capacity.verdict, capacity.holds, capacity.total) == (SUPPORTED, 6, 6)


def test_each_finding_can_fail():
    values = dict(PAPER_LIKE)
    values[("fr", "ViT-L/14", "linear_probe")] = 0.9995  # FR above MAD (0.999) on ViT-L
    values[("pad", "ViT-L/14", "zeroshot")] = 0.95  # PAD loses capacity ordering
    task, head, capacity = findings(gelo(values))
    assert task.verdict == NOT_SUPPORTED and (task.holds, task.total) == (6, 8)
    assert any("fails" in line and "ViT-L/14, linear probe" in line for line in task.lines)
    assert head.verdict == NOT_SUPPORTED and head.holds == 3  # 0.9995 > mean(0.999, 0.999)
    assert capacity.verdict == NOT_SUPPORTED and (capacity.holds, capacity.total) == (5, 6)
    assert any(line.startswith("pad, zero-shot: ViT-L/14 0.950 < ViT-B/16 0.990 (fails)") for line in capacity.lines)


def test_missing_models_are_not_tested():
    only_fr = {k: v for k, v in PAPER_LIKE.items() if k[0] == "fr" and k[1] == "ViT-B/16"}
    task, head, capacity = findings(gelo(only_fr))
    assert task.verdict == head.verdict == capacity.verdict == NOT_TESTED
    assert "this run has FR" in task.note
    no_fr = {k: v for k, v in PAPER_LIKE.items() if k[0] != "fr"}
    task, head, capacity = findings(gelo(no_fr))
    assert task.verdict == NOT_TESTED and head.verdict == NOT_TESTED
    assert capacity.verdict == SUPPORTED and capacity.total == 4


def test_baselines_only_test_nothing():
    only_baselines = gelo({("fr", "ViT-B/16", "zeroshot"): 0.7})
    only_baselines = only_baselines[only_baselines.adaptation == "none"]
    assert [f.verdict for f in findings(only_baselines)] == [NOT_TESTED] * 3


def test_controlled_head_pairs_are_counted():
    values = dict(PAPER_LIKE)
    values[("fr-binary", "ViT-B/16", "zeroshot")] = 0.60  # same task, binary head, forgets MORE
    _, head, _ = findings(gelo(values))
    assert head.verdict == NOT_SUPPORTED
    assert any("same task FR" in line and "(fails)" in line for line in head.lines)
    assert not head.note


def test_overrides_and_name_inference():
    assert describe_adaptation("lora-fr-r16").task == "fr"
    assert describe_adaptation("fr-binary").head == "binary"
    assert describe_adaptation("mad-cosface").head == "multiclass"
    assert describe_adaptation("mystery").task is None
    assert describe_adaptation("mystery", {"task": "pad"}).head == "binary"
    # an ablation marked non-primary does not enter the task-complexity comparison
    values = dict(PAPER_LIKE)
    values[("fr-r64", "ViT-B/16", "zeroshot")] = 0.999
    task, _, _ = findings(gelo(values), adaptations={"fr-r64": {"primary": False}})
    assert task.verdict == SUPPORTED
    task, _, _ = findings(gelo(values))
    assert task.verdict == NOT_SUPPORTED
    assert describe_adaptations(["none", "fr"]) == {"fr": describe_adaptation("fr")}


def test_backbone_sizes_from_names_or_table():
    assert backbone_ranks(["ViT-L/14", "ViT-B/16", "toy-clip-s", "toy-clip-m", "resnet"]) == {
        "ViT-L/14": 4,
        "ViT-B/16": 3,
        "toy-clip-s": 1,
        "toy-clip-m": 2,
    }
    assert backbone_ranks(["a", "b"], {"a": 8e6, "b": 3e7}) == {"a": 8e6, "b": 3e7}
    values = {("fr", "a", "zeroshot"): 0.9, ("fr", "b", "zeroshot"): 0.8}
    *_, capacity = findings(gelo(values))
    assert capacity.verdict == NOT_TESTED and "sizes unknown for a, b" in capacity.note
    *_, capacity = findings(gelo(values), backbone_sizes={"a": 1, "b": 2})
    assert capacity.verdict == NOT_SUPPORTED


def test_biometric_gains_use_direction_of_each_metric():
    metrics = paper_as_metrics(load_paper_tables())
    gains = biometric_gains(metrics, describe_adaptations(metrics.adaptation))
    mad = gains[(gains.model == "MADation ViT-B/16") & (gains.metric == "EER")].iloc[0]
    assert (mad.fine_tuned, mad.baseline_value, mad.gain_pp) == pytest.approx((11.89, 23.59, 11.70))
    auc = gains[(gains.model == "FoundPAD ViT-L/14") & (gains.metric == "AUC")].iloc[0]
    assert auc.gain_pp == pytest.approx(59.7 - 74.83)
    fr = gains[(gains.model == "FRoundation ViT-L/14") & (gains.benchmark == "mean of 5 sets")].iloc[0]
    assert fr.fine_tuned == pytest.approx(95.594)


def test_mad_gain_is_the_average_of_the_morph_sets_not_of_the_average_too():
    rows = []
    for model, adaptation, eers in (("clip-s", "none", (0.5, 0.4, 0.3)), ("clip-s-mad", "mad", (0.2, 0.1, 0.3))):
        for subset, eer in zip(("gan", "landmark", "pixel"), eers):
            rows.append((model, "toy-S", adaptation, "mad", subset, "eer", eer, 60))
        rows.append((model, "toy-S", adaptation, "mad", "average", "eer", sum(eers) / 3, 60))
    metrics = pd.DataFrame(rows, columns=["model", "backbone", "adaptation", "protocol", "dataset", "metric", "value", "n"])
    gain = biometric_gains(metrics, describe_adaptations(metrics.adaptation)).iloc[0]
    assert gain.benchmark == "mean of 3 sets"
    assert (gain.fine_tuned, gain.baseline_value, gain.gain_pp) == pytest.approx((20.0, 40.0, 20.0))


def test_summary_page_on_published_numbers_and_on_a_partial_run(tmp_path):
    metrics = paper_as_metrics(load_paper_tables())
    table = gelo_table(metrics)
    text = write_summary(metrics, table, tmp_path / "summary.md").read_text()
    # FoundPAD ViT-L/14's published HTER (43.00) is worse than CLIP ViT-L/14's (31.37): it did not learn its
    # task, so it leaves the findings, and with it the one comparison that broke the capacity claim
    # (FoundPAD zero-shot GELO 1.001 on ViT-B/16 > 0.997 on ViT-L/14)
    assert "| FoundPAD ViT-L/14    | ViT-L/14   | PAD    | HTER     | did not learn its task" in text
    assert "Left out of the findings" in text and "FoundPAD ViT-L/14 (did not learn its task)" in text
    assert "1. **Task complexity.**" in text and "**Supported** (6 of 6 comparisons hold)" in text
    assert "3. **Capacity.**" in text and "**Supported** (4 of 4 comparisons hold)" in text
    # each comparison states both sides: what the model bought on its own task and what it kept
    assert ("ViT-B/16, zero-shot: FR FRoundation ViT-B/16 (FR +10.47 pp Acc.) GELO 0.688 < MAD MADation ViT-B/16 "
            "(MAD +11.70 pp EER) GELO 0.976 (holds)") in text
    assert "FRoundation ViT-B/16 | ViT-B/16   | fr" in text and "0.688" in text
    assert "+53.73" in text  # FRoundation ViT-B on IJB-B over CLIP

    partial = metrics[metrics.model.isin(["CLIP ViT-B/16", "MADation ViT-B/16"])]
    text = write_summary(partial, gelo_table(partial), tmp_path / "partial.md").read_text()
    assert text.count("**Not tested on this run**") == 3
    assert (
        write_summary(partial, gelo_table(partial), tmp_path / "again.md").read_bytes()
        == (tmp_path / "partial.md").read_bytes()
    )


def _task_gain(rows):
    """task_gain.csv rows: (model, task, metric, fine-tuned, baseline, gain, low, high, significant)."""
    frame = pd.DataFrame(
        [dict(zip(("model", "task", "metric", "model_value", "baseline_value", "gain", "ci_low", "ci_high", "significant"),
                  row)) for row in rows])
    for column in TASK_GAIN_COLUMNS:
        if column not in frame:
            frame[column] = 0 if column in ("resamples", "seed", "p_value") else ""
    return frame[list(TASK_GAIN_COLUMNS)]


def test_a_fine_tune_without_a_significant_gain_is_marked_and_left_out(tmp_path):
    metrics = paper_as_metrics(load_paper_tables())
    names = {"FRoundation": "fr", "MADation": "mad", "FoundPAD": "pad"}
    rows = []
    for approach, task in names.items():
        for arch in ("ViT-B/16", "ViT-L/14"):
            # MADation ViT-B/16 gains 2 points, but its interval crosses 0: it did not learn its task here
            unsure = (approach, arch) == ("MADation", "ViT-B/16")
            rows.append((f"{approach} {arch}", task, "metric", 0.9, 0.8, 0.02 if unsure else 0.10,
                         -0.01 if unsure else 0.05, 0.05 if unsure else 0.15, not unsure))
    text = write_summary(metrics, gelo_table(metrics), tmp_path / "summary.md", task_gain=_task_gain(rows)).read_text()
    assert "| MADation ViT-B/16    | ViT-B/16   | MAD    | metric   | did not learn its task" in text
    assert "+2.00 [-1.00, +5.00]" in text and "+10.00 [+5.00, +15.00]" in text
    assert "Left out of the findings" in text and "MADation ViT-B/16 (did not learn its task)" in text
    findings_part = text[text.index("## The study's findings"):]
    assert "MADation ViT-B/16" not in findings_part and "MADation ViT-L/14" in findings_part
    # ViT-B/16 keeps FR vs PAD (2 protocols); ViT-L/14 keeps FR vs MAD and PAD (4): 6 comparisons, not 8
    assert "**Supported** (6 of 6 comparisons hold)" in findings_part

    # with no fine-tune that learned, every finding reads "not tested on this run"
    none_learned = [row[:-1] + (False,) for row in rows]
    text = write_summary(metrics, gelo_table(metrics), tmp_path / "none.md", task_gain=_task_gain(none_learned)).read_text()
    assert text.count("**Not tested on this run**") == 3 and text.count("did not learn its task") >= 6
