# What the analysis rules (rules/analysis.smk) compare: every adapted model against the baseline
# of its backbone, and the outputs of the analyses switched on.
from overspec.config import baseline_of
from overspec.evaluate.general import predictions_path

ANALYSES = config["analyses"]  # defaults filled by validate() in common.smk
EMBEDDINGS = "results/embeddings/{model}/{dataset}.h5"
# Every model with an adaptation (WiSE-FT models included) against the baseline of its backbone; an
# imported model whose backbone has no baseline in the study has nothing to be compared with.
BASELINE_OF = {
    model: baseline
    for model, row in MODELS.items()
    if row["adaptation"] != "none" and (baseline := baseline_of(config, row["backbone"]))
}
PAIRED = sorted(set(BASELINE_OF) | set(BASELINE_OF.values()))
DRIFT_OUTPUTS = {
    "table": "results/analysis/drift.csv",
    "correlation": "results/analysis/drift_correlation.csv",
    "markdown": "results/analysis/drift.md",
    "png": "results/analysis/drift_heatmap.png",
    "svg": "results/analysis/drift_heatmap.svg",
}
SIGNIFICANCE_OUTPUTS = {
    "differences": "results/analysis/significance.csv",
    "gelo": "results/analysis/significance_gelo.csv",
    "markdown": "results/analysis/significance.md",
    "task_gain": "results/analysis/task_gain.csv",
}



def analysis_targets():
    """The outputs of the analyses switched on, when a model has a baseline to be compared with
    (study_targets() in common.smk adds them)."""
    on = {"drift": DRIFT_OUTPUTS, "significance": SIGNIFICANCE_OUTPUTS}
    return [p for name, outputs in on.items() if ANALYSES[name]["enabled"] and BASELINE_OF for p in outputs.values()]


def paired_results():
    """Zero-shot and linear-probe result JSONs of the fine-tuned models and their baselines."""
    zeroshot = expand("results/zeroshot/{model}/{dataset}.json", model=PAIRED, dataset=GENERAL)
    probe = expand("results/linear_probe/{model}/{dataset}.json", model=PAIRED, dataset=probe_datasets())
    return zeroshot + probe


def own_task_results():
    """Result JSONs of each fine-tune and its baseline on the fine-tune's own task's headline benchmarks
    (FR: the pair sets; MAD and PAD: their benchmarks), for its own-task gain in bootstrap_significance."""
    paths = set()
    for model, baseline in BASELINE_OF.items():
        task = MODELS[model]["adaptation"]
        if task not in ("fr", "mad", "pad") or task not in BIO["tasks"]:
            continue
        benchmarks = sorted(BIO["fr"]["pairs"]) if task == "fr" else benchmarks_of(BIO, task)
        paths.update(f"results/biometrics/{m}/{task}/{b}.json" for m in (model, baseline) for b in benchmarks)
    return sorted(paths)


def task_gain_input():
    """The own-task gains with their intervals, for the summary, where bootstrap_significance runs."""
    path = SIGNIFICANCE_OUTPUTS["task_gain"]
    return {"task_gain": path} if path in analysis_targets() else {}
