"""Rule eval_attack_detection: MAD or PAD scoring of one model, by its own binary head when it was
adapted for the task, else by a logistic-regression probe on its frozen embeddings."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.devices import setup_device

    device, device_info = setup_device(snakemake.resources.gpu)

    import torch

    from overspec.evaluate.biometric_jobs import eval_attack_detection
    from overspec.provenance import provenance, read_digest

    torch.set_num_threads(snakemake.threads)
    lists = dict(snakemake.params.lists)
    settings = {"batch_size": snakemake.params.batch_size, "probe_c": snakemake.params.probe_c}
    eval_attack_detection(
        snakemake.wildcards.model, snakemake.input.model, snakemake.wildcards.task, snakemake.params.adaptation,
        snakemake.wildcards.benchmark, lists["train"], lists["tests"], snakemake.output.json, dev_list=lists["dev"],
        device=device, num_workers=max(0, snakemake.threads - 1), **settings,
        provenance=provenance(snakemake.rule, dict(snakemake.input),
                              settings, snakemake.params.code, None, device_info["kind"],
                              known_digests={"model": read_digest(snakemake.input.digest)}),
    )
