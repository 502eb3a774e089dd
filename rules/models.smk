# Model files: one safetensors per model (weights + model card), and its digest checkpoint.


rule pretrain_toy_clip:
    input:
        corpus="results/data/toy_corpus/corpus.h5",
    output:
        model="results/models/{model}/model.safetensors",
        log_csv="results/models/{model}/pretrain_log.csv",
    wildcard_constraints:
        model=alternatives(models_where(source="toy_pretrain", adaptation="none")),
    params:
        arch=lambda w: MODELS[w.model]["arch"],
        recipe=lambda w: config["backbones"][MODELS[w.model]["backbone"]]["pretrain"],
        seed=SEED,
        code=code("pretrain_toy_clip"),
    log:
        "logs/pretrain_toy_clip/{model}.log",
    benchmark:
        "results/benchmarks/pretrain_toy_clip/{model}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/pretrain_toy_clip.py"


rule import_model:
    output:
        model="results/models/{model}/model.safetensors",
    wildcard_constraints:
        model=alternatives(models_where(source="open_clip", adaptation="none")),
    params:
        arch=lambda w: MODELS[w.model]["arch"],
        pretrained=lambda w: config["backbones"][MODELS[w.model]["backbone"]]["pretrained"],
        code=code("import_model"),
    log:
        "logs/import_model/{model}.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/import_model.py"


checkpoint digest_model:
    # A checkpoint: after it runs Snakemake re-evaluates the DAG and drops consumers whose digest
    # input is byte-identical (tested; Snakemake is pinned for it).
    input:
        model="results/models/{model}/model.safetensors",
        upstream=upstream_digests,  # see model_digests() in common.smk
    output:
        digest="results/models/{model}/model.sha256",
    params:
        code=code("digest_model"),
    log:
        "logs/digest_model/{model}.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/digest_model.py"
