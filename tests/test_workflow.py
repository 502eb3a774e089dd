"""The workflow end to end on the reduced toy config: it runs, writes the tables, and a second run
has nothing to do. One run is shared by the module's tests (it takes a minute or two)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from workflow_helpers import ROOT, TINY, executed_jobs, planned_jobs, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    result = snakemake(workdir)
    return workdir, result


def test_study_writes_the_tables(study):
    workdir, _ = study
    metrics = pd.read_csv(workdir / "results" / "tables" / "metrics.csv")
    assert list(metrics.columns) == ["model", "backbone", "adaptation", "protocol", "dataset", "metric", "value", "n"]
    primary = metrics[metrics.metric == "primary"]
    assert set(primary.protocol) == {"zeroshot", "linear_probe"}
    assert set(primary.dataset) == {"toy_colours", "toy_digits"}
    assert primary.value.between(0, 1).all() and (primary.n > 0).all()
    gelo = pd.read_csv(workdir / "results" / "tables" / "gelo.csv")
    assert list(gelo.columns) == ["model", "backbone", "adaptation", "protocol", "avg_baseline", "avg_model", "gelo"]
    for name in ("metrics.md", "gelo.md"):
        assert (workdir / "results" / "tables" / name).read_text().startswith("#")


def test_results_carry_provenance(study):
    workdir, _ = study
    import json

    result = json.loads((workdir / "results" / "zeroshot" / "clip-toy-s" / "toy_colours.json").read_text())
    prov = result["provenance"]
    assert prov["rule"] == "eval_zeroshot" and len(prov["code"]) == 16
    assert set(prov["inputs"]) == {"embeddings", "text", "manifest", "digests[0]"}
    assert all(len(i["sha256"]) == 64 and not i["path"].startswith("/") for i in prov["inputs"].values())


def test_study_writes_drift_and_significance(study):
    """analyses.drift and .significance (on by default): the FR fine-tune's CKA with its baseline per dataset,
    and the paired bootstrap of each difference and GELO, consistent with the long tables."""
    from overspec.analysis.significance import read_significance

    workdir, _ = study
    analysis, tables = workdir / "results" / "analysis", workdir / "results" / "tables"
    metrics = pd.read_csv(tables / "metrics.csv").set_index(["protocol", "model", "dataset", "metric"]).value
    drift = pd.read_csv(analysis / "drift.csv")
    assert sorted(zip(drift.model, drift.dataset)) == [("clip-toy-s-fr", "toy_colours"), ("clip-toy-s-fr", "toy_digits")]
    assert drift.cka.between(0, 1).all() and (drift.baseline == "clip-toy-s").all()
    for r in drift.itertuples():
        for protocol in ("zeroshot", "linear_probe"):
            change = metrics[(protocol, r.model, r.dataset, "top1")] - metrics[(protocol, r.baseline, r.dataset, "top1")]
            assert getattr(r, f"delta_top1_{protocol}") == pytest.approx(change, abs=1e-12)
    correlation = pd.read_csv(analysis / "drift_correlation.csv")
    assert correlation.n_cells.tolist() == [2, 2] and correlation.pearson_r.isna().all()  # two cells: too few
    assert (analysis / "drift_heatmap.png").read_bytes()[:4] == b"\x89PNG" and (analysis / "drift.md").is_file()

    significance = read_significance(analysis / "significance.csv")
    assert len(significance) == 4 and set(significance.resamples) == {1000} and set(significance.seed) == {0}
    for r in significance.itertuples():
        assert r.model_value == pytest.approx(metrics[(r.protocol, r.model, r.dataset, "primary")], abs=1e-12)
        assert r.baseline_value == pytest.approx(metrics[(r.protocol, r.baseline, r.dataset, "primary")], abs=1e-12)
        assert 0 < r.p_value <= 1 and r.significant == (r.p_value < 0.05)
    gelo = pd.read_csv(tables / "gelo.csv").merge(pd.read_csv(analysis / "significance_gelo.csv"),
                                                    on=["model", "protocol"], suffixes=("", "_bootstrap"))
    assert len(gelo) == 2 and ((gelo.gelo - gelo.gelo_bootstrap).abs() < 1e-12).all()
    for name in ("drift.csv", "drift_heatmap.svg", "significance.csv", "significance_gelo.csv"):
        assert (analysis / f"{name}.prov.json").is_file(), name


def test_second_run_has_nothing_to_do(study):
    workdir, _ = study
    assert planned_jobs(workdir) == {}


def test_identical_model_bytes_rerun_nothing_downstream(study, tmp_path):
    workdir, _ = study
    model = workdir / "results" / "models" / "clip-toy-s" / "model.safetensors"
    copy = tmp_path / "model.safetensors"
    shutil.copy2(model, copy)
    shutil.copy(copy, model)  # same bytes, new mtime
    result = snakemake(workdir)
    # every job below a model lists its digest (model_digests() in rules/common.smk): only the digest reruns
    assert executed_jobs(result) == {"digest_model": 1}, result.stdout[-3000:]


def test_touched_script_reruns_nothing(study):
    workdir, _ = study
    script = ROOT / "workflow_scripts" / "eval_zeroshot.py"
    script.touch()
    assert planned_jobs(workdir) == {}


def test_fine_tune_and_biometric_results(study):
    """The FR fine-tune starts from the baseline's exact bytes; every model gets every biometric benchmark."""
    import json

    from overspec.models.checkpoint import read_card

    workdir, _ = study
    results = workdir / "results"
    card = read_card(results / "models" / "clip-toy-s-fr" / "model.safetensors")
    base_digest = (results / "models" / "clip-toy-s" / "model.sha256").read_text().split()[0]
    assert card["base_model"]["sha256"] == base_digest and card["lora_merged"] and card["head"]["type"] == "cosface"
    assert card["training"]["steps"] == 4 and card["provenance"]["rule"] == "finetune_model"
    assert len(pd.read_csv(results / "models" / "clip-toy-s-fr" / "train_log.csv")) == 4

    metrics = pd.read_csv(results / "tables" / "metrics.csv")
    biometric = metrics[metrics.protocol.isin(["face_verification", "ijb", "mad", "pad"])]
    for model in ("clip-toy-s", "clip-toy-s-fr"):
        mine = biometric[biometric.model == model]
        assert set(mine.protocol) == {"face_verification", "ijb", "mad", "pad"}
        assert {"accuracy", "tar@far=0.0001", "eer", "bpcer@apcer=0.1", "hter", "auc"} <= set(mine.metric)
        assert "average" in set(mine[mine.protocol == "mad"].dataset)
    assert biometric.value.between(0, 1).all() and (biometric.n > 0).all()
    for task, benchmark in (("mad", "toy_mad"), ("pad", "toy_pad")):  # neither model was adapted for MAD/PAD
        result = json.loads((results / "biometrics" / "clip-toy-s-fr" / task / f"{benchmark}.json").read_text())
        assert result["scoring"]["method"] == "probe" and (results / "biometrics" / "clip-toy-s-fr" / task /
                                                           f"{benchmark}.scores.csv").is_file()


