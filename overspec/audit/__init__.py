"""The study's audit: the artifact manifest and its lineage check (`manifest`), file comparison within
tolerances (`compare`) and re-execution of sampled jobs (`reproduce`). `overspec audit` is its command
(`overspec.cli.audit`)."""
