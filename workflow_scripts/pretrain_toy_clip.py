"""Rule pretrain_toy_clip: contrastive pretraining of a tiny open_clip model on the toy corpus."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    import torch

    from overspec.provenance import provenance, write_sidecar
    from overspec.train.pretrain import PretrainConfig, pretrain_toy_clip

    torch.set_num_threads(snakemake.threads)
    recipe = dict(snakemake.params.recipe)
    cfg = PretrainConfig(arch=snakemake.params.arch, seed=snakemake.params.seed, **recipe)
    record = provenance(snakemake.rule, dict(snakemake.input), {"recipe": recipe}, snakemake.params.code,
                        snakemake.params.seed)
    pretrain_toy_clip(cfg, snakemake.input.corpus, snakemake.output.model, snakemake.output.log_csv,
                      extra_card={"provenance": record})
    write_sidecar(snakemake.output.log_csv, record)
