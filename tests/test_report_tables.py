"""Table writers: deterministic bytes, exact floats, paper layout with booktabs and bold best."""

import io
import re

import pandas as pd
import pytest

from overspec.report.gelo import gelo_table
from overspec.report.layout import biometric_table, general_table
from overspec.report.tables import PAPER_TABLES, write_long_tables, write_paper_tables

COLUMNS = ["model", "backbone", "adaptation", "protocol", "dataset", "metric", "value", "n"]


def study() -> pd.DataFrame:
    rows = []
    general = {
        "clip-b": ("B", "none", {"cifar10": 0.9, "food101": 0.7}, {"cifar10": 0.95, "food101": 0.8}),
        "fr-b": ("B", "fr", {"cifar10": 0.6, "food101": 0.5}, {"cifar10": 0.9, "food101": 0.7}),
        "pad-b": ("B", "pad", {"cifar10": 0.91, "food101": 0.69}, {"cifar10": 0.94, "food101": 0.8}),
        "clip-l": ("L", "none", {"cifar10": 0.95, "food101": 0.8}, {"cifar10": 0.97, "food101": 0.85}),
        "fr-l": ("L", "fr", {"cifar10": 0.8, "food101": 0.7}, {"cifar10": 0.96, "food101": 0.84}),
    }
    for model, (backbone, adaptation, zs, lp) in general.items():
        for protocol, values in (("zeroshot", zs), ("linear_probe", lp)):
            for dataset, value in values.items():
                rows.append((model, backbone, adaptation, protocol, dataset, "primary", value, 1000))
                rows.append((model, backbone, adaptation, protocol, dataset, "top1", value, 1000))
        rows.append((model, backbone, adaptation, "zeroshot", "cifar10", "primary_ci_low", zs["cifar10"] - 0.01, 1000))
        rows.append((model, backbone, adaptation, "zeroshot", "cifar10", "primary_ci_high", zs["cifar10"] + 0.01, 1000))
    bio = {
        "clip-b": {"lfw": 0.93, "eer": 0.25, "hter": 0.40},
        "fr-b": {"lfw": 0.99, "eer": 0.50, "hter": 0.45},
        "pad-b": {"lfw": 0.90, "eer": 0.30, "hter": 0.15},
    }
    for model, values in bio.items():
        backbone, adaptation = general[model][:2]
        rows.append((model, backbone, adaptation, "face_verification", "lfw", "accuracy", values["lfw"], 6000))
        for mad_set, shift in (("m1", 0.0), ("m2", 0.1)):
            rows.append((model, backbone, adaptation, "mad", mad_set, "eer", values["eer"] + shift, 400))
            rows.append((model, backbone, adaptation, "mad", mad_set, "apcer@bpcer=0.10", values["eer"] + shift, 400))
        rows.append((model, backbone, adaptation, "pad", "celeba_spoof", "hter", values["hter"], None))
        rows.append((model, backbone, adaptation, "pad", "celeba_spoof", "auc", 1 - values["hter"], None))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_long_tables_are_byte_identical_for_identical_and_reordered_input(tmp_path):
    first = write_long_tables(study(), tmp_path / "a")
    second = write_long_tables(study().sample(frac=1.0, random_state=7), tmp_path / "b")
    assert set(first) == {"metrics_csv", "gelo_csv", "metrics_md", "gelo_md"}
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes(), key
    assert not list((tmp_path / "a").glob(".*tmp*"))  # nothing left from the atomic writes


