# Embeddings: per (model, dataset), one HDF5 holding every split's image features and one holding
# the zero-shot classifier (class names x prompt templates, original text encoder). One job makes
# both: it loads the model once, and starting a job costs more than a toy dataset's work.


rule embed_images:
    input:
        **model_inputs(),
        manifest="results/data/{dataset}/manifest.json",
    output:
        h5="results/embeddings/{model}/{dataset}.h5",
        text="results/text/{model}/{dataset}.h5",
    params:
        batch_size=EVAL["embed_batch_size"],
        precision=EVAL["embed_precision"],
        compile=EVAL["embed_compile"],
        decode_jpeg_on_gpu=EVAL["embed_decode_jpeg_on_gpu"],
        code=code("embed_images"),
    log:
        "logs/embed_images/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/embed_images/{model}/{dataset}.tsv"
    threads: data_threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/embed_images.py"
