# Embeddings: one HDF5 per (model, dataset) holding every split, and one zero-shot classifier per
# (model, dataset). One job per (model, dataset) loads the model once for all splits.


rule embed_images:
    input:
        **model_inputs(),
        manifest="results/data/{dataset}/manifest.json",
    output:
        h5="results/embeddings/{model}/{dataset}.h5",
    params:
        batch_size=EVAL["embed_batch_size"],
        code=code("embed_images"),
    log:
        "logs/embed_images/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/embed_images/{model}/{dataset}.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/embed_images.py"


rule embed_classnames:
    input:
        **model_inputs(),
        manifest="results/data/{dataset}/manifest.json",
    output:
        h5="results/text/{model}/{dataset}.h5",
    params:
        code=code("embed_classnames"),
    log:
        "logs/embed_classnames/{model}/{dataset}.log",
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/embed_classnames.py"
