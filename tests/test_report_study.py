"""The report steps' library calls, on the files aggregate_tables writes: a paper-config run made of
the published numbers themselves (so every run-vs-paper difference is known), and a toy-like run."""

import functools
import gzip

import numpy as np
import pandas as pd
import pytest
import yaml
from test_report_figures import check_pair, scores
from test_report_figures import study as toy_study
from workflow_helpers import ROOT

from overspec.config import check_config, model_table
from overspec.errors import UserError
from overspec.provenance import read_json, sha256_file, sidecar_path
from overspec.report.gelo import gelo_table, read_gelo
from overspec.report.paper import load_paper_tables, paper_as_metrics
from overspec.report.schema import check_metrics, read_metrics, sort_metrics
from overspec.report.study import figure_names, paper_model_map, table_files, write_study_summary, write_study_tables
from overspec.report.study_figures import backbone_order, write_study_figures
from overspec.report.tables import write_long_tables

PAPER = load_paper_tables()
SCHEMA = ROOT / "schemas" / "config.schema.yaml"
# configs/paper.yaml's model of each published (approach, arch)
PAPER_CONFIG_NAMES = {
    ("CLIP", "ViT-B/16"): "clip-vit-b16",
    ("CLIP", "ViT-L/14"): "clip-vit-l14",
    ("FRoundation", "ViT-B/16"): "clip-vit-b16-fr",
    ("FRoundation", "ViT-L/14"): "clip-vit-l14-fr",
    ("MADation", "ViT-B/16"): "clip-vit-b16-mad",
    ("MADation", "ViT-L/14"): "clip-vit-l14-mad",
    ("FoundPAD", "ViT-B/16"): "clip-vit-b16-pad",
    ("FoundPAD", "ViT-L/14"): "clip-vit-l14-pad",
}


@functools.lru_cache
def models_of(config_path):
    config = yaml.safe_load(config_path.read_text())
    check_config(config, SCHEMA)
    return model_table(config)


def paper_run(tmp_path):
    """A 'paper-config run' whose every number is the published one: metrics.csv and gelo.csv on disk."""
    metrics = paper_as_metrics(PAPER)
    names = {f"{a} {r}": model for (a, r), model in PAPER_CONFIG_NAMES.items()}
    metrics["model"] = metrics.model.map(names)
    return write_long_tables(metrics, tmp_path / "tables"), metrics


def test_metrics_and_gelo_csv_read_back_exactly(tmp_path):
    metrics = toy_study()
    metrics["dataset"] = metrics.dataset.replace({"shapes": "NA"})  # a label pandas reads as missing by default
    metrics.loc[1, "value"] = 0.1 + 0.2
    metrics.loc[2, "n"] = None
    paths = write_long_tables(metrics, tmp_path)
    back = read_metrics(paths["metrics_csv"])
    pd.testing.assert_frame_equal(back, sort_metrics(check_metrics(metrics)))
    assert "NA" in set(back.dataset) and 0.1 + 0.2 in set(back.value) and back.n.isna().sum() == 1
    pd.testing.assert_frame_equal(read_gelo(paths["gelo_csv"]), gelo_table(metrics), check_exact=True)
    (tmp_path / "bad.csv").write_text("model,value\nx,1\n")
    with pytest.raises(UserError, match="bad.csv lacks the columns backbone"):
        read_metrics(tmp_path / "bad.csv")
    with pytest.raises(UserError, match="a GELO table has model, backbone"):
        read_gelo(tmp_path / "bad.csv")
    with pytest.raises(UserError, match="Cannot read the metrics table .*missing.csv.*rerun the aggregate_tables"):
        read_metrics(tmp_path / "missing.csv")


def test_paper_config_models_stand_for_the_published_ones():
    models = models_of(ROOT / "configs" / "paper.yaml")
    mapping = paper_model_map(models, PAPER, present=models)
    assert mapping == {model: cell for cell, model in PAPER_CONFIG_NAMES.items()}
    assert paper_model_map(models, PAPER, present=["clip-vit-b16"]) == {"clip-vit-b16": ("CLIP", "ViT-B/16")}
    assert paper_model_map(models_of(ROOT / "config.yaml"), PAPER, present=models) == {}  # toy labels
    wiseft = {**models, "clip-vit-b16-fr-wise050": {**models["clip-vit-b16-fr"], "finetune": "clip-vit-b16-fr"}}
    assert paper_model_map(wiseft, PAPER, present=wiseft) == mapping  # an interpolation stands for no paper row


