# The audit: every artifact of the study with its sha256, producing rule and lineage. It runs last
# (its inputs are the study's other targets) and reads the artifacts' own provenance records.


rule audit_manifest:
    input:
        targets=[t for t in study_targets() if t != "results/audit/manifest.json"],
        digests=expand("results/models/{model}/model.sha256", model=MODELS),  # see model_digests() in common.smk
    output:
        manifest="results/audit/manifest.json",
    params:
        code=code("audit_manifest"),
    log:
        "logs/audit_manifest/audit_manifest.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/audit_manifest.py"
