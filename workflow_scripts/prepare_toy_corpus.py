"""Rule prepare_toy_corpus: the captioned pretraining corpus of the toy world, as one HDF5 file."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.data.toy.corpus import write_corpus
    from overspec.provenance import provenance

    settings = {"size": snakemake.params.size, "image_size": snakemake.params.image_size}
    write_corpus(snakemake.output.corpus, n=snakemake.params.size, seed=snakemake.params.seed,
                 size=snakemake.params.image_size,
                 provenance=provenance(snakemake.rule, {}, settings, snakemake.params.code, snakemake.params.seed))
