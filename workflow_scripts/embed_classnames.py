"""Rule embed_classnames: the zero-shot classifier of one dataset (class names x prompt templates)."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.devices import setup_device

    device, device_info = setup_device(snakemake.resources.gpu)

    from overspec.embed.text import embed_classnames
    from overspec.provenance import provenance, read_digest

    embed_classnames(
        snakemake.input.model, snakemake.input.manifest, snakemake.output.h5, device=device,
        provenance=provenance(snakemake.rule, dict(snakemake.input), {}, snakemake.params.code, None,
                              device_info["kind"], known_digests={"model": read_digest(snakemake.input.digest)}),
    )
