"""Rule interpolate_model: the WiSE-FT model at one alpha between a baseline and its fine-tune."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.models.interpolate import interpolate_model
    from overspec.provenance import provenance, read_digest

    digests = {"base": read_digest(snakemake.input.base_digest),
               "finetuned": read_digest(snakemake.input.finetuned_digest)}
    settings = {"alpha": snakemake.params.alpha, "base": snakemake.params.base,
                "finetune": snakemake.params.finetune}
    interpolate_model(
        snakemake.input.base, snakemake.input.finetuned, snakemake.params.alpha, snakemake.output.model,
        base_digest=digests["base"], finetuned_digest=digests["finetuned"],
        base_name=snakemake.params.base, finetuned_name=snakemake.params.finetune,
        card_extra={"name": snakemake.wildcards.model,
                    "provenance": provenance(snakemake.rule, dict(snakemake.input), settings, snakemake.params.code,
                                             None, known_digests=digests)},
    )