def test_paper_run_tables_show_the_published_numbers_and_zero_differences(tmp_path):
    paths, _ = paper_run(tmp_path)
    out = tmp_path / "report"
    block = {"rule": "paper_tables", "inputs": {}}
    written = write_study_tables(paths["metrics_csv"], out, models_of(ROOT / "configs" / "paper.yaml"),
                                 provenance=block)
    assert sorted(p.name for p in written.values()) == sorted(table_files())
    for path in written.values():  # every file has its provenance, naming its own digest
        side = read_json(sidecar_path(path))
        assert side["provenance"] == block and side["sha256"] == sha256_file(path)

    # the paper's rows, under the paper's labels (each model stands for one published row)
    zeroshot = pd.read_csv(written["zeroshot_csv"], dtype=str)
    assert list(zeroshot.columns[:2]) == ["Approach", "Arch"]
    fr_l = zeroshot[(zeroshot.Approach == "FRoundation") & (zeroshot.Arch == "ViT-L/14")].iloc[0]
    assert (fr_l["ImageNet-v2"], fr_l["Avg."], fr_l["GELO"]) == ("51.63", "56.66", "0.813")

    comparison = pd.read_csv(written["paper_comparison_csv"])
    assert len(comparison) == len(PAPER)  # every published cell, Avg. and GELO included
    cells = comparison[comparison.dataset != "avg"]
    assert np.abs(cells.difference).max() < 1e-9 and (cells.run == cells.paper).sum() > 0.9 * len(cells)
    averages = comparison[(comparison.dataset == "avg") & (comparison.metric == "accuracy")]
    truncated = (averages.model == "clip-vit-b16-fr") & (averages.protocol == "zeroshot")
    assert averages[truncated].difference.item() == pytest.approx(41.97857 - 41.97, abs=1e-5)  # the paper cut it
    assert np.abs(averages[~truncated].difference).max() < 0.005  # printed to two decimals
    gelo = comparison[comparison.metric == "gelo"]
    assert len(gelo) == 12 and np.abs(gelo.difference).max() < 0.0005  # printed to three decimals
    html = written["paper_comparison_html"].read_text()
    assert "This run vs the paper" in html and "<td>clip-vit-l14-fr</td>" in html
    assert "<td>51.63</td>" in html and "<td>+0.00</td>" in html


def test_toy_run_tables_use_model_names_and_say_nothing_is_mapped(tmp_path):
    metrics = toy_study()
    paths = write_long_tables(metrics, tmp_path / "tables")
    models = {m: {"adaptation": a, "backbone_label": b} for m, b, a in
              metrics[["model", "backbone", "adaptation"]].drop_duplicates().itertuples(index=False)}
    written = write_study_tables(paths["metrics_csv"], tmp_path / "out", models)
    assert not list((tmp_path / "out").glob("*.prov.json"))  # no provenance block given
    assert list(pd.read_csv(written["gelo_csv"]).columns[:1]) == ["Adaptation"]
    assert "No model of this run is mapped" in written["paper_comparison_md"].read_text()
    assert "No model of this run is mapped" in written["paper_comparison_html"].read_text()
    assert pd.read_csv(written["paper_comparison_csv"]).empty
    gelo_html = written["gelo_html"].read_text()
    assert "<table" in gelo_html and ">fr</td>" in gelo_html and "GELO" in gelo_html


def test_summary_from_the_files_of_a_paper_run(tmp_path):
    paths, _ = paper_run(tmp_path)
    summary = write_study_summary(paths["metrics_csv"], paths["gelo_csv"], tmp_path / "summary.md",
                                  provenance={"rule": "summarize_study"})
    text = summary.read_text()
    # hand-checked on the published numbers: FoundPAD ViT-L/14's HTER is worse than its baseline's, so it
    # is left out; FR below MAD and PAD on the rest (6 comparisons); capacity holds for FR and MAD (4)
    assert "**Supported** (6 of 6 comparisons hold)" in text and "**Supported** (4 of 4 comparisons hold)" in text
    assert "| clip-vit-b16-fr  | ViT-B/16   | fr  " in text and "0.688 (41.98% vs 60.98%)" in text
    assert read_json(sidecar_path(summary))["provenance"] == {"rule": "summarize_study"}


