"""Rule paper_tables: the paper-layout tables (CSV, Markdown, LaTeX) and this run beside the paper."""
from pathlib import Path

from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.provenance import provenance
    from overspec.report.study import write_study_tables

    write_study_tables(
        snakemake.input.metrics, Path(snakemake.output.comparison).parent, snakemake.params.models,
        provenance=provenance(snakemake.rule, dict(snakemake.input), {"models": snakemake.params.models},
                              snakemake.params.code, None),
    )
