"""The shipped paper numbers: transcription checks, the paper's Avg./GELO reproduced, run vs paper."""

import math
import re

import pandas as pd
import pytest

from overspec.errors import UserError
from overspec.report.paper import (
    compare_with_paper,
    load_paper_tables,
    paper_as_metrics,
    paper_row_labels,
    write_paper_comparison,
)
from overspec.report.tables import paper_layout_tables, write_paper_tables

PAPER = load_paper_tables()
APPROACHES = ["CLIP", "FRoundation", "MADation", "FoundPAD"]
ARCHS = ["ViT-B/16", "ViT-L/14"]


def printed(approach, arch, protocol, dataset, metric):
    hit = PAPER[
        (PAPER.approach == approach)
        & (PAPER.arch == arch)
        & (PAPER.protocol == protocol)
        & (PAPER.dataset == dataset)
        & (PAPER.metric == metric)
    ]
    assert len(hit) == 1, (approach, arch, protocol, dataset, metric)
    return hit.printed.item()


def test_shape_of_the_transcription():
    counts = PAPER.groupby("table").size().to_dict()
    # A: 8 rows x 14 datasets + 8 Avg. + 6 GELO; B: 8 x 13 + 8 + 6; C: 8 x 16 columns
    assert counts == {"A": 126, "B": 118, "C": 128}
    assert not PAPER.duplicated(["approach", "arch", "protocol", "dataset", "metric"]).any()
    assert set(PAPER.approach) == set(APPROACHES) and set(PAPER.arch) == set(ARCHS)
    assert "imagenetv2" in set(PAPER[PAPER.protocol == "zeroshot"].dataset)
    assert "imagenetv2" not in set(PAPER[PAPER.protocol == "linear_probe"].dataset)


def test_spot_values_against_the_reference_notes():
    # abstract: FRoundation ViT-L on ImageNet-v2 51.63 vs CLIP 69.84; IJB-C 93.40 - 34.88 = 58.52
    assert printed("FRoundation", "ViT-L/14", "zeroshot", "imagenetv2", "accuracy") == "51.63"
    assert printed("CLIP", "ViT-L/14", "zeroshot", "imagenetv2", "accuracy") == "69.84"
    gap = float(printed("FRoundation", "ViT-L/14", "ijb", "ijbc", "tar@far=0.0001")) - float(
        printed("MADation", "ViT-L/14", "ijb", "ijbc", "tar@far=0.0001")
    )
    assert round(gap, 2) == 58.52
    # Table C equals the companion papers: MADation "Average" rows, FoundPAD O&C&M -> CA
    mad = [
        "eer",
        "apcer@bpcer=0.01",
        "apcer@bpcer=0.1",
        "apcer@bpcer=0.2",
        "bpcer@apcer=0.01",
        "bpcer@apcer=0.1",
        "bpcer@apcer=0.2",
    ]
    assert [printed("MADation", "ViT-B/16", "mad", "average", m) for m in mad] == [
        "11.89",
        "39.36",
        "17.18",
        "12.39",
        "42.64",
        "22.14",
        "13.97",
    ]
    assert [printed("MADation", "ViT-L/14", "mad", "average", m) for m in mad] == [
        "11.94",
        "29.24",
        "14.05",
        "11.04",
        "60.40",
        "18.90",
        "7.57",
    ]
    assert [printed("FoundPAD", a, "pad", "celeba_spoof", m) for a in ARCHS for m in ("hter", "auc")] == [
        "15.6",
        "91.0",
        "43.0",
        "59.7",
    ]
    # FRoundation abstract: CLIP ViT-L averages 95.59 over the five pair sets (ViT-B: 93.11)
    for arch, mean in (("ViT-L/14", 95.59), ("ViT-B/16", 93.11)):
        pairs = PAPER[
            (PAPER.approach == "FRoundation") & (PAPER.arch == arch) & (PAPER.protocol == "face_verification")
        ]
        assert len(pairs) == 5 and round(pairs.value.mean(), 2) == mean