def test_summary_leaves_out_excluded_models(tmp_path):
    """A WiSE-FT interpolation carries its fine-tune's adaptation; excluded, it changes no finding."""
    paths, _ = paper_run(tmp_path)
    plain = write_study_summary(paths["metrics_csv"], paths["gelo_csv"], tmp_path / "plain.md").read_text()
    for key in ("metrics_csv", "gelo_csv"):
        frame = pd.read_csv(paths[key])
        clone = frame[frame.model == "clip-vit-b16-fr"].assign(model="clip-vit-b16-fr-wise050")
        clone.loc[:, "value" if "value" in clone else "gelo"] = 0.01  # would flip FR-vs-MAD/PAD if counted
        pd.concat([frame, clone]).to_csv(tmp_path / f"with_wise_{key}.csv", index=False)
    with_wise = write_study_summary(tmp_path / "with_wise_metrics_csv.csv", tmp_path / "with_wise_gelo_csv.csv",
                                    tmp_path / "with_wise.md", exclude_models=["clip-vit-b16-fr-wise050"])
    assert with_wise.read_text() == plain
    assert "wise050" not in with_wise.read_text()


def test_backbone_order_small_to_large_then_unknown_by_name():
    order = backbone_order(["ViT-L/14", "zeta", "ViT-B/16", "alpha", "ViT-L/14"])
    assert order == ["ViT-B/16", "ViT-L/14", "alpha", "zeta"]
    assert backbone_order(["toy-M", "toy-S"]) == ["toy-S", "toy-M"]


def _write_scores(tmp_path, models):
    """Score files as the evaluation writes them: IJB (gzip), MAD (subsets), PAD (frames with video scores)."""
    curves = []
    ijb, mad, pad = {}, {}, {}
    for k, model in enumerate(models):
        frame = scores(n=300, seed=k, with_types=False).rename(columns={"sample_id": "template1"})
        frame["template2"] = frame.template1 + 1
        ijb[model] = tmp_path / f"{model}_ijb.scores.csv.gz"
        with gzip.open(ijb[model], "wt") as handle:
            frame[["template1", "template2", "label", "score"]].to_csv(handle, index=False)
        base = scores(n=60, seed=10 + k, with_types=False).rename(columns={"sample_id": "id"})
        mad[model] = tmp_path / f"{model}_mad.scores.csv"
        pd.concat([base.assign(subset=s) for s in ("opencv", "mipgan")])[["subset", "id", "label", "score"]].to_csv(
            mad[model], index=False)
        frames = scores(n=40, seed=20 + k).rename(columns={"sample_id": "id"})
        frames["video_id"] = frames.id // 2
        frames["video_score"] = frames.groupby("video_id").score.transform("mean")
        pad[model] = tmp_path / f"{model}_pad.scores.csv"
        frames.to_csv(pad[model], index=False)
    curves.append({"kind": "ijb", "benchmark": "ijbc", "scores": {m: str(p) for m, p in ijb.items()}})
    curves.append({"kind": "mad", "benchmark": "syn_mad22", "scores": {m: str(p) for m, p in mad.items()}})
    curves.append({"kind": "pad", "benchmark": "celeba_spoof", "scores": {m: str(p) for m, p in pad.items()}})
    return curves


def test_study_figures_from_files(tmp_path):
    paths = write_long_tables(toy_study(), tmp_path / "tables")
    curves = _write_scores(tmp_path, ["clip-s", "fr-s"])
    steps = np.arange(50)
    log = tmp_path / "train_log.csv"
    pd.DataFrame({"step": steps, "loss": np.exp(-steps / 10), "lr": np.full(50, 1e-3)}).to_csv(log, index=False)
    out = tmp_path / "figures"
    written = write_study_figures(paths["metrics_csv"], paths["gelo_csv"], out, curves=curves,
                                  training_logs={"fr-s": str(log)}, provenance={"rule": "plot_figures"})
    names = figure_names([(c["kind"], c["benchmark"]) for c in curves])
    assert names[-3:] == ["ijb_ijbc", "mad_syn_mad22", "pad_celeba_spoof"]
    assert sorted(written) == sorted(f"{n}_{fmt}" for n in names for fmt in ("png", "svg"))
    for name in names:
        check_pair({fmt: out / f"{name}.{fmt}" for fmt in ("png", "svg")})
        assert read_json(sidecar_path(out / f"{name}.png"))["sha256"] == sha256_file(out / f"{name}.png")
    # the capacity figure compares toy-s with toy-m: two panels, not the one-backbone placeholder
    assert check_pair({fmt: out / f"capacity.{fmt}" for fmt in ("png", "svg")})[0] > 800

