"""Rule plot_figures: every figure of the study, as PNG and SVG."""
from pathlib import Path

from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.provenance import provenance
    from overspec.report.study_figures import write_study_figures

    settings = {"curves": snakemake.params.curves, "training_logs": snakemake.params.train_logs,
                "loss_kinds": snakemake.params.loss_kinds, "wiseft": snakemake.params.wiseft,
                "remedies": snakemake.params.remedies}
    write_study_figures(
        snakemake.input.metrics, snakemake.input.gelo, Path(snakemake.output.png[0]).parent, **settings,
        task_gain_csv=snakemake.input.get("task_gain"),
        provenance=provenance(snakemake.rule, dict(snakemake.input), settings, snakemake.params.code, None),
    )