def test_changing_a_recipe_reruns_that_models_jobs_only(study, tmp_path):
    import yaml

    workdir, _ = study
    config = yaml.safe_load(TINY.read_text())
    config["recipes"]["tiny-fr"]["lr_encoder"] = 0.002
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    assert planned_jobs(workdir, config=changed) == {
        "finetune_model": 1, "digest_model": 1, "embed_images": 2, "eval_zeroshot": 2, "fit_linear_probe": 2,
        "eval_face_verification": 1, "eval_ijb": 1, "eval_attack_detection": 2, "aggregate_tables": 1,
        "paper_tables": 1, "plot_figures": 1, "summarize_study": 1, "measure_drift": 1, "bootstrap_significance": 1,
        "audit_manifest": 1, "all": 1,
    }


def test_estimate_is_within_2x_of_the_recorded_job_times(study):
    """`overspec estimate` at the kept CPU rates (overspec/data/rates/rates.csv) against what this run's
    benchmark files record, job by job matched on the benchmark path, summed. CPU seconds (`cpu_time`):
    on a 2-core machine shared with other work the wall time (`s`) measures the other processes too;
    the CPU rates were measured the same way (benchmarks/job_rates.py)."""
    from overspec.estimate.plan import dry_run, study_config
    from overspec.estimate.schedule import cost_jobs

    workdir, _ = study
    recorded = {str(tsv.relative_to(workdir)): float(pd.read_csv(tsv, sep="\t")["cpu_time"].sum())
                for tsv in (workdir / "results" / "benchmarks").rglob("*.tsv")}
    costs = cost_jobs(study_config([TINY], ROOT), dry_run([TINY], ROOT / "Snakefile", workdir), "cpu")
    estimated = {c.job.benchmark: c.seconds for c in costs if c.job.benchmark}
    assert sorted(estimated) == sorted(recorded)
    by_rule: dict[str, list[float]] = {}
    for path, seconds in recorded.items():
        rule = path.split("/")[2]
        by_rule.setdefault(rule, [0.0, 0.0])
        by_rule[rule][0] += estimated[path]
        by_rule[rule][1] += seconds
    ratio = sum(estimated.values()) / sum(recorded.values())
    detail = ", ".join(f"{rule} {e:.0f}/{r:.0f} s" for rule, (e, r) in sorted(by_rule.items()))
    assert 0.5 <= ratio <= 2, f"estimated / recorded = {ratio:.2f} ({detail})"


