"""Rule summarize_study: results/summary.md, the run's findings on one page."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.provenance import provenance
    from overspec.report.study import write_study_summary

    write_study_summary(
        snakemake.input.metrics, snakemake.input.gelo, snakemake.output.summary,
        task_gain_csv=snakemake.input.get("task_gain"),
        exclude_models=snakemake.params.interpolated,
        remedies=snakemake.params.remedies, min_gelo=snakemake.params.min_gelo,
        provenance=provenance(snakemake.rule, dict(snakemake.input),
                              {"remedies": snakemake.params.remedies, "min_gelo": snakemake.params.min_gelo},
                              snakemake.params.code, None),
    )
