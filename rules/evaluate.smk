# General-vision protocols on cached embeddings.


rule eval_zeroshot:
    input:
        embeddings="results/embeddings/{model}/{dataset}.h5",
        text="results/text/{model}/{dataset}.h5",
        manifest="results/data/{dataset}/manifest.json",
        digests=lineage_digests,  # see model_digests() in common.smk
    output:
        json="results/zeroshot/{model}/{dataset}.json",
        pred="results/zeroshot/{model}/{dataset}.pred.csv",  # beside the JSON (overspec.evaluate.general)
    params:
        bootstrap=EVAL["bootstrap_resamples"],
        seed=SEED,
        code=code("eval_zeroshot"),
    log:
        "logs/eval_zeroshot/{model}/{dataset}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/eval_zeroshot.py"


rule fit_linear_probe:
    input:
        embeddings="results/embeddings/{model}/{dataset}.h5",
        manifest="results/data/{dataset}/manifest.json",
        digests=lineage_digests,  # see model_digests() in common.smk
    output:
        json="results/linear_probe/{model}/{dataset}.json",
        pred="results/linear_probe/{model}/{dataset}.pred.csv",  # beside the JSON (overspec.evaluate.general)
    params:
        c_grid=EVAL["linear_probe"].get("c_grid"),
        bootstrap=EVAL["bootstrap_resamples"],
        seed=SEED,
        code=code("fit_linear_probe"),
    log:
        "logs/fit_linear_probe/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/fit_linear_probe/{model}/{dataset}.tsv"
    threads: data_threads
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/fit_linear_probe.py"
