"""Rule bootstrap_significance: paired bootstrap of every model-vs-baseline difference and GELO."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.analysis.significance import run_significance
    from overspec.provenance import provenance

    settings = {"pairs": dict(snakemake.params.pairs), "resamples": snakemake.params.resamples}
    run_significance(
        snakemake.input.results, snakemake.input.biometric, settings["pairs"], snakemake.params.models, dict(snakemake.output),
        resamples=settings["resamples"], seed=snakemake.params.seed,
        provenance=provenance(snakemake.rule, dict(snakemake.input), settings, snakemake.params.code,
                              snakemake.params.seed),
    )