def test_full_precision_averages_match_the_notes():
    # §4.4: recomputed from the per-dataset cells
    notes = {
        "zeroshot": [60.976, 69.674, 41.979, 56.657, 59.494, 69.271, 61.018, 69.440],
        "linear_probe": [81.037, 84.962, 75.281, 80.774, 80.306, 84.905, 80.799, 84.906],
    }
    for protocol, expected in notes.items():
        cells = PAPER[(PAPER.protocol == protocol) & (PAPER.dataset != "avg")]
        means = [cells[(cells.approach == a) & (cells.arch == r)].value.mean() for a in APPROACHES for r in ARCHS]
        assert [round(m, 3) for m in means] == pytest.approx(expected, abs=6e-4)


def test_paper_layout_reproduces_printed_avg_and_gelo():
    tables = paper_layout_tables(paper_as_metrics(PAPER), row_labels=paper_row_labels(PAPER))
    checked = 0
    for protocol in ("zeroshot", "linear_probe"):
        table = tables[protocol]
        assert len(table.labels) == 8
        for i, (approach, arch) in enumerate(zip(table.labels.Approach, table.labels.Arch)):
            avg = table.number(i, ("", "Avg."))
            expected = printed(approach, arch, protocol, "avg", "accuracy")
            if (approach, arch, protocol) == ("FRoundation", "ViT-B/16", "zeroshot"):
                # printed 41.97 for a mean of 41.979: the paper truncated this one cell; accept either
                exact = table.values.iloc[i][("", "Avg.")]
                assert expected == f"{math.floor(exact * 100) / 100:.2f}" and avg == f"{exact:.2f}" == "41.98"
            else:
                assert avg == expected, (approach, arch, protocol)
            gelo = table.number(i, ("", "GELO"))
            assert gelo == ("-" if approach == "CLIP" else printed(approach, arch, protocol, "avg", "gelo"))
            checked += 1
    assert checked == 16


def test_rendered_paper_tables_print_the_papers_avg_and_gelo(tmp_path):
    """The files as written (CSV, Markdown, LaTeX, HTML) carry the printed Avg. and GELO of Tables A and B."""
    written = write_paper_tables(paper_as_metrics(PAPER), tmp_path, row_labels=paper_row_labels(PAPER))
    for protocol in ("zeroshot", "linear_probe"):
        table = pd.read_csv(written[f"{protocol}_csv"], dtype=str)
        assert len(table) == 8
        markdown = written[f"{protocol}_md"].read_text()
        latex = written[f"{protocol}_tex"].read_text()
        page = written[f"{protocol}_html"].read_text()
        for approach, arch, avg, gelo in zip(table.Approach, table.Arch, table["Avg."], table["GELO"]):
            expected_avg = printed(approach, arch, protocol, "avg", "accuracy")
            if (approach, arch, protocol) == ("FRoundation", "ViT-B/16", "zeroshot"):
                assert (expected_avg, avg) == ("41.97", "41.98")  # the paper truncated 41.979; we round
            else:
                assert avg == expected_avg, (approach, arch, protocol)
            expected_gelo = "-" if approach == "CLIP" else printed(approach, arch, protocol, "avg", "gelo")
            assert gelo == expected_gelo, (approach, arch, protocol)
            # the same row's last two cells in the other renderings (bold where best of its backbone)
            line = next(t for t in markdown.splitlines() if t.startswith(f"| {approach} ") and f"| {arch} " in t)
            assert [c.strip().strip("*") for c in line.strip(" |").split("|")][-2:] == [avg, gelo]
            tex = next(t for t in latex.splitlines() if t.startswith(f"{approach} & {arch} &"))
            cells = [re.sub(r"^\\textbf\{(.*)\}$", r"\1", c.strip()) for c in tex.rstrip(" \\").split("&")]
            assert cells[-2:] == [avg, gelo]
            assert f">{avg}</td>" in page and f">{gelo}</td>" in page
    gelo = pd.read_csv(written["gelo_csv"], dtype=str).set_index("Approach")
    for approach in ("FRoundation", "MADation", "FoundPAD"):
        for protocol, label in (("zeroshot", "Zero-shot"), ("linear_probe", "Linear probe")):
            for arch in ARCHS:
                assert gelo.loc[approach, f"{label} {arch}"] == printed(approach, arch, protocol, "avg", "gelo")


def test_gelo_from_printed_averages_matches_printed_gelo():
    for protocol in ("zeroshot", "linear_probe"):
        for arch in ARCHS:
            base = float(printed("CLIP", arch, protocol, "avg", "accuracy"))
            for approach in APPROACHES[1:]:
                ratio = float(printed(approach, arch, protocol, "avg", "accuracy")) / base
                assert f"{ratio:.3f}" == printed(approach, arch, protocol, "avg", "gelo")


