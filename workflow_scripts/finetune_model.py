"""Rule finetune_model: fine-tune a backbone's baseline for FR, MAD or PAD (torchrun when gpu > 1)."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.devices import setup_device

    device, device_info = setup_device(snakemake.resources.gpu)  # before anything touches CUDA

    import torch

    from overspec.provenance import provenance, read_digest, write_sidecar
    from overspec.train.launch import run_finetune, workers_per_process

    torch.set_num_threads(snakemake.threads)
    recipe = dict(snakemake.params.recipe)
    processes = device_info["count"] if device == "cuda" else 1
    card_extra = {
        "name": snakemake.wildcards.model,
        "provenance": provenance(snakemake.rule, dict(snakemake.input),
                                 {"recipe": recipe, "train_data": snakemake.params.train_data},
                                 snakemake.params.code, recipe["seed"], device_info["kind"],
                                 known_digests={"base": read_digest(snakemake.input.base_digest)}),
    }
    run_finetune(recipe, snakemake.input.base, snakemake.params.train_data, snakemake.output.model,
                 snakemake.output.log_csv, processes=processes, device=device,
                 workers=workers_per_process(snakemake.threads, processes), card_extra=card_extra,
                 where=f"recipes.{snakemake.params.recipe_name}")
    write_sidecar(snakemake.output.log_csv, card_extra["provenance"])
