"""Rule embed_images: image embeddings of every split of one dataset, to one HDF5 file."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.devices import setup_device

    device, device_info = setup_device(snakemake.resources.gpu)

    from overspec.embed.images import embed_dataset
    from overspec.provenance import provenance, read_digest

    embed_dataset(
        snakemake.input.model, snakemake.input.manifest, snakemake.output.h5,
        device=device, batch_size=snakemake.params.batch_size, num_workers=max(0, snakemake.threads - 1),
        provenance=provenance(snakemake.rule, dict(snakemake.input), {"batch_size": snakemake.params.batch_size},
                              snakemake.params.code, None, device_info["kind"],
                              known_digests={"model": read_digest(snakemake.input.digest)}),
    )
