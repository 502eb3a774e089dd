"""Rule import_published_model: a fine-tuned checkpoint (published FRoundation / MADation / FoundPAD
LoRA weights and header, your own open_clip or Hugging Face checkpoint, a PEFT LoRA adapter) as an
overspec model file."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.models.importing import import_model
    from overspec.provenance import provenance, read_digest

    settings = dict(snakemake.params.settings)
    base = list(snakemake.input.base)  # [model file, digest file] of the baseline an adapter goes into, or []
    known = {"base[0]": read_digest(base[1])} if base else {}
    import_model(
        settings["checkpoint"], snakemake.params.arch, snakemake.output.model, adapter=settings.get("adapter"),
        layout=settings.get("layout", "auto"), lora_alpha=settings.get("lora_alpha"),
        lora_rslora=settings.get("lora_rslora", True), head_source=settings.get("head_checkpoint"),
        head=settings.get("head"), preprocessing=settings.get("preprocessing"),
        card_extra={"name": snakemake.wildcards.model, "adaptation": snakemake.params.adaptation,
                    "provenance": provenance(snakemake.rule, dict(snakemake.input), {"import": settings},
                                              snakemake.params.code, known_digests=known)},
    )
