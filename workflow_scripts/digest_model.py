"""Rule digest_model: the sha256 of a model file, the small input every model consumer depends on."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.provenance import sha256_file, write_text

    write_text(snakemake.output.digest, sha256_file(snakemake.input.model) + "\n")
