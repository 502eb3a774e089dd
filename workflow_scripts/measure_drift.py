"""Rule measure_drift: linear CKA of each fine-tuned model's test features with its baseline's, per dataset."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.analysis.drift import run_drift
    from overspec.provenance import provenance

    settings = {"pairs": dict(snakemake.params.pairs), "datasets": list(snakemake.params.datasets)}
    run_drift(
        settings["pairs"], snakemake.params.models, settings["datasets"], snakemake.params.embeddings,
        snakemake.input.results, dict(snakemake.output),
        provenance=provenance(snakemake.rule, dict(snakemake.input), settings, snakemake.params.code, None),
    )