def test_metrics_csv_round_trips_floats_exactly_and_keeps_columns(tmp_path):
    metrics = study()
    metrics.loc[1, "value"] = 0.1 + 0.2  # a top1 row; 0.30000000000000004: '%.6f' would lose it
    paths = write_long_tables(metrics, tmp_path)
    assert ",0.30000000000000004," in paths["metrics_csv"].read_text()
    # pandas 2's default float parser is inexact; pandas 3 round-trips by default (and deprecates the option)
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    back = pd.read_csv(paths["metrics_csv"], **exact)
    assert list(back.columns) == COLUMNS
    assert len(back) == len(metrics)
    assert (back.value == 0.1 + 0.2).sum() == 1
    assert back.n.isna().sum() == metrics.n.isna().sum()
    gelo = pd.read_csv(paths["gelo_csv"])
    assert list(gelo.columns) == ["model", "backbone", "adaptation", "protocol", "avg_baseline", "avg_model", "gelo"]
    fr = gelo[(gelo.model == "fr-b") & (gelo.protocol == "zeroshot")].iloc[0]
    assert fr.gelo == pytest.approx(0.55 / 0.8)  # mean(0.6, 0.5) / mean(0.9, 0.7)
    assert gelo[gelo.adaptation == "none"].gelo.eq(1.0).all()


def test_wide_markdown_has_a_section_per_protocol(tmp_path):
    text = write_long_tables(study(), tmp_path)["metrics_md"].read_text()
    for heading in (
        "## Zero-shot (zeroshot)",
        "## Linear probe (linear_probe)",
        "## FR (face_verification)",
        "## MAD (mad)",
        "## PAD (pad)",
    ):
        assert heading in text
    assert "Avg." in text and "GELO" in text
    assert "90.00 [89.00, 91.00]" in text  # the interval rides along where one was computed


def test_general_table_values_avg_gelo_and_bold_per_backbone():
    table = general_table(study(), "zeroshot")
    assert list(table.labels.Model) == ["clip-b", "clip-l", "fr-b", "fr-l", "pad-b"]
    assert [c for _, c in table.values.columns] == ["Food101", "CIFAR10", "Avg.", "GELO"]
    row = list(table.labels.Model).index("fr-b")
    assert table.number(row, ("", "Avg.")) == "55.00"
    assert table.number(row, ("", "GELO")) == f"{0.55 / 0.8:.3f}"
    assert table.number(0, ("", "GELO")) == "-"  # a baseline's GELO prints as in the paper
    best = table.best_mask()
    # backbone B: pad-b has the best CIFAR10 (91.00); clip-b the best Food101; backbone L: clip-l
    assert best.loc[list(table.labels.Model).index("pad-b"), ("", "CIFAR10")]
    assert best.loc[0, ("", "Food101")] and not best.loc[row, ("", "Food101")]
    assert best.loc[1, ("", "CIFAR10")]
    # GELO bold among fine-tuned models of a backbone only, never on the '-' of a baseline
    assert best.loc[list(table.labels.Model).index("pad-b"), ("", "GELO")]
    assert not best.loc[0, ("", "GELO")]


def test_latex_is_booktabs_with_bold_best_and_escaped_names():
    metrics = study()
    metrics["model"] = metrics.model.str.replace("-", "_")
    latex = general_table(metrics, "zeroshot").to_latex()
    assert latex.startswith("\\begin{tabular}{ll")
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert latex.count(rule) == 1
    assert "\\textbf{91.00}" in latex and "\\textbf{70.00}" in latex  # best CIFAR10 / Food101 on B
    assert "\\textbf{69.00}" not in latex
    assert "pad\\_b" in latex


def test_biometric_table_directions_and_mad_average():
    table = biometric_table(study())
    headers = list(table.values.columns)
    assert headers[:2] == [("FR", "LFW"), ("PAD", "CA HTER")]
    assert ("MAD", "EER") in headers and ("MAD", "APCER@BPCER=10.00") in headers  # six sets -> their mean
    models = list(table.labels.Model)
    eer = table.values[("MAD", "EER")]
    assert eer[models.index("clip-b")] == pytest.approx(30.0)  # mean of 25 and 35
    best = table.best_mask()
    assert best.loc[models.index("clip-b"), ("MAD", "EER")]  # lower is better
    assert best.loc[models.index("pad-b"), ("PAD", "CA HTER")]
    assert best.loc[models.index("fr-b"), ("FR", "LFW")]  # higher is better
    latex = table.to_latex()
    assert "\\multicolumn{2}{c}{PAD}" in latex and "\\textbf{15.00}" in latex


