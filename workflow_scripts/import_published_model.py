"""Rule import_published_model: a published fine-tuned checkpoint (e.g. FRoundation, MADation,
FoundPAD LoRA weights and header) as an overspec model file."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.models.importing import import_model
    from overspec.provenance import provenance

    settings = dict(snakemake.params.settings)
    import_model(
        settings["checkpoint"], snakemake.params.arch, snakemake.output.model,
        layout=settings.get("layout", "auto"), lora_alpha=settings.get("lora_alpha"),
        lora_rslora=settings.get("lora_rslora", True), head_source=settings.get("head_checkpoint"),
        head=settings.get("head"), preprocessing=settings.get("preprocessing"),
        card_extra={"name": snakemake.wildcards.model, "adaptation": snakemake.params.adaptation,
                    "provenance": provenance(snakemake.rule, dict(snakemake.input), {"import": settings},
                                              snakemake.params.code)},
    )
