"""Rule prepare_biometric_world: the toy world's biometric data, written in the real formats."""
from overspec.jobs import job_log

with job_log(snakemake.log[0]):
    from pathlib import Path

    from overspec.data.toy.biometric_world import ToyBiometricSizes, write_biometric_world
    from overspec.provenance import provenance, write_sidecar

    sizes = ToyBiometricSizes(image_size=snakemake.params.image_size, **snakemake.params.sizes)
    write_biometric_world(Path(snakemake.output.world).parent, seed=snakemake.params.seed, sizes=sizes)
    write_sidecar(snakemake.output.world, provenance(
        snakemake.rule, {}, {"image_size": snakemake.params.image_size, "sizes": dict(snakemake.params.sizes)},
        snakemake.params.code, snakemake.params.seed))
