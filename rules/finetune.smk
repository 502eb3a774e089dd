# Fine-tuned models: the baseline of a backbone adapted for FR, MAD or PAD with a recipe, or a
# fine-tuned checkpoint imported as it is (a published one, your own open_clip or Hugging Face
# checkpoint, a PEFT LoRA adapter merged into it or into the baseline).


rule finetune_model:
    input:
        **base_model_inputs(),
        data=train_inputs,
    output:
        model="results/models/{model}/model.safetensors",
        log_csv="results/models/{model}/train_log.csv",
    wildcard_constraints:
        model=alternatives(models_where(made_by="finetune_model")),
    params:
        recipe=lambda w: finetune_recipe(config, w.model),
        recipe_name=lambda w: MODELS[w.model]["recipe"],
        train_data=lambda w: MODELS[w.model]["train_data"],
        code=code("finetune_model"),
    log:
        "logs/finetune_model/{model}.log",
    benchmark:
        "results/benchmarks/finetune_model/{model}.tsv"
    threads: lambda w: recipe_resources(config, w.model)["threads"]
    resources:
        gpu=lambda w: recipe_resources(config, w.model)["gpu"],
        mem_mb=lambda w: recipe_resources(config, w.model)["mem_mb"],
        runtime=lambda w: recipe_resources(config, w.model)["runtime"],
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/finetune_model.py"


rule import_published_model:
    input:
        checkpoints=import_inputs,
        base=import_base_inputs,  # an adapter merged into the baseline
    output:
        model="results/models/{model}/model.safetensors",
    wildcard_constraints:
        model=alternatives(models_where(made_by="import_published_model")),
    params:
        arch=lambda w: MODELS[w.model]["arch"],
        settings=lambda w: import_settings(config, w.model),
        adaptation=lambda w: MODELS[w.model]["adaptation"],
        code=code("import_published_model"),
    log:
        "logs/import_published_model/{model}.log",
    threads: 1
    resources:
        mem_mb=16000,
        runtime=60,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/import_published_model.py"
