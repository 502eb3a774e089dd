"""Rule embed_images: image embeddings of every split of one dataset (one HDF5 file), and the
dataset's zero-shot classifier from the model's text encoder (a second HDF5 file)."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.devices import setup_device

    device, device_info = setup_device(snakemake.resources.gpu)

    from overspec.embed.images import embed_dataset
    from overspec.embed.text import embed_classnames
    from overspec.provenance import provenance, read_digest

    settings = {"batch_size": snakemake.params.batch_size, "precision": snakemake.params.precision,
                "compile": snakemake.params.compile, "decode_on_device": snakemake.params.decode_jpeg_on_gpu}
    record = provenance(snakemake.rule, dict(snakemake.input), settings, snakemake.params.code, None,
                        device_info["kind"], known_digests={"model": read_digest(snakemake.input.digest)})
    embed_dataset(snakemake.input.model, snakemake.input.manifest, snakemake.output.h5, device=device,
                  num_workers=max(0, snakemake.threads - 1), provenance=record, **settings)
    embed_classnames(snakemake.input.model, snakemake.input.manifest, snakemake.output.text, device=device,
                     provenance=record)
