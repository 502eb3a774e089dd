"""Rule import_model: bring in pretrained open_clip weights (e.g. OpenAI CLIP) as an overspec model file."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.models.importing import import_model
    from overspec.provenance import provenance

    settings = {"arch": snakemake.params.arch, "pretrained": snakemake.params.pretrained}
    import_model(snakemake.params.pretrained, snakemake.params.arch, snakemake.output.model,
                 card_extra={"provenance": provenance(snakemake.rule, {}, settings, snakemake.params.code, None)})
