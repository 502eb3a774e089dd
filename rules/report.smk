# The study's tables, figures and one-page summary, and what `snakemake --report` shows of them
# (captions in report/, grouped by category).
# Functions and constants: rules/report_plan.smk.


rule aggregate_tables:
    input:
        results=study_results(),
        digests=model_digests(),  # see model_digests() in common.smk
    output:
        metrics=report(
            "results/tables/metrics.csv",
            caption=f"{REPORT_CAPTIONS}/metrics.rst",
            category="Provenance",
            subcategory="Long tables",
        ),
        gelo=report(
            "results/tables/gelo.csv",
            caption=f"{REPORT_CAPTIONS}/gelo_long.rst",
            category="Provenance",
            subcategory="Long tables",
        ),
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


rule paper_tables:
    input:
        metrics="results/tables/metrics.csv",
        digests=model_digests(),  # see model_digests() in common.smk
    output:
        # the HTML view of each table goes into the report; CSV, Markdown and LaTeX beside it
        **{
            f"{name}_html": report(
                f"results/tables/table_{name}.html",
                caption=f"{REPORT_CAPTIONS}/table_{name}.rst",
                category=TABLE_CATEGORIES[name],
                subcategory="Tables",
                labels={"table": name},
            )
            for name in PAPER_TABLES
        },
        **{
            f"{name}_{ext}": f"results/tables/table_{name}.{ext}"
            for name in PAPER_TABLES
            for ext in ("csv", "md", "tex")
        },
        comparison=report(
            "results/tables/paper_comparison.html",
            caption=f"{REPORT_CAPTIONS}/paper_comparison.rst",
            category="Provenance",
            subcategory="Published numbers",
        ),
        comparison_csv="results/tables/paper_comparison.csv",
        comparison_md="results/tables/paper_comparison.md",
    params:
        models=MODELS,
        code=code("paper_tables"),
    log:
        "logs/paper_tables/paper_tables.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/paper_tables.py"


rule plot_figures:
    input:
        metrics="results/tables/metrics.csv",
        gelo="results/tables/gelo.csv",
        scores=[path for curve in CURVES for path in curve["scores"].values()],
        train_logs=list(TRAIN_LOGS.values()),
        **task_gain_input(),  # who learned its task: only they make the remedies' Pareto fronts
        digests=model_digests(),  # see model_digests() in common.smk
    output:
        # the PNG of each figure goes into the report; the SVG (for print) beside it
        png=[
            report(
                f"results/figures/{name}.png",
                caption=f"{REPORT_CAPTIONS}/figure_{name if name in STUDY_FIGURES else 'curves'}.rst",
                category=figure_category(name),
                subcategory="Figures",
                labels={"figure": name},
            )
            for name in FIGURES
        ],
        svg=[f"results/figures/{name}.svg" for name in FIGURES],
    params:
        curves=CURVES,
        train_logs=TRAIN_LOGS,
        loss_kinds=LOSS_KINDS,
        wiseft=WISEFT_POINTS,
        remedies=REMEDIES,  # rules/mitigation.smk: each remedy's points and Pareto front on the trade-off
        code=code("plot_figures"),
    log:
        "logs/plot_figures/plot_figures.log",
    threads: 1
    resources:
        mem_mb=16000,  # an IJB-C score file holds 15.7M template pairs per model
        runtime=60,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/plot_figures.py"


rule summarize_study:
    input:
        metrics="results/tables/metrics.csv",
        gelo="results/tables/gelo.csv",
        **task_gain_input(),
        digests=model_digests(),  # see model_digests() in common.smk
    output:
        summary=report("results/summary.md", caption=f"{REPORT_CAPTIONS}/summary.rst", category="Summary"),
    params:
        interpolated=models_where(made_by="interpolate_model"),  # WiSE-FT models: not findings of their own
        remedies=REMEDIES,  # rules/mitigation.smk: the Remedies section (empty: none)
        min_gelo=MITIGATION["min_gelo"],
        code=code("summarize_study"),
    log:
        "logs/summarize_study/summarize_study.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/summarize_study.py"
