"""Rule eval_ijb: IJB 1:1 template verification (TAR at FAR) of one model on one IJB folder."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.devices import setup_device

    device, device_info = setup_device(snakemake.resources.gpu)

    import torch

    from overspec.evaluate.biometric_jobs import eval_ijb_set
    from overspec.provenance import provenance, read_digest

    torch.set_num_threads(snakemake.threads)
    ijb = dict(snakemake.params.ijb)
    settings = {"batch_size": snakemake.params.batch_size, "aligned_size": ijb["aligned_size"], "template": ijb["template"]}
    eval_ijb_set(
        snakemake.wildcards.model, snakemake.input.model, snakemake.wildcards.benchmark, ijb["root"],
        snakemake.output.json, world_json=snakemake.params.world, device=device, **settings,
        provenance=provenance(snakemake.rule, dict(snakemake.input),
                              settings, snakemake.params.code, None, device_info["kind"],
                              known_digests={"model": read_digest(snakemake.input.digest)}),
    )
