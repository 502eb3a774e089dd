"""Rule eval_face_verification: 10-fold verification accuracy of one model on every .bin pair set."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.devices import setup_device

    device, device_info = setup_device(snakemake.resources.gpu)

    import torch

    from overspec.evaluate.biometric_jobs import eval_pair_sets
    from overspec.provenance import provenance, read_digest

    torch.set_num_threads(snakemake.threads)
    pair_sets = dict(snakemake.params.pair_sets)
    settings = {"batch_size": snakemake.params.batch_size}
    eval_pair_sets(
        snakemake.wildcards.model, snakemake.input.model, pair_sets,
        dict(zip(sorted(pair_sets), snakemake.output.json, strict=True)), device=device, **settings,
        provenance=provenance(snakemake.rule, dict(snakemake.input),
                              settings, snakemake.params.code, None, device_info["kind"],
                              known_digests={"model": read_digest(snakemake.input.digest)}),
    )