# -- the report: tables, figures, summary, and `snakemake --report` ------------------------------

# the tiny study's figures: five for every study, one score-curve figure per IJB / MAD / PAD benchmark
FIGURES = ("tradeoff", "gelo", "retention_heatmap", "retention_scatter", "capacity", "training_curves",
           "ijb_toyijb", "mad_toy_mad", "pad_toy_pad")


def test_study_writes_paper_tables_and_summary(study):
    workdir, _ = study
    tables = workdir / "results" / "tables"
    for name in ("zeroshot", "linear_probe", "biometrics", "gelo"):
        for ext in ("csv", "md", "tex", "html"):
            assert (tables / f"table_{name}.{ext}").stat().st_size > 0, (name, ext)
    gelo = pd.read_csv(tables / "table_gelo.csv", dtype=str)
    long_gelo = pd.read_csv(tables / "gelo.csv")
    fr = long_gelo[(long_gelo.model == "clip-toy-s-fr") & (long_gelo.protocol == "zeroshot")].gelo.item()
    assert gelo.loc[gelo.Adaptation == "fr", "Zero-shot toy-S"].item() == f"{fr:.3f}"
    assert "No model of this run is mapped" in (tables / "paper_comparison.md").read_text()  # toy labels
    summary = (workdir / "results" / "summary.md").read_text()
    assert summary.startswith("# Summary of this run") and "clip-toy-s-fr" in summary and "3. **Capacity.**" in summary


def test_study_draws_every_figure_as_a_valid_png(study):
    import xml.etree.ElementTree as ET

    from PIL import Image

    workdir, _ = study
    figures = workdir / "results" / "figures"
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(FIGURES)
    for name in FIGURES:
        png = figures / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            width, height = image.size
            colours = image.convert("L").getcolors(maxcolors=1 << 16)
        # 200 dpi, a few inches: at least ~2 inches a side, at most a page; and not one flat colour
        assert 400 <= width <= 6000 and 300 <= height <= 4000, (name, width, height)
        assert colours is None or len(colours) > 8, name
        assert ET.fromstring((figures / f"{name}.svg").read_bytes()).tag.endswith("svg"), name


@pytest.fixture(scope="module")
def report_html(study):
    workdir, _ = study
    path = workdir / "results" / "report.html"
    snakemake(workdir, "--report", str(path))
    return path


def test_snakemake_report_holds_every_table_and_figure(report_html):
    text = report_html.read_text()
    assert 200_000 < len(text) < 50_000_000
    for category in ("Summary", "General vision", "Biometrics", "Training", "Provenance"):
        assert f'"{category}"' in text, category
    for name in ("table_gelo.html", "table_biometrics.html", "paper_comparison.html", "summary.md", "metrics.csv"):
        assert f'"{name}"' in text, name
    for name in FIGURES:
        assert f'"{name}.png"' in text, name


def chromium() -> str:
    """Debian's chromium; CI must have it (.ci/run installs it), elsewhere its absence skips."""
    import os

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed but CI is set: .ci/run installs it with apt-get install chromium")
        pytest.skip("chromium (Debian package `chromium`) is not installed: apt-get install chromium to run this test")
    return browser


def test_report_opens_in_a_browser_and_shows_the_gelo_table(report_html, tmp_path):
    import subprocess

    from PIL import Image

    browser = chromium()
    # no sandbox: CI runs as root; virtual time lets the report's scripts (React) render before the dump
    headless = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--window-size=1600,1200"]
    dom = subprocess.run([*headless, "--dump-dom", report_html.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-3000:]
    page = dom.stdout
    # the landing page as rendered: the GELO table (in the page source it is only an escaped JS string)
    assert '<table id="T_overspec" class="overspec-table">' in page, page[:3000]
    table = page.split('<table id="T_overspec"', 1)[1].split("</table>", 1)[0]
    assert "Zero-shot" in table and "Linear probe" in table and ">fr<" in table
    assert "Loading Snakemake Report" not in page.split('id="app"', 1)[1]  # the app replaced the loading screen

    shot = tmp_path / "report.png"
    run = subprocess.run([*headless, f"--screenshot={shot}", report_html.as_uri()], capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-3000:]
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1600, 1200)
        colours = image.convert("L").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20  # text and a table, not a blank page
