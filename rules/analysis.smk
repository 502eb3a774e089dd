# Analyses beyond the paper's tables (analyses.drift, analyses.significance): one study-level job each,
# reading the embeddings and per-sample predictions the study already has.
# Functions and constants: rules/analysis_plan.smk.


rule measure_drift:
    input:
        embeddings=expand(EMBEDDINGS, model=PAIRED, dataset=GENERAL),
        results=paired_results(),
        digests=model_digests(),  # see model_digests() in common.smk
    output:
        **DRIFT_OUTPUTS,
    params:
        pairs=BASELINE_OF,
        models=MODELS,
        datasets=GENERAL,
        embeddings=lambda wildcards: EMBEDDINGS,  # a pattern, not expanded by Snakemake
        code=code("measure_drift"),
    log:
        "logs/measure_drift/measure_drift.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/measure_drift.py"


rule bootstrap_significance:
    input:
        results=paired_results(),
        predictions=[str(predictions_path(path)) for path in paired_results()],
        biometric=own_task_results(),
        biometric_scores=[path.replace(".json", ".scores.csv") for path in own_task_results()],
        digests=model_digests(),  # see model_digests() in common.smk
    output:
        **SIGNIFICANCE_OUTPUTS,
    params:
        pairs=BASELINE_OF,
        models=MODELS,
        resamples=ANALYSES["significance"]["resamples"],
        seed=ANALYSES["significance"]["seed"],
        code=code("bootstrap_significance"),
    log:
        "logs/bootstrap_significance/bootstrap_significance.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/bootstrap_significance.py"
