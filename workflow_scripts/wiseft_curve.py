"""Rule wiseft_curve: each fine-tune's biometric score against its GELO along alpha (table and figure)."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.analysis.wiseft import write_wiseft
    from overspec.provenance import provenance

    settings = {"curves": snakemake.params.curves, "min_gelo": snakemake.params.min_gelo}
    write_wiseft(snakemake.input.metrics, snakemake.input.gelo, snakemake.params.curves, dict(snakemake.output),
                 min_gelo=snakemake.params.min_gelo,
                 provenance=provenance(snakemake.rule, dict(snakemake.input), settings, snakemake.params.code, None))
