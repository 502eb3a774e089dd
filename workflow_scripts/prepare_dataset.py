"""Rule prepare_dataset: generate (toy) or check (real) one dataset and write its manifest."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.data.prepare import prepare_dataset
    from overspec.provenance import provenance

    prepare_dataset(
        snakemake.wildcards.dataset,
        snakemake.output.manifest,
        data_root=snakemake.params.data_root,
        seed=snakemake.params.seed,
        image_size=snakemake.params.image_size,
        reader=snakemake.params.reader,
        provenance=provenance(snakemake.rule, {}, {"seed": snakemake.params.seed, "image_size": snakemake.params.image_size},
                              snakemake.params.code, snakemake.params.seed),
    )
