# Remedies against forgetting (analyses.mitigation): each plain reference fine-tune and the models
# that change its recipe (l2sp, lp_ft, freeze_blocks, ...) or interpolate it (WiSE-FT), side by side
# on the trade-off plane. The models are ordinary models of the study; this rule only tabulates.
from overspec.analysis.remedies import mitigation_settings, remedy_table

MITIGATION = mitigation_settings(config)
REMEDIES = remedy_table(config, MODELS)  # also drawn by plot_figures and summarised by summarize_study
MITIGATION_OUTPUTS = {ext: f"results/analysis/mitigation/table.{ext}" for ext in ("csv", "md")}
MITIGATION_TARGETS = list(MITIGATION_OUTPUTS.values()) if REMEDIES else []  # in study_targets() (common.smk)


rule mitigation_table:
    input:
        metrics="results/tables/metrics.csv",
        gelo="results/tables/gelo.csv",
        **task_gain_input(),  # the gains' intervals, where bootstrap_significance runs
    output:
        **MITIGATION_OUTPUTS,
    params:
        remedies=REMEDIES,
        min_gelo=MITIGATION["min_gelo"],
        code=code("mitigation_table"),
    log:
        "logs/mitigation_table/mitigation_table.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/mitigation_table.py"
