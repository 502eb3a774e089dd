"""Rule mitigation_table: every remedy group's models on the trade-off plane (table and Markdown)."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.analysis.mitigation import write_mitigation
    from overspec.provenance import provenance

    settings = {"remedies": snakemake.params.remedies, "min_gelo": snakemake.params.min_gelo}
    write_mitigation(snakemake.input.metrics, snakemake.input.gelo, snakemake.params.remedies,
                     dict(snakemake.output), task_gain_csv=snakemake.input.get("task_gain"),
                     min_gelo=snakemake.params.min_gelo,
                     provenance=provenance(snakemake.rule, dict(snakemake.input), settings, snakemake.params.code, None))
