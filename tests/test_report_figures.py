"""Figures: valid PNG + SVG of sensible size, byte-stable, tolerant of missing optional columns."""

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from overspec.errors import UserError
from overspec.report import figures
from overspec.report.gelo import gelo_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def study() -> pd.DataFrame:
    rows = []
    spec = {
        "clip-s": ("toy-s", "none", 1.0),
        "fr-s": ("toy-s", "fr", 0.7),
        "mad-s": ("toy-s", "mad", 0.95),
        "clip-m": ("toy-m", "none", 1.0),
        "fr-m": ("toy-m", "fr", 0.85),
    }
    for model, (backbone, adaptation, keep) in spec.items():
        for protocol, base in (("zeroshot", 0.6), ("linear_probe", 0.8)):
            for k, dataset in enumerate(["shapes", "colours", "digits"]):
                value = (base + 0.05 * k) * (keep if protocol == "zeroshot" else (1 + keep) / 2)
                rows.append((model, backbone, adaptation, protocol, dataset, "primary", value, 300))
    return pd.DataFrame(
        rows, columns=["model", "backbone", "adaptation", "protocol", "dataset", "metric", "value", "n"]
    )


def scores(n=400, seed=0, with_types=True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    genuine, impostor = rng.normal(1.5, 1.0, n), rng.normal(0.0, 1.0, 2 * n)
    frame = pd.DataFrame(
        {
            "sample_id": np.arange(3 * n),
            "score": np.r_[genuine, impostor],
            "label": np.r_[np.ones(n, int), np.zeros(2 * n, int)],
        }
    )
    if with_types:
        frame["attack_type"] = ["bonafide"] * n + ["print"] * n + ["replay"] * n
    return frame


def check_pair(paths, min_side=300):
    png, svg = paths["png"], paths["svg"]
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        width, height = image.size
    assert min_side <= width <= 6000 and min_side <= height <= 4000
    root = ET.fromstring(svg.read_bytes())
    assert root.tag.endswith("svg")
    assert b"<dc:date>" not in svg.read_bytes()
    return width, height


def test_gelo_figures(tmp_path):
    gelo = gelo_table(study())
    check_pair(figures.plot_gelo(gelo, tmp_path / "gelo"))
    check_pair(figures.plot_retention_scatter(gelo, tmp_path / "scatter"))
    width, _ = check_pair(figures.plot_capacity(gelo, tmp_path / "capacity", backbone_order=["toy-s", "toy-m"]))
    assert width > 800  # two panels (zero-shot, linear probe)


def test_retention_heatmap_values_and_figure(tmp_path):
    grid = figures.retention_frame(study(), "zeroshot")
    assert list(grid.index) == ["fr-m", "fr-s", "mad-s"] and list(grid.columns) == ["colours", "digits", "shapes"]
    assert grid.loc["fr-s"].to_numpy() == pytest.approx(0.7)
    check_pair(figures.plot_retention_heatmap(study(), tmp_path / "heatmap"))


def test_figures_are_byte_identical_when_redrawn(tmp_path):
    gelo = gelo_table(study())
    first = figures.plot_gelo(gelo, tmp_path / "a")
    second = figures.plot_gelo(gelo, tmp_path / "b")
    assert first["png"].read_bytes() == second["png"].read_bytes()
    assert first["svg"].read_bytes() == second["svg"].read_bytes()


def test_attack_curves_split_by_attack_type_or_not(tmp_path):
    check_pair(figures.plot_attack_curves(scores(), tmp_path / "pad", title="PAD"))
    bare = scores(with_types=False)[["score", "label"]]  # no sample_id, no optional columns
    check_pair(figures.plot_attack_curves({"clip": bare, "pad-s": scores(seed=1)}, tmp_path / "both"))
    groups = figures._curve_groups({"x": scores()}, "auto")
    assert [name for name, *_ in groups] == ["print", "replay"]
    assert all(len(genuine) == 400 and len(impostor) == 400 for _, genuine, impostor in groups)


def test_mad_subsets_and_pad_video_scores_as_the_evaluation_writes_them(tmp_path):
    # MAD: each subset holds the shared bona fides plus that method's morphs (columns subset, id, label, score)
    base = scores(n=100, with_types=False)
    mad = pd.concat([base.assign(subset=name) for name in ("opencv", "mipgan")], ignore_index=True)
    groups = figures._curve_groups({"mad": mad}, "auto")
    assert [(name, len(g), len(i)) for name, g, i in groups] == [("mipgan", 100, 200), ("opencv", 100, 200)]
    # PAD: frame rows of videos; one point per video with the video score
    frames = pd.DataFrame(
        {
            "id": range(8),
            "video_id": [0, 0, 1, 1, 2, 2, 3, 3],
            "label": [1, 1, 1, 1, 0, 0, 0, 0],
            "attack_type": ["", "", "", "", "print", "print", "replay", "replay"],
            "score": [0.9, 0.1, 0.8, 0.7, 0.2, 0.6, 0.3, 0.1],
            "video_score": [0.5, 0.5, 0.75, 0.75, 0.4, 0.4, 0.2, 0.2],
        }
    )
    videos = figures.read_scores(frames, score_column="video_score", unit="video_id")
    assert list(videos.score) == [0.5, 0.75, 0.4, 0.2]
    check_pair(figures.plot_attack_curves(frames, tmp_path / "pad", score_column="video_score", unit="video_id"))


def test_tar_far_from_a_csv_file(tmp_path):
    path = tmp_path / "ijbc_scores.csv"
    frame = scores(n=2000, with_types=False)
    frame["subset"] = "ijbc"
    frame.to_csv(path, index=False)
    check_pair(figures.plot_tar_far({"fr-s": path, "clip-s": frame}, tmp_path / "ijb"))


def test_training_curves(tmp_path):
    steps = np.arange(200)
    log = pd.DataFrame(
        {"step": steps, "loss": 2.0 * np.exp(-steps / 50) + 0.1, "lr": np.full(200, 1e-4), "epoch": steps // 50}
    )
    path = tmp_path / "fr.csv"
    log.to_csv(path, index=False)
    width, _ = check_pair(
        figures.plot_training_curves({"fr-s": path, "mad-s": log.assign(loss=log.loss * 0.5)}, tmp_path / "train")
    )
    assert width > 900  # loss and lr panels; epoch is not plotted


def test_empty_inputs_give_a_labelled_placeholder(tmp_path):
    baseline_only = gelo_table(study().query("adaptation == 'none'"))
    check_pair(figures.plot_gelo(baseline_only, tmp_path / "gelo"), min_side=100)
    check_pair(figures.plot_capacity(baseline_only, tmp_path / "capacity"), min_side=100)


def test_bad_score_files_are_user_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,value\n1,0.5\n")
    with pytest.raises(UserError, match="lacks the columns label, score"):
        figures.plot_attack_curves(bad, tmp_path / "x")
    with pytest.raises(UserError, match="labels other than 0/1"):
        figures.read_scores(pd.DataFrame({"score": [0.1, 0.2], "label": [0, 2]}))
    with pytest.raises(UserError, match="Cannot read score file"):
        figures.read_scores(tmp_path / "missing.csv")
    with pytest.raises(UserError, match="both genuine"):
        figures.plot_tar_far(pd.DataFrame({"score": [0.1, 0.2], "label": [1, 1]}), tmp_path / "y")
    with pytest.raises(UserError, match="'step' or 'loss'"):
        figures.plot_training_curves({"x": pd.DataFrame({"iteration": [1]})}, tmp_path / "z")


def test_tradeoff_has_one_labelled_marker_per_fine_tune_and_wiseft_lines(tmp_path):
    from overspec.report.tradeoff import tradeoff_points

    metrics = study()
    # own-task results: fr-s gains 10 pp pair accuracy, fr-m 4 pp; mad-s lowers its D-EER by 6 pp
    bio = [("clip-s", "toy-s", "none", "face_verification", "pairs", "accuracy", 0.70),
           ("fr-s", "toy-s", "fr", "face_verification", "pairs", "accuracy", 0.80),
           ("clip-m", "toy-m", "none", "face_verification", "pairs", "accuracy", 0.72),
           ("fr-m", "toy-m", "fr", "face_verification", "pairs", "accuracy", 0.76),
           ("clip-s", "toy-s", "none", "mad", "average", "eer", 0.40),
           ("mad-s", "toy-s", "mad", "mad", "average", "eer", 0.34)]
    metrics = pd.concat([metrics, pd.DataFrame([(m, b, a, p, d, k, v, 100) for m, b, a, p, d, k, v in bio],
                                               columns=metrics.columns)], ignore_index=True)
    # a WiSE-FT model halfway along fr-s
    wise = metrics[metrics.model == "fr-s"].assign(model="fr-s-wise050")
    wise.loc[wise.protocol == "face_verification", "value"] = 0.76
    metrics = pd.concat([metrics, wise], ignore_index=True)
    points = tradeoff_points(metrics, gelo_table(metrics), {"fr-s-wise050": {"finetune": "fr-s", "alpha": 0.5}})
    zeroshot = points[points.protocol == "zeroshot"].set_index("model")
    assert sorted(zeroshot.index) == ["fr-m", "fr-s", "fr-s-wise050", "mad-s"]
    assert zeroshot.loc["fr-s", "gain_pp"] == pytest.approx(10.0) and zeroshot.loc["mad-s", "gain_pp"] == pytest.approx(6.0)
    assert (zeroshot.loc["fr-s", "finetune"], zeroshot.loc["fr-s", "alpha"]) == ("fr-s", 1.0)
    assert zeroshot.loc["fr-s-wise050", "gain_pp"] == pytest.approx(6.0) and zeroshot.loc["fr-m", "finetune"] == ""

    paths = figures.plot_tradeoff(points, tmp_path / "tradeoff")
    check_pair(paths)
    svg = paths["svg"].read_text()
    for protocol in ("zeroshot", "linear_probe"):
        for model in zeroshot.index:
            assert svg.count(f'id="tradeoff-{protocol}-{model}"') == 1
    assert svg.count('id="tradeoff-') == 8


def test_training_curves_give_each_loss_kind_its_own_panel(tmp_path):
    steps = np.arange(100)
    cosface = pd.DataFrame({"step": steps, "loss": 30 - 0.1 * steps, "lr_encoder": np.full(100, 1e-3)})
    binary = pd.DataFrame({"step": steps, "loss": 0.69 - 0.003 * steps, "lr_encoder": np.full(100, 1e-4)})
    paths = figures.plot_training_curves({"fr": cosface, "mad": binary}, tmp_path / "curves",
                                         loss_kinds={"fr": "cosface", "mad": "binary"})
    width, _ = check_pair(paths)
    svg = paths["svg"].read_text()
    # three panels in one row: CosFace loss, binary cross-entropy, encoder learning rate
    assert [svg.count(f'id="training-{panel}"') for panel in ("cosface", "binary", "lr_encoder")] == [1, 1, 1]
    assert svg.count('id="training-') == 3 and width > 1500
