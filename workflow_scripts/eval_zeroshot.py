"""Rule eval_zeroshot: zero-shot classification of one dataset from cached embeddings."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.evaluate.general import run_zeroshot
    from overspec.provenance import provenance

    settings = {"bootstrap_resamples": snakemake.params.bootstrap}
    run_zeroshot(
        snakemake.wildcards.model, snakemake.input.embeddings, snakemake.input.text, snakemake.input.manifest, snakemake.output.json,
        seed=snakemake.params.seed, **settings,
        provenance=provenance(snakemake.rule, dict(snakemake.input), settings, snakemake.params.code,
                              snakemake.params.seed),
    )
