"""Rule fit_linear_probe: the CLIP-paper linear probe (C chosen on val, refit on train+val, test)."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    import torch  # noqa: I001 - set the thread count before the probe allocates anything

    from overspec.evaluate.general import run_linear_probe
    from overspec.provenance import provenance

    torch.set_num_threads(snakemake.threads)
    settings = {"bootstrap_resamples": snakemake.params.bootstrap, "c_grid": snakemake.params.c_grid}
    run_linear_probe(
        snakemake.wildcards.model, snakemake.input.embeddings, snakemake.input.manifest,
        snakemake.output.json, seed=snakemake.params.seed, **settings,
        provenance=provenance(snakemake.rule, dict(snakemake.input), settings, snakemake.params.code,
                              snakemake.params.seed),
    )
