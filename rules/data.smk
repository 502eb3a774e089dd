# Datasets: toy data is generated here; real data is checked and listed. Each gets a manifest.


rule prepare_dataset:
    output:
        manifest="results/data/{dataset}/manifest.json",
    params:
        data_root=config["data_root"],
        reader=lambda w: "wds" if w.dataset in config["datasets"]["webdataset"] else None,
        seed=SEED,
        image_size=config["toy"]["image_size"],
        code=code("prepare_dataset"),
    log:
        "logs/prepare_dataset/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/prepare_dataset.py"


rule prepare_toy_corpus:
    output:
        corpus="results/data/toy_corpus/corpus.h5",
    params:
        size=config["toy"]["corpus_size"],
        seed=SEED,
        image_size=config["toy"]["image_size"],
        code=code("prepare_toy_corpus"),
    log:
        "logs/prepare_toy_corpus/toy_corpus.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/prepare_toy_corpus.py"
