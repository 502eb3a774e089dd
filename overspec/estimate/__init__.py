"""`overspec estimate`: what a study costs before it runs. The jobs come from Snakemake's own dry run
(`plan`), their sizes from the config and the dataset tables (`sizes`), their speeds from the kept
table of measured rates (`rates`), and `schedule` adds them up per rule and over the DAG for N GPUs."""
