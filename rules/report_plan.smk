# What the report rules (rules/report.smk) make and show: the score curves and figures of this
# study, the files they write, and each table's and figure's caption and category in the report.
from overspec.report.study import FIGURE_FORMATS, STUDY_FIGURES, figure_names, table_files
from overspec.report.tables import PAPER_TABLES


report: "../report/workflow.rst"


REPORT_CAPTIONS = "../report"
# Report category of each paper-layout table; figures are grouped in figure_category().
TABLE_CATEGORIES = {
    "zeroshot": "General vision",
    "linear_probe": "General vision",
    "gelo": "General vision",
    "biometrics": "Biometrics",
}


def score_curves():
    """One score-curve figure per IJB set (TAR-FAR) and MAD and PAD benchmark (ROC/DET), every
    model a curve: [{kind, benchmark, scores: {model: scores file}}] (the eval rules' outputs)."""
    curves = []
    for benchmark in sorted(BIO["fr"]["ijb"]) if "fr" in BIO["tasks"] else []:
        scores = {m: f"results/biometrics/{m}/fr/{benchmark}.scores.csv.gz" for m in MODELS}
        curves.append({"kind": "ijb", "benchmark": benchmark, "scores": scores})
    for task in [t for t in ("mad", "pad") if t in BIO["tasks"]]:
        for benchmark in benchmarks_of(BIO, task):
            scores = {m: f"results/biometrics/{m}/{task}/{benchmark}.scores.csv" for m in MODELS}
            curves.append({"kind": task, "benchmark": benchmark, "scores": scores})
    return curves


CURVES = score_curves()
FIGURES = figure_names((c["kind"], c["benchmark"]) for c in CURVES)
TRAIN_LOGS = {m: f"results/models/{m}/train_log.csv" for m in models_where(made_by="finetune_model")}
# Each fine-tune's loss (its head type: one training-curve panel per kind)
LOSS_KINDS = {m: (config["recipes"][MODELS[m]["recipe"]].get("head") or {}).get("type", "cosface") for m in TRAIN_LOGS}
# WiSE-FT models on the trade-off figure: their fine-tune and alpha
WISEFT_POINTS = {
    m: {"finetune": MODELS[m]["finetune"], "alpha": MODELS[m]["alpha"]} for m in models_where(made_by="interpolate_model")
}


def figure_category(name):
    if name == "training_curves":
        return "Training"
    if name == "tradeoff":
        return "Summary"
    return "General vision" if name in STUDY_FIGURES else "Biometrics"


def report_outputs():
    """Every file the report rules write (study_targets() in common.smk adds them)."""
    tables = [f"results/tables/{name}" for name in table_files()]
    figures = expand("results/figures/{name}.{ext}", name=FIGURES, ext=FIGURE_FORMATS)
    return tables + figures + ["results/summary.md"]