def test_biometric_and_gelo_tables_show_the_printed_cells():
    tables = paper_layout_tables(paper_as_metrics(PAPER), row_labels=paper_row_labels(PAPER))
    bio = tables["biometrics"]
    cells = PAPER[PAPER.table == "C"]
    assert bio.values.shape == (8, 16)
    for i, (approach, arch) in enumerate(zip(bio.labels.Approach, bio.labels.Arch)):
        shown = sorted(float(bio.number(i, c)) for c in bio.values.columns)
        expected = sorted(cells[(cells.approach == approach) & (cells.arch == arch)].value)
        assert shown == pytest.approx(expected, abs=1e-9)
    summary = tables["gelo"]
    assert list(summary.labels.Approach) == ["FRoundation", "MADation", "FoundPAD"]
    assert [summary.number(0, c) for c in summary.values.columns] == ["0.688", "0.813", "0.929", "0.951"]


def _run_from_paper(shift: float = 0.0) -> pd.DataFrame:
    """A fake run: the paper's own cells under this package's model names, shifted by `shift`."""
    run = paper_as_metrics(PAPER)
    names = {"CLIP ViT-B/16": "clip-b16", "FRoundation ViT-B/16": "fr-b16"}
    run = run[run.model.isin(names)].copy()
    run["model"] = run.model.map(names)
    run.loc[run.model == "fr-b16", "value"] += shift
    return run


def test_compare_with_paper_reports_cells_avg_and_gelo():
    run = _run_from_paper(shift=0.01)
    mapping = {"fr-b16": ("FRoundation", "ViT-B/16")}
    table = compare_with_paper(run, PAPER, mapping)
    assert list(table.columns) == [
        "model",
        "approach",
        "arch",
        "protocol",
        "dataset",
        "metric",
        "run",
        "paper",
        "difference",
    ]
    cells = table[table.dataset != "avg"]
    assert len(cells) == 14 + 13 + 16  # every published cell of the mapped model
    assert cells.difference.to_numpy() == pytest.approx(1.0)  # +0.01 as a fraction = +1 point
    avg = table[(table.dataset == "avg") & (table.metric == "accuracy") & (table.protocol == "zeroshot")].iloc[0]
    assert avg.run == pytest.approx(41.979 + 1.0, abs=1e-3) and avg.paper == 41.97
    gelo = table[(table.metric == "gelo") & (table.protocol == "zeroshot")].iloc[0]
    assert gelo.run == pytest.approx((41.97857 + 1.0) / 60.97643, abs=1e-5)
    assert gelo.paper == 0.688


def test_compare_with_paper_leaves_missing_cells_empty_and_checks_the_mapping():
    run = _run_from_paper()
    run = run[~((run.model == "fr-b16") & (run.dataset == "cifar10"))]
    table = compare_with_paper(run, PAPER, {"fr-b16": ("FRoundation", "ViT-B/16")})
    missing = table[table.dataset == "cifar10"]
    assert len(missing) == 2 and missing.run.isna().all()
    assert table[(table.dataset == "avg") & (table.protocol == "zeroshot")].run.isna().all()
    with pytest.raises(UserError, match="no results for"):
        compare_with_paper(run, PAPER, {"nope": ("FRoundation", "ViT-B/16")})
    with pytest.raises(UserError, match="does not have"):
        compare_with_paper(run, PAPER, {"fr-b16": ("FRoundation", "ViT-H/14")})


def test_dataset_map_renames_run_datasets(tmp_path):
    run = _run_from_paper()
    run.loc[run.dataset == "renderedsst2", "dataset"] = "sst2"
    table = compare_with_paper(run, PAPER, {"fr-b16": ("FRoundation", "ViT-B/16")}, {"sst2": "renderedsst2"})
    assert table[table.dataset == "renderedsst2"].difference.abs().max() < 1e-9
    paths = write_paper_comparison(
        run, tmp_path, {"fr-b16": ("FRoundation", "ViT-B/16")}, dataset_map={"sst2": "renderedsst2"}
    )
    assert "| fr-b16" in paths["md"].read_text()
    assert pd.read_csv(paths["csv"]).shape[0] == len(table)
