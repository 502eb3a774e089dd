"""Rule audit_manifest: results/audit/manifest.json, the digest and lineage of every artifact."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from overspec.audit.manifest import write_manifest
    from overspec.provenance import provenance

    manifest = write_manifest(".", snakemake.output.manifest,
                              provenance=provenance(snakemake.rule, {}, {}, snakemake.params.code, None))
    for rel in manifest["unrecorded"]:
        print(f"warning: {rel} carries no provenance record")
    for line in manifest["warnings"]:
        print(f"warning: {line}")