def test_html_table_has_grouped_headers_bold_best_and_escaped_labels():
    metrics = study()
    metrics.loc[metrics.model == "pad-b", "model"] = "pad<b>"
    html = biometric_table(metrics).to_html()
    assert html.startswith('<p class="overspec-title"><strong>Biometric benchmarks (%)</strong></p>')
    assert 'class="overspec-table"' in html and "pad&lt;b&gt;" in html and "pad<b>" not in html
    assert 'colspan="2"' in html and ">PAD</th>" in html  # the PAD group spans HTER and AUC
    # the best PAD HTER (15.00, pad<b>) is the one bold cell of its column
    selectors = re.search(r"\n([^\n{]+) \{\n  font-weight: bold;", html).group(1)
    bold_ids = re.findall(r"#T_overspec_(row\d+_col\d+)", selectors)
    hter_cells = re.findall(r'<td id="T_overspec_(row\d+_col\d+)" class="[^"]+" >([0-9.]+)</td>', html)
    assert [v for cell, v in hter_cells if cell in bold_ids and v == "15.00"] == ["15.00"]
    assert "No results" in biometric_table(metrics[metrics.protocol == "zeroshot"]).to_html()


def test_per_set_biometric_table_when_not_collapsed():
    table = biometric_table(study(), collapse=())
    assert ("MAD", "m1 EER") in list(table.values.columns)


def test_ties_at_printed_precision_are_all_bold():
    metrics = study()
    metrics.loc[
        (metrics.model == "pad-b")
        & (metrics.metric == "primary")
        & (metrics.dataset == "cifar10")
        & (metrics.protocol == "zeroshot"),
        "value",
    ] = 0.900001
    table = general_table(metrics, "zeroshot")
    best = table.best_mask()
    models = list(table.labels.Model)
    assert best.loc[models.index("pad-b"), ("", "CIFAR10")] and best.loc[models.index("clip-b"), ("", "CIFAR10")]


def test_paper_tables_write_all_files_deterministically(tmp_path):
    metrics = study()
    labels = {"clip-b": ("CLIP", "B"), "fr-b": ("FRoundation", "B")}
    first = write_paper_tables(metrics, tmp_path / "a", row_labels=labels, with_ci=True)
    second = write_paper_tables(metrics.iloc[::-1], tmp_path / "b", row_labels=labels, with_ci=True)
    assert len(first) == 4 * len(PAPER_TABLES)
    for key, path in first.items():
        assert path.read_bytes() == second[key].read_bytes(), key
    zeroshot = pd.read_csv(first["zeroshot_csv"], dtype=str)
    assert list(zeroshot.columns[:2]) == ["Approach", "Arch"]
    assert "CIFAR10 ci_low" in zeroshot.columns
    assert zeroshot.loc[zeroshot.Approach == "FRoundation", "Avg."].item() == "55.00"
    gelo = pd.read_csv(first["gelo_csv"], dtype=str)
    assert gelo.loc[gelo.Approach == "FRoundation", "Zero-shot B"].item() == f"{0.55 / 0.8:.3f}"


def test_a_study_without_biometrics_still_writes_its_biometric_table(tmp_path):
    metrics = study()
    metrics = metrics[metrics.protocol.isin(["zeroshot", "linear_probe"])]
    paths = write_paper_tables(metrics, tmp_path)
    assert "No results" in paths["biometrics_md"].read_text()
    assert paths["biometrics_tex"].read_text().startswith("%")
    assert "No results" in paths["biometrics_html"].read_text()
    assert pd.read_csv(io.StringIO(paths["biometrics_csv"].read_text())).empty


def test_gelo_passed_in_is_used_as_given():
    metrics = study()
    gelo = gelo_table(metrics)
    gelo.loc[(gelo.model == "fr-b") & (gelo.protocol == "zeroshot"), "gelo"] = 0.5
    table = general_table(metrics, "zeroshot", gelo=gelo)
    assert table.number(list(table.labels.Model).index("fr-b"), ("", "GELO")) == "0.500"
