# overspec: what did fine-tuning cost my foundation model?
# The default study (config.yaml) is the offline toy world; configs/paper.yaml is the paper's study.
from snakemake.utils import min_version

min_version("9.19")


# --configfile replaces the default study instead of being merged into it.
if not config:

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/embed.smk"
include: "rules/evaluate.smk"
include: "rules/finetune.smk"
include: "rules/biometrics.smk"
include: "rules/analysis_plan.smk"  # before report.smk: the summary reads the own-task gains
include: "rules/mitigation.smk"  # before report.smk: the figure and summary show the remedies
include: "rules/report_plan.smk"
include: "rules/report.smk"
include: "rules/wiseft.smk"
include: "rules/analysis.smk"  # before audit.smk: its rule reads study_targets()
include: "rules/audit.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        study_targets(),
        model_digests(),  # see model_digests() in rules/common.smk
