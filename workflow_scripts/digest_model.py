"""Rule digest_model: the sha256 of a model file, the small input every model consumer depends on."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.provenance import provenance, sha256_file, write_sidecar, write_text

    digest = sha256_file(snakemake.input.model)
    write_text(snakemake.output.digest, digest + "\n")
    write_sidecar(snakemake.output.digest, provenance(snakemake.rule, dict(snakemake.input), {}, snakemake.params.code,
                                                      None, known_digests={"model": digest}))
