"""Rule aggregate_tables: every result JSON into metrics.csv, gelo.csv and their Markdown views."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.provenance import provenance, write_sidecar
    from overspec.report.aggregate import aggregate_tables

    aggregate_tables(snakemake.input.results, snakemake.params.models, dict(snakemake.output))
    record = provenance(snakemake.rule, {path: path for path in snakemake.input}, {"models": snakemake.params.models},
                        snakemake.params.code, None)
    for table in snakemake.output:
        write_sidecar(table, record)
