# The study's tables.


rule aggregate_tables:
    input:
        results=study_results(),
        digests=model_digests(),  # see model_digests() in common.smk
    output:
        metrics="results/tables/metrics.csv",
        gelo="results/tables/gelo.csv",
        metrics_md="results/tables/metrics.md",
        gelo_md="results/tables/gelo.md",
    params:
        models=MODELS,
        code=code("aggregate_tables"),
    log:
        "logs/aggregate_tables/aggregate_tables.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/aggregate_tables.py"
